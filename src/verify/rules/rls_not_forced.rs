//! `rls-not-forced`: row level security is enabled but not forced, so the table's owner (and any
//! role that is a member of it) sees every realm.

use crate::verify::{rls, Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RlsNotForced.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for g in rls::tables(ctx) {
        if !g.r.enabled || g.r.forced {
            continue;
        }
        out.push(ctx.violation(
            ID,
            g.t,
            None,
            format!(
                "row level security is not forced: its owner {} bypasses it",
                g.r.owner
            ),
            Some(format!(
                "ALTER TABLE {} FORCE ROW LEVEL SECURITY;",
                g.table_sql()
            )),
        ));
    }
}
