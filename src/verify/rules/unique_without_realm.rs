//! `unique-without-realm`: a unique constraint or unique index other than the primary key (partial
//! and expression indexes included) whose plain key columns do not include the realm column: it
//! makes a value unique across all realms, so two realms cannot both use it.

use crate::catalog::TableKind;
use crate::db::{qualified, quote_ident};
use crate::verify::fix::{create_index, deferrable_sql, table_sql};
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::UniqueWithoutRealm.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.scoped_tables() {
        let rname = t.realm_column(&ctx.cfg.realm_column);
        let Some(realm) = ctx.realm_col(t.oid) else {
            continue;
        };
        for i in ctx.indexes_of(t.oid) {
            if !i.unique || i.primary || i.key_columns.contains(&realm) {
                continue;
            }
            let what = if i.constraint.is_some() {
                "unique constraint"
            } else {
                "unique index"
            };
            let mut shape = Vec::new();
            if i.partial {
                shape.push("partial");
            }
            if i.key_columns.contains(&0) {
                shape.push("on an expression");
            }
            let shape = if shape.is_empty() {
                String::new()
            } else {
                format!(" ({})", shape.join(", "))
            };
            let keys = if i.key_defs.is_empty() {
                t.column_names(&i.key_columns).join(", ")
            } else {
                i.key_defs.join(", ")
            };
            let message = format!(
                "{what} {}{shape} on ({keys}) does not include {rname}: the value is unique across all realms",
                i.name
            );
            let plain = !i.partial && !i.key_columns.contains(&0);
            // A plain key is written from its column names; a partial or expression one needs
            // the server's deparsed text, absent when the table was locked during the read.
            let key_texts: Option<Vec<String>> = if plain {
                Some(
                    t.column_names(&i.key_columns)
                        .iter()
                        .map(|n| quote_ident(n))
                        .collect(),
                )
            } else if !i.key_defs.is_empty() && (i.predicate.is_some() || !i.partial) {
                Some(i.key_defs.clone())
            } else {
                None
            };
            let fix = key_texts.map(|mut keys| {
                let new = ctx.index_name(&t.schema, &[&i.name], "realm");
                keys.push(quote_ident(rname));
                let mut s = ctx.dependents_note(i.oid);
                s.push_str(&create_index(t, &new, true, &keys, i.predicate.as_deref()));
                s.push('\n');
                match &i.constraint {
                    Some(c) if plain => {
                        let timing = ctx
                            .constraints_of(t.oid)
                            .iter()
                            .find(|k| k.name == *c)
                            .map_or("", |k| deferrable_sql(k.deferrable, k.deferred));
                        s.push_str(&format!(
                            "ALTER TABLE {} DROP CONSTRAINT {}, ADD CONSTRAINT {} UNIQUE USING INDEX {}{timing};",
                            table_sql(t),
                            quote_ident(c),
                            quote_ident(c),
                            quote_ident(&new)
                        ))
                    }
                    Some(c) => s.push_str(&format!(
                        "ALTER TABLE {} DROP CONSTRAINT {};",
                        table_sql(t),
                        quote_ident(c)
                    )),
                    None if t.kind == TableKind::Partitioned => {
                        s.push_str(&format!("DROP INDEX {};", qualified(&t.schema, &i.name)))
                    }
                    None => s.push_str(&format!(
                        "DROP INDEX CONCURRENTLY {};",
                        qualified(&t.schema, &i.name)
                    )),
                }
                s
            });
            let name = i.constraint.as_deref().unwrap_or(&i.name);
            out.push(ctx.violation(ID, t, Some(name), message, fix));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::testkit::Kit;

    #[test]
    fn unique_constraint_without_realm_is_swapped_for_one_with_it() {
        let mut k = Kit::new();
        let t = k.good("users", &[]);
        k.t(t).columns.push(crate::catalog::Column {
            num: 3,
            name: "email".into(),
            not_null: true,
        });
        k.unique_constraint(t, "users_email_key", &["email"]);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].constraint.as_deref(), Some("users_email_key"));
        assert_eq!(
            v[0].fix.as_deref().unwrap(),
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_key_realm ON public.users (email, realm_id);\n\
             ALTER TABLE public.users DROP CONSTRAINT users_email_key, ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key_realm;"
        );
    }

    #[test]
    fn partial_expression_index_keeps_its_predicate() {
        let mut k = Kit::new();
        let t = k.good("users", &[]);
        let i = k.index(t, "users_lower_email", &[""], true);
        i.partial = true;
        i.predicate = Some("deleted_at IS NULL".into());
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("(partial, on an expression)"),
            "{}",
            v[0].message
        );
        assert_eq!(
            v[0].fix.as_deref().unwrap(),
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_lower_email_realm ON public.users (lower(email), realm_id) WHERE deleted_at IS NULL;\n\
             DROP INDEX CONCURRENTLY public.users_lower_email;"
        );
    }

    #[test]
    fn unique_with_realm_and_plain_indexes_are_fine() {
        let mut k = Kit::new();
        let t = k.good("users", &["n"]);
        k.unique_constraint(t, "users_realm_id_n_key", &["n", "realm_id"]);
        k.index(t, "users_n_idx", &["n"], false);
        assert!(k.of(super::ID).is_empty());
    }
}
