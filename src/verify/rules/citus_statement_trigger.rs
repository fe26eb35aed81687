//! `citus-statement-trigger`: a `FOR EACH STATEMENT` trigger on a table that becomes distributed
//! or reference. Citus refuses to distribute a table with triggers ("cannot distribute relation
//! \"t\" because it has triggers"); with `citus.enable_unsafe_triggers` it would run the trigger
//! once per shard on the workers, not once per statement, so there is no safe way through.

use crate::db::qualified;
use crate::verify::citus::{class_map, Class};
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::CitusStatementTrigger.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    triggers(ctx, out, false, ID);
}

/// The triggers of distributed and reference tables whose `row` flag is `row`, as `rule`.
pub(crate) fn triggers(ctx: &Ctx, out: &mut Vec<Violation>, row: bool, rule: &str) {
    let Some(facts) = ctx.citus else {
        return;
    };
    let classes = class_map(ctx);
    for tr in facts.triggers.iter().filter(|tr| tr.row == row) {
        let Some(class) = classes.get(&tr.table).filter(|c| **c != Class::Local) else {
            continue;
        };
        let Some(t) = ctx.table(tr.table) else {
            continue;
        };
        let msg = if row {
            format!(
                "row trigger {} on {} table {}: Citus distributes a table with triggers only under citus.enable_unsafe_triggers (distribute sets it for this table), and the trigger then runs on the shards: it must touch only rows of its own realm",
                tr.name,
                class.as_str(),
                qualified(&t.schema, &t.name)
            )
        } else {
            format!(
                "statement trigger {} on {} table {}: Citus refuses to distribute a table with triggers, and would run a statement trigger once per shard; drop it or move its work to the application",
                tr.name,
                class.as_str(),
                qualified(&t.schema, &t.name)
            )
        };
        out.push(ctx.violation(rule, t, Some(&tr.name), msg, None));
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::testkit::Kit;

    #[test]
    fn statement_triggers_of_realm_and_reference_tables_are_errors() {
        let mut k = Kit::new();
        k.citus_profile();
        let u = k.good("users", &[]);
        let realms = k.realms();
        let l = k.table("public", "logs", &[("id", "bigint", true)]);
        k.trigger(u, "users_audit", false);
        k.trigger(realms, "realms_audit", false);
        k.trigger(l, "logs_audit", false);
        k.trigger(u, "users_touch", true);
        let v = k.of(super::ID);
        let names: Vec<_> = v.iter().map(|v| v.constraint.clone().unwrap()).collect();
        assert_eq!(
            names,
            ["realms_audit", "users_audit"],
            "local tables keep theirs"
        );
        assert_eq!(k.of("citus-row-trigger").len(), 1);
    }
}
