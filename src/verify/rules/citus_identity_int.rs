//! `citus-identity-int`: an `integer` or `smallint` identity or serial column on a realm-scoped
//! table. A warning: Citus distributes it, but only bigint sequences get a range per node, so
//! inserts that draw the value on a worker fail, and the narrow type runs out sooner with
//! every realm drawing from one sequence.

use crate::db::qualified;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::CitusIdentityInt.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let Some(facts) = ctx.citus else {
        return;
    };
    for id in &facts.identities {
        if !ctx.is_realm_scoped(id.table) {
            continue;
        }
        let Some(t) = ctx.checked.iter().find(|t| t.oid == id.table) else {
            continue;
        };
        out.push(ctx.violation(
            ID,
            t,
            None,
            format!(
                "{} is an {} {} column on realm table {}: on Citus only bigint sequences work from every node; ALTER it to bigint before distributing",
                id.column,
                id.type_name,
                id.kind,
                qualified(&t.schema, &t.name)
            ),
            Some(format!(
                "ALTER TABLE {} ALTER COLUMN {} TYPE bigint;",
                qualified(&t.schema, &t.name),
                crate::db::quote_ident(&id.column)
            )),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::citus::NarrowIdentity;
    use crate::verify::testkit::Kit;

    #[test]
    fn a_narrow_identity_on_a_realm_table_is_a_warning_with_its_fix() {
        let mut k = Kit::new();
        k.citus_profile();
        let u = k.good("users", &[]);
        let l = k.table("public", "logs", &[("id", "integer", true)]);
        for table in [u, l] {
            k.citus.identities.push(NarrowIdentity {
                table,
                column: "id".into(),
                type_name: "integer".into(),
                kind: "identity".into(),
            });
        }
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].table, "users");
        assert!(v[0].fix.as_deref().unwrap().contains("TYPE bigint"));
    }
}
