//! `constraint-not-validated`: a foreign key or check constraint on a realm-scoped table is still
//! `NOT VALID`, so old rows were never proven to satisfy it.

use crate::catalog::ConstraintKind;
use crate::db::quote_ident;
use crate::verify::fix::table_sql;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::ConstraintNotValidated.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.scoped_tables() {
        for c in ctx.constraints_of(t.oid) {
            if c.validated || !matches!(c.kind, ConstraintKind::ForeignKey | ConstraintKind::Check)
            {
                continue;
            }
            let what = if c.kind == ConstraintKind::Check {
                "check constraint"
            } else {
                "foreign key"
            };
            out.push(ctx.violation(
                ID,
                t,
                Some(&c.name),
                format!(
                    "{what} {} is NOT VALID: existing rows were never checked",
                    c.name
                ),
                Some(format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {};",
                    table_sql(t),
                    quote_ident(&c.name)
                )),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::testkit::Kit;

    #[test]
    fn not_valid_check_is_reported_with_validate() {
        let mut k = Kit::new();
        let t = k.good("groups", &[]);
        k.check(t, "Name Check", false);
        k.check(t, "ok_check", true);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].fix.as_deref(),
            Some(r#"ALTER TABLE public.groups VALIDATE CONSTRAINT "Name Check";"#)
        );
    }

    #[test]
    fn not_valid_constraint_on_a_table_that_is_not_realm_scoped_is_ignored() {
        let mut k = Kit::new();
        let t = k.table("public", "lookup", &[("id", "bigint", true)]);
        k.check(t, "c", false);
        assert!(k.of(super::ID).is_empty());
    }
}
