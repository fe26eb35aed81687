//! `citus-reference-to-distributed`: a foreign key from a global table (the realms table
//! included) to a realm-scoped one. A global table becomes a reference or local table, and Citus
//! refuses foreign keys from those to distributed tables ("cannot create foreign key constraint
//! since foreign keys from reference tables and local tables to distributed tables are not
//! supported").

use crate::db::qualified;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::CitusReferenceToDistributed.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.checked.iter().filter(|t| !ctx.is_realm_scoped(t.oid)) {
        for c in ctx.foreign_keys(t.oid) {
            let f = c.foreign.as_ref().expect("foreign key");
            if !ctx.is_realm_scoped(f.ref_table) {
                continue;
            }
            let Some(p) = ctx.table(f.ref_table) else {
                continue;
            };
            out.push(ctx.violation(
                ID,
                t,
                Some(&c.name),
                format!(
                    "global table {} references realm-scoped {} through {}: Citus refuses foreign keys from reference and local tables to distributed tables; make {} realm-scoped or drop the key",
                    qualified(&t.schema, &t.name),
                    qualified(&p.schema, &p.name),
                    c.name,
                    t.name
                ),
                None,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::FkAction;
    use crate::verify::testkit::Kit;

    #[test]
    fn a_global_table_referencing_a_realm_table_is_an_error() {
        let mut k = Kit::new();
        k.citus_profile();
        let u = k.good("users", &[]);
        let s = k.table(
            "public",
            "settings",
            &[
                ("id", "bigint", true),
                ("owner_id", "bigint", true),
                ("owner_realm", "text", true),
            ],
        );
        k.pk(s, &["id"]);
        k.fk(
            s,
            &["owner_id", "owner_realm"],
            u,
            &["id", "realm_id"],
            FkAction::Cascade,
        );
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].table, "settings");
    }

    #[test]
    fn a_realm_table_referencing_a_global_one_passes() {
        let mut k = Kit::new();
        k.citus_profile();
        let u = k.good("users", &["country_id"]);
        let c = k.table("public", "countries", &[("id", "bigint", true)]);
        k.pk(c, &["id"]);
        k.fk(u, &["country_id"], c, &["id"], FkAction::NoAction);
        assert!(k.of(super::ID).is_empty());
    }
}
