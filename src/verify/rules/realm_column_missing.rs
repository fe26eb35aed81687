//! `realm-column-missing`: a table listed in `realm_scoped` has no realm column.

use crate::db::{qualified, quote_ident};
use crate::verify::fix::table_sql;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RealmColumnMissing.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let col = &ctx.cfg.realm_column;
    // The column gets the type of the realms table's key, so the realm foreign key can follow.
    let key_type = ctx.cat.realms_key_type.as_ref();
    for t in ctx.scoped_tables() {
        if t.column(t.realm_column(col)).is_some() {
            continue;
        }
        let fix = key_type.as_ref().map(|ty| {
            format!(
                "ALTER TABLE {} ADD COLUMN {} {ty};\n-- then fill it and make it NOT NULL online: realmguard backfill plan",
                table_sql(t),
                quote_ident(col.first())
            )
        });
        out.push(ctx.violation(
            ID,
            t,
            None,
            format!(
                "{} is listed in realm_scoped but has no {} column",
                qualified(&t.schema, &t.name),
                col.all().join(" or ")
            ),
            fix,
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::testkit::Kit;

    #[test]
    fn listed_table_without_the_column_is_reported_with_the_realm_key_type() {
        let mut k = Kit::new();
        k.table("public", "Legacy Groups", &[("id", "bigint", true)]);
        k.cfg.realm_scoped = vec!["public.Legacy Groups".into()];
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].table, "Legacy Groups");
        assert_eq!(
            v[0].fix.as_deref().unwrap().lines().next().unwrap(),
            r#"ALTER TABLE public."Legacy Groups" ADD COLUMN realm_id text;"#
        );
    }

    #[test]
    fn unlisted_tables_and_tables_with_the_column_are_fine() {
        let mut k = Kit::new();
        k.table("public", "lookup", &[("id", "bigint", true)]);
        k.good("groups", &[]);
        k.cfg.realm_scoped = vec!["groups".into()];
        assert!(k.of(super::ID).is_empty());
    }
}
