//! `citus-row-trigger`: a `FOR EACH ROW` trigger on a table that becomes distributed or
//! reference. A warning: Citus refuses it by default ("cannot distribute relation \"t\" because
//! it has triggers"), but under `citus.enable_unsafe_triggers` the trigger runs on each shard,
//! which is right for a trigger that touches only its own row's realm. `citus distribute` sets
//! that setting for the step of such a table and says so in its plan.

use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::CitusRowTrigger.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    super::citus_statement_trigger::triggers(ctx, out, true, ID);
}

#[cfg(test)]
mod tests {
    use crate::verify::testkit::Kit;

    #[test]
    fn row_triggers_are_warnings() {
        let mut k = Kit::new();
        k.citus_profile();
        let u = k.good("users", &[]);
        k.trigger(u, "users_touch", true);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].severity, crate::rules::Severity::Warning);
        assert!(k.report().ok);
    }
}
