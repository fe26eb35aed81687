//! `rls-policy-not-realm`: the table has policies, but for some command no policy the
//! application is subject to binds the realm column to the realm setting (in `USING`, and for
//! writes in `WITH CHECK`, or `USING` where it has none).

use crate::verify::rls::{self, Clause, Standing, COMMANDS};
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RlsPolicyNotRealm.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for g in rls::judged_tables(ctx) {
        if !g.r.enabled || g.policies.is_empty() {
            continue;
        }
        let unbound: Vec<String> = COMMANDS
            .iter()
            .filter(|(cmd, clause)| g.standing(*cmd, *clause) == Standing::Unbound)
            .map(|(cmd, clause)| match clause {
                Clause::Read => format!("{} (USING)", cmd.sql()),
                Clause::Write => format!("{} (WITH CHECK)", cmd.sql()),
            })
            .collect();
        if unbound.is_empty() {
            continue;
        }
        let col = g.realm_column.unwrap_or(&ctx.cfg.realm_column);
        out.push(ctx.violation(
            ID,
            g.t,
            None,
            format!(
                "no policy binds {col} to current_setting('{}', true) for {}",
                ctx.cfg.realm_setting,
                unbound.join(", ")
            ),
            Some(g.create_policy(ctx, g.has_permissive_for_app())),
        ));
    }
}
