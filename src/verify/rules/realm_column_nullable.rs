//! `realm-column-nullable`: the realm column allows NULL.

use crate::db::quote_ident;
use crate::verify::fix::{object_name, table_sql};
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RealmColumnNullable.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.scoped_tables() {
        let col = t.realm_column(&ctx.cfg.realm_column);
        let Some(c) = t.column(col) else { continue };
        if c.not_null {
            continue;
        }
        // SET NOT NULL scans under ACCESS EXCLUSIVE unless a validated CHECK proves it first
        // (docs/online-ddl.md, the NOT NULL steps).
        let tq = table_sql(t);
        let chk = quote_ident(&object_name(&[&t.name, col], "not_null"));
        let cq = quote_ident(col);
        let fix = format!(
            "ALTER TABLE {tq} ADD CONSTRAINT {chk} CHECK ({cq} IS NOT NULL) NOT VALID;\n\
             ALTER TABLE {tq} VALIDATE CONSTRAINT {chk};\n\
             ALTER TABLE {tq} ALTER COLUMN {cq} SET NOT NULL;\n\
             ALTER TABLE {tq} DROP CONSTRAINT {chk};"
        );
        out.push(ctx.violation(
            ID,
            t,
            None,
            format!("{col} allows NULL: a row without a realm belongs to no realm"),
            Some(fix),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::testkit::Kit;

    #[test]
    fn nullable_realm_column_is_reported_with_an_online_fix() {
        let mut k = Kit::new();
        let t = k.good("groups", &[]);
        k.t(t).columns[1].not_null = false;
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        let fix = v[0].fix.as_deref().unwrap();
        assert!(fix.starts_with("ALTER TABLE public.groups ADD CONSTRAINT groups_realm_id_not_null CHECK (realm_id IS NOT NULL) NOT VALID;"), "{fix}");
        assert!(fix.contains("SET NOT NULL"));
    }

    #[test]
    fn not_null_realm_column_is_fine() {
        let mut k = Kit::new();
        k.good("groups", &[]);
        assert!(k.of(super::ID).is_empty());
    }
}
