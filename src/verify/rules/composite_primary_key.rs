//! `composite-primary-key`: no primary key; or the key lacks the realm column; or the table has an
//! `id` column and the key is not exactly {id, realm column} in either order (a partitioned table
//! may add its partition-key columns, which PostgreSQL requires in every unique key).

use crate::catalog::{AttNum, Table, TableKind};
use crate::db::quote_ident;
use crate::verify::fix::{create_index, deferrable_sql, object_name, table_sql};
use crate::verify::{col_set, msg_cols, Ctx, Violation};
use std::collections::HashSet;

pub const ID: &str = crate::rules::Rule::CompositePrimaryKey.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.scoped_tables() {
        let rname = t.realm_column(&ctx.cfg.realm_column);
        let Some(realm) = ctx.realm_col(t.oid) else {
            continue; // realm-column-missing says it; a key on a missing column cannot be written
        };
        let id = t.column("id").map(|c| c.num);
        let part: Vec<AttNum> = if t.kind == TableKind::Partitioned {
            t.partition_key
                .iter()
                .copied()
                .filter(|n| *n != 0)
                .collect()
        } else {
            Vec::new()
        };
        let pk = ctx.primary_key(t.oid);
        let problem = match (pk, id) {
            (None, Some(_)) => Some(format!("no primary key; expected (id, {rname})")),
            (None, None) => Some(format!(
                "no primary key; expected one that includes {rname}"
            )),
            (Some(pk), _) if !pk.columns.contains(&realm) => Some(format!(
                "primary key {} is {}: it lacks {rname}",
                pk.name,
                msg_cols(t, &pk.columns)
            )),
            (Some(pk), Some(id)) => {
                let have = col_set(&pk.columns);
                let base: HashSet<AttNum> = [id, realm].into();
                let allowed: HashSet<AttNum> = base.iter().chain(&part).copied().collect();
                if have.is_superset(&base) && have.is_subset(&allowed) {
                    None
                } else {
                    Some(format!(
                        "primary key {} is {}; expected (id, {rname})",
                        pk.name,
                        msg_cols(t, &pk.columns)
                    ))
                }
            }
            (Some(_), None) => None,
        };
        let Some(message) = problem else { continue };
        // The key to build: (id, realm), or the old key plus the realm column for a table
        // without id; a partitioned table must also carry its partition key.
        let mut want: Vec<AttNum> = match (id, pk) {
            (Some(id), _) => vec![id, realm],
            (None, Some(pk)) => pk.columns.iter().copied().chain([realm]).collect(),
            (None, None) => Vec::new(),
        };
        if !want.is_empty() {
            for p in &part {
                if !want.contains(p) {
                    want.push(*p);
                }
            }
        }
        let fix = (!want.is_empty()).then(|| fix_sql(ctx, t, pk.map(|p| p.name.as_str()), &want));
        out.push(ctx.violation(ID, t, pk.map(|p| p.name.as_str()), message, fix));
    }
}

fn fix_sql(ctx: &Ctx, t: &Table, old: Option<&str>, want: &[AttNum]) -> String {
    let tq = table_sql(t);
    let names = t.column_names(want);
    let cols: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
    let pk_name = old
        .map(str::to_string)
        .unwrap_or_else(|| object_name(&[&t.name], "pkey"));
    let drop = old
        .map(|o| format!("DROP CONSTRAINT {}, ", quote_ident(o)))
        .unwrap_or_default();
    let mut s = String::new();
    if let Some(old_index) = ctx.indexes_of(t.oid).iter().find(|i| i.primary) {
        s.push_str(&ctx.dependents_note(old_index.oid));
    }
    if t.kind == TableKind::Partitioned {
        s.push_str(&format!(
            "-- PostgreSQL cannot swap the key of a partitioned table online: this locks it for the build.\nALTER TABLE {tq} {drop}ADD CONSTRAINT {} PRIMARY KEY ({});",
            quote_ident(&pk_name),
            cols.join(", ")
        ));
        return s;
    }
    // Reuse a unique index already on exactly these columns (docs/online-ddl.md, pitfall 2), unless a
    // constraint owns it (USING INDEX refuses those).
    let want_set = col_set(want);
    let existing = ctx.indexes_of(t.oid).iter().find(|i| {
        i.unique
            && !i.primary
            && i.valid
            && !i.partial
            && i.constraint.is_none()
            && col_set(&i.key_columns) == want_set
            && i.key_columns.len() == want.len()
    });
    let idx = match existing {
        Some(i) => i.name.clone(),
        None => {
            let mut parts: Vec<&str> = vec![&t.name];
            parts.extend(names.iter().map(String::as_str));
            let idx = ctx.index_name(&t.schema, &parts, "key");
            s.push_str(&create_index(t, &idx, true, &cols, None));
            s.push('\n');
            idx
        }
    };
    let timing = ctx
        .primary_key(t.oid)
        .map_or("", |k| deferrable_sql(k.deferrable, k.deferred));
    s.push_str(&format!(
        "ALTER TABLE {tq} {drop}ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}{timing};",
        quote_ident(&pk_name),
        quote_ident(&idx)
    ));
    s
}

#[cfg(test)]
mod tests {
    use crate::catalog::TableKind;
    use crate::verify::testkit::Kit;

    #[test]
    fn id_only_key_is_reported_and_fixed_by_an_index_swap() {
        let mut k = Kit::new();
        let t = k.table(
            "public",
            "groups",
            &[("id", "bigint", true), ("realm_id", "text", true)],
        );
        k.pk(t, &["id"]);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].constraint.as_deref(), Some("groups_pkey"));
        assert_eq!(
            v[0].fix.as_deref().unwrap(),
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS groups_id_realm_id_key ON public.groups (id, realm_id);\n\
             ALTER TABLE public.groups DROP CONSTRAINT groups_pkey, ADD CONSTRAINT groups_pkey PRIMARY KEY USING INDEX groups_id_realm_id_key;"
        );
    }

    #[test]
    fn key_in_either_order_is_fine_and_extra_columns_are_not() {
        let mut k = Kit::new();
        let a = k.table(
            "public",
            "a",
            &[("id", "bigint", true), ("realm_id", "text", true)],
        );
        k.pk(a, &["realm_id", "id"]);
        assert!(k.of(super::ID).is_empty());
        let b = k.table(
            "public",
            "b",
            &[
                ("id", "bigint", true),
                ("realm_id", "text", true),
                ("x", "int", true),
            ],
        );
        k.pk(b, &["id", "realm_id", "x"]);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].table, "b");
    }

    #[test]
    fn missing_key_and_key_without_realm_on_a_table_without_id() {
        let mut k = Kit::new();
        let a = k.table(
            "public",
            "a",
            &[("id", "bigint", true), ("realm_id", "text", true)],
        );
        let _ = a;
        let b = k.table(
            "public",
            "b",
            &[("code", "text", true), ("realm_id", "text", true)],
        );
        k.pk(b, &["code"]);
        let c = k.table(
            "public",
            "c",
            &[("code", "text", true), ("realm_id", "text", true)],
        );
        k.pk(c, &["realm_id", "code"]);
        let v = k.of(super::ID);
        let tables: Vec<&str> = v.iter().map(|v| v.table.as_str()).collect();
        assert_eq!(tables, ["a", "b"]);
        assert!(v[0].message.contains("no primary key"));
        assert!(v[1].fix.as_deref().unwrap().contains("(code, realm_id)"));
    }

    #[test]
    fn partitioned_table_may_add_its_partition_key() {
        let mut k = Kit::new();
        let t = k.table(
            "public",
            "events",
            &[
                ("id", "bigint", true),
                ("realm_id", "text", true),
                ("at", "date", true),
            ],
        );
        k.t(t).kind = TableKind::Partitioned;
        k.t(t).partition_key = vec![3];
        k.pk(t, &["id", "realm_id", "at"]);
        assert!(k.of(super::ID).is_empty());
        let mut k2 = Kit::new();
        let t2 = k2.table(
            "public",
            "events",
            &[
                ("id", "bigint", true),
                ("realm_id", "text", true),
                ("at", "date", true),
            ],
        );
        k2.pk(t2, &["id", "realm_id", "at"]);
        assert_eq!(
            k2.of(super::ID).len(),
            1,
            "not partitioned: at is an extra column"
        );
    }
}
