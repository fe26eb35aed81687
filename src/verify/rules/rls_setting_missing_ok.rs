//! `rls-setting-missing-ok`: a policy reads the realm setting with `current_setting(name)` (no
//! `missing_ok`), so a session that has not set it gets an error instead of no rows.

use crate::verify::{rls, Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RlsSettingMissingOk.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for g in rls::judged_tables(ctx) {
        for j in &g.policies {
            if !j.analyses().any(|a| a.without_missing_ok) {
                continue;
            }
            out.push(ctx.violation(
                ID,
                g.t,
                Some(&j.p.name),
                format!(
                    "policy {} reads {} without missing_ok: an unset setting is a runtime error",
                    j.p.name, ctx.cfg.realm_setting
                ),
                g.rewrite_policy(ctx, j.p),
            ));
        }
    }
}
