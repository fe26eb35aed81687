//! `citus-fk-ordinal`: a foreign key between realm-scoped tables maps some other column to the
//! parent's realm column (or the child's realm column to another parent column). Citus only
//! accepts a foreign key between distributed tables that pairs the two distribution columns, so
//! `create_distributed_table` refuses it ("Foreign keys are supported in two cases, either in
//! between two colocated tables including partition column in the same ordinal in the both
//! tables or from distributed to reference tables"). Under the profile it replaces the warning
//! `fk-cross-realm`.

use crate::db::qualified;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::CitusFkOrdinal.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let rname = &ctx.cfg.realm_column;
    for t in ctx.scoped_tables() {
        let Some(own) = ctx.realm_col(t.oid) else {
            continue;
        };
        for c in ctx.foreign_keys(t.oid) {
            let f = c.foreign.as_ref().expect("foreign key");
            let Some(p) = ctx.table(f.ref_table) else {
                continue;
            };
            let Some(p_realm) = ctx.realm_col(p.oid) else {
                continue; // to a global table: a reference table, any columns
            };
            let to_parent_realm = f.ref_columns.iter().position(|n| *n == p_realm);
            let from_own = c.columns.iter().position(|n| *n == own);
            if to_parent_realm.is_none() || to_parent_realm == from_own {
                continue; // without the parent's realm column: fk-missing-realm's error
            }
            let mapped = c.columns[to_parent_realm.expect("checked")];
            let mapped_name = t.column_names(&[mapped]).remove(0);
            out.push(ctx.violation(
                ID,
                t,
                Some(&c.name),
                format!(
                    "foreign key {} maps {mapped_name}, not {rname}, to {}.{rname}: Citus refuses a foreign key between distributed tables that does not pair their distribution columns",
                    c.name,
                    qualified(&p.schema, &p.name)
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

    fn links(k: &mut Kit, realm_first: &[&str]) {
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
        k.fk(t, realm_first, g, &["realm_id", "id"], FkAction::Cascade);
    }

    #[test]
    fn another_column_mapped_to_the_parent_realm_is_an_error_under_the_profile() {
        let mut k = Kit::new();
        links(&mut k, &["group_realm", "group_id"]);
        assert!(k.of(super::ID).is_empty(), "only under the profile");
        assert_eq!(k.of("fk-cross-realm").len(), 1);
        k.citus_profile();
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].severity, crate::rules::Severity::Error);
        assert!(
            v[0].message.contains("maps group_realm"),
            "{}",
            v[0].message
        );
        assert!(
            k.of("fk-cross-realm").is_empty(),
            "replaced by its error form"
        );
    }

    #[test]
    fn realm_column_paired_with_the_parent_realm_passes() {
        let mut k = Kit::new();
        k.citus_profile();
        links(&mut k, &["realm_id", "group_id"]);
        assert!(k.of(super::ID).is_empty());
    }
}
