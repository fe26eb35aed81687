//! `citus-rule`: a rewrite rule (`CREATE RULE`) on a table that becomes distributed or
//! reference. Citus distributes the table but not its rules: the coordinator rewrites the
//! statement before Citus plans it, so writes fail or go astray (an `ON INSERT … DO ALSO`
//! rule's insert is refused with "cannot perform an INSERT without a partition column value").

use crate::db::qualified;
use crate::verify::citus::{class_map, Class};
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::CitusRule.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let Some(facts) = ctx.citus else {
        return;
    };
    let classes = class_map(ctx);
    for r in &facts.rules {
        let Some(class) = classes.get(&r.table).filter(|c| **c != Class::Local) else {
            continue;
        };
        let Some(t) = ctx.table(r.table) else {
            continue;
        };
        out.push(ctx.violation(
            ID,
            t,
            Some(&r.name),
            format!(
                "rule {} on {} table {}: Citus does not support rules on its tables (writes through the rule fail or bypass the shards); replace it with application code or a view",
                r.name,
                class.as_str(),
                qualified(&t.schema, &t.name)
            ),
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::citus::RewriteRule;
    use crate::verify::testkit::Kit;

    #[test]
    fn rules_on_realm_tables_are_errors_and_on_local_tables_not() {
        let mut k = Kit::new();
        k.citus_profile();
        let u = k.good("users", &[]);
        let l = k.table("public", "logs", &[("id", "bigint", true)]);
        for (table, name) in [(u, "users_log"), (l, "logs_keep")] {
            k.citus.rules.push(RewriteRule {
                table,
                name: name.into(),
            });
        }
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].constraint.as_deref(), Some("users_log"));
    }
}
