//! `rls-setting-per-row`: a policy reads the realm setting outside a scalar subquery, so a scan
//! evaluates `current_setting` once per row; `(SELECT current_setting(…))` is evaluated once.

use crate::verify::{rls, Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RlsSettingPerRow.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for g in rls::judged_tables(ctx) {
        for j in &g.policies {
            if !j.analyses().any(|a| a.per_row) {
                continue;
            }
            out.push(ctx.violation(
                ID,
                g.t,
                Some(&j.p.name),
                format!(
                    "policy {} reads {} per row: wrap current_setting in a scalar subquery",
                    j.p.name, ctx.cfg.realm_setting
                ),
                g.rewrite_policy(ctx, j.p),
            ));
        }
    }
}
