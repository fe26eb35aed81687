//! `fk-cross-realm`: a foreign key between realm-scoped tables includes the referenced realm
//! column, but the column mapped to it is not the referencing table's own realm column, so a row
//! can point into another realm. A warning: some links cross realms on purpose.

use crate::db::qualified;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::FkCrossRealm.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.scoped_tables() {
        let Some(own) = ctx.realm_col(t.oid) else {
            continue;
        };
        // Each table's own realm column: the config's list may spell it differently per table.
        let rname = t.realm_column(&ctx.cfg.realm_column);
        for c in ctx.foreign_keys(t.oid) {
            let f = c.foreign.as_ref().expect("foreign key");
            let Some(p) = ctx.table(f.ref_table) else {
                continue;
            };
            let Some(p_realm) = ctx.realm_col(p.oid) else {
                continue;
            };
            let Some(pos) = f.ref_columns.iter().position(|n| *n == p_realm) else {
                continue; // fk-missing-realm
            };
            let Some(&mapped) = c.columns.get(pos) else {
                continue;
            };
            if mapped == own {
                continue;
            }
            let mapped_name = t.column_names(&[mapped]).remove(0);
            out.push(ctx.violation(
                ID,
                t,
                Some(&c.name),
                format!(
                    "foreign key {} maps {mapped_name}, not {rname}, to {}.{}: a row can point into another realm",
                    c.name,
                    qualified(&p.schema, &p.name),
                    p.realm_column(&ctx.cfg.realm_column)
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
    fn reference_through_another_realm_column_is_a_warning() {
        let mut k = Kit::new();
        let g = k.good("groups", &[]);
        let t = k.table(
            "public",
            "links",
            &[
                ("id", "bigint", true),
                ("realm_id", "text", true),
                ("group_id", "bigint", true),
                ("group_realm", "text", true),
            ],
        );
        k.pk(t, &["id", "realm_id"]);
        k.fk(
            t,
            &["group_realm", "group_id"],
            g,
            &["realm_id", "id"],
            FkAction::Cascade,
        );
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].severity, crate::rules::Severity::Warning);
        assert!(
            v[0].message.contains("maps group_realm"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn own_realm_column_in_any_position_is_fine() {
        let mut k = Kit::new();
        k.linked_realm_first();
        assert!(k.of(super::ID).is_empty());
    }
}
