//! `rls-policy-missing`: row level security is enabled with no policy, so the application sees
//! no row at all (fails closed, hence a warning).

use crate::verify::{rls, Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RlsPolicyMissing.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for g in rls::tables(ctx) {
        if !g.r.enabled || !g.policies.is_empty() {
            continue;
        }
        out.push(ctx.violation(
            ID,
            g.t,
            None,
            "row level security is enabled with no policy: every row is hidden from the application".into(),
            Some(g.create_policy(ctx, false)),
        ));
    }
}
