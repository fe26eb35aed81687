//! `rls-app-role-bypass`: the application role (`[rls] app_role`) escapes row level security: it
//! is a superuser, has BYPASSRLS, owns the table (it can turn RLS off) or is a member of the
//! owner (it can become it). Skipped when no role is stated or the role does not exist.

use crate::db::quote_ident;
use crate::verify::{rls, Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RlsAppRoleBypass.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let Some(app) = ctx.rls.and_then(|r| r.app_role.as_ref()) else {
        return;
    };
    let role = quote_ident(&app.name);
    for g in rls::tables(ctx) {
        let (message, fix) = if app.superuser {
            (
                format!(
                    "the application role {} is a superuser: it bypasses row level security",
                    app.name
                ),
                format!("ALTER ROLE {role} NOSUPERUSER;"),
            )
        } else if app.bypassrls {
            (
                format!("the application role {} has BYPASSRLS", app.name),
                format!("ALTER ROLE {role} NOBYPASSRLS;"),
            )
        } else if g.r.app_owns {
            (
                format!(
                    "the application role {} owns the table: it can turn row level security off",
                    app.name
                ),
                format!(
                    "-- run as the role that runs the migrations: it becomes the owner\nALTER TABLE {} OWNER TO CURRENT_USER;",
                    g.table_sql()
                ),
            )
        } else if g.r.app_member_of_owner {
            (
                format!(
                    "the application role {} is a member of the table's owner {}: it can act as the owner",
                    app.name, g.r.owner
                ),
                format!(
                    "-- if the membership is indirect, revoke the role that leads to {0} instead\nREVOKE {0} FROM {role};",
                    quote_ident(&g.r.owner)
                ),
            )
        } else {
            continue;
        };
        out.push(ctx.violation(ID, g.t, None, message, Some(fix)));
    }
}
