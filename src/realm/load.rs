//! How the target takes the rows: with its foreign-key triggers off and every foreign key then
//! checked once per constraint by a set query, when that is safe (docs/realm.md, "Loading the
//! target").
//!
//! PostgreSQL checks a foreign key with one query per inserted row (an `AFTER` trigger); for a
//! realm of a million memberships that is most of the target's work. Under
//! `session_replication_role = replica` those triggers do not fire, as under `pg_restore
//! --disable-triggers` or a logical-replication subscriber; the copy then proves each key with
//! one anti-join per constraint, in the same transaction, before the target commits. It is used
//! only when the target's realm tables have no trigger of their own (a user trigger must keep
//! firing and changing rows as it would) and the role may set the parameter; otherwise the rows
//! go in with the triggers on, as a plain `COPY` would.

use super::error::{Error, Result};
use super::plan::Plan;
use crate::db::{qualified, quote_ident};
use sqlx::PgConnection;

/// How the target was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Foreign-key triggers off; every key checked afterwards by [`check_foreign_keys`].
    KeysCheckedAfter,
    /// Every trigger on (the target has triggers of its own, or the role may not turn them off).
    Triggers,
}

/// Any trigger on the target's realm tables (or their partitions) that is not one of
/// PostgreSQL's own foreign-key triggers and is not disabled.
const USER_TRIGGERS_SQL: &str = "SELECT EXISTS (
    SELECT 1 FROM pg_trigger g
    WHERE NOT g.tgisinternal AND g.tgenabled <> 'D' AND g.tgrelid IN (
        SELECT t.name::regclass FROM unnest($1::text[]) AS t(name)
        UNION ALL
        SELECT p.relid FROM unnest($1::text[]) AS t(name), pg_partition_tree(t.name::regclass) AS p))";

/// Pick the mode for the target's open transaction and set it up there.
pub async fn begin(dst: &mut PgConnection, tp: &Plan) -> Result<Mode> {
    let tables: Vec<String> = tp.copy_order().map(|t| t.sql_name()).collect();
    let has_triggers: bool = sqlx::query_scalar(USER_TRIGGERS_SQL)
        .bind(&tables)
        .fetch_one(&mut *dst)
        .await
        .map_err(|source| Error::ReadTargetTriggers { source })?;
    if has_triggers {
        return Ok(Mode::Triggers);
    }
    // In a savepoint: a role that may not set the parameter leaves the transaction usable.
    let set = sqlx::raw_sql(
        "SAVEPOINT realmguard_load; SET LOCAL session_replication_role = replica; \
         RELEASE SAVEPOINT realmguard_load",
    )
    .execute(&mut *dst)
    .await;
    match set {
        Ok(_) => Ok(Mode::KeysCheckedAfter),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
            sqlx::raw_sql(
                "ROLLBACK TO SAVEPOINT realmguard_load; RELEASE SAVEPOINT realmguard_load",
            )
            .execute(&mut *dst)
            .await
            .map_err(|source| Error::SetReplicationRole { source })?;
            Ok(Mode::Triggers)
        }
        Err(source) => Err(Error::SetReplicationRole { source }),
    }
}

/// One foreign key of a realm table on the target, names quoted for SQL.
struct Key {
    name: String,
    /// The child as reports name it.
    label: String,
    child: String,
    parent: String,
    columns: Vec<String>,
    ref_columns: Vec<String>,
    match_full: bool,
}

/// Prove every foreign key of the copied rows, as the skipped triggers would have: count the
/// realm's distinct key values on each child that have no parent row. Parent rows other
/// sessions can see (a global table, or a key that does not carry the realm) are first locked
/// `FOR KEY SHARE`, as the triggers lock them, so none is deleted before the target commits.
/// Then the parameter goes back to `origin` for whatever the transaction does next.
pub async fn check_foreign_keys(dst: &mut PgConnection, tp: &Plan, realm: &str) -> Result<()> {
    let table = |(schema, name): &(String, String)| {
        tp.copy_order()
            .find(|t| &t.schema == schema && &t.name == name)
    };
    for r in &tp.foreign_keys {
        let child = table(&r.child).ok_or_else(|| Error::NotRealmTable {
            table: format!("{}.{}", r.child.0, r.child.1),
        })?;
        let filter = child.realm_filter(realm, &tp.key_type);
        // Parent rows only this transaction can see: the realm's own, which the target held
        // none of before the copy (the preflight refuses otherwise).
        let ours = table(&r.parent).is_some_and(|p| {
            r.columns
                .iter()
                .zip(&r.ref_columns)
                .any(|(c, rc)| *c == child.realm_column && *rc == p.realm_column)
        });
        let quoted = |v: &[String]| v.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
        let key = Key {
            label: child.label(),
            child: child.sql_name(),
            parent: qualified(&r.parent.0, &r.parent.1),
            columns: quoted(&r.columns),
            ref_columns: quoted(&r.ref_columns),
            match_full: r.match_full,
            name: r.constraint.clone(),
        };
        if !ours {
            sqlx::query(&lock_sql(&key, &filter))
                .execute(&mut *dst)
                .await
                .map_err(|source| Error::LockReferenced {
                    constraint: key.name.clone(),
                    source,
                })?;
        }
        let missing: i64 = sqlx::query_scalar(&missing_sql(&key, &filter))
            .fetch_one(&mut *dst)
            .await
            .map_err(|source| Error::CheckForeignKey {
                constraint: key.name.clone(),
                source,
            })?;
        if missing > 0 {
            return Err(Error::BrokenForeignKey {
                table: key.label,
                missing,
                constraint: key.name,
                parent: key.parent,
            });
        }
    }
    sqlx::raw_sql("SET LOCAL session_replication_role = origin")
        .execute(&mut *dst)
        .await
        .map_err(|source| Error::SetReplicationRole { source })?;
    Ok(())
}

/// The realm's distinct non-null key values on the child.
fn keys_of(key: &Key, filter: &str) -> String {
    let cols = key.columns.join(", ");
    let not_null = key
        .columns
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "SELECT DISTINCT {cols} FROM {} WHERE {filter} AND {not_null}",
        key.child
    )
}

fn lock_sql(key: &Key, filter: &str) -> String {
    format!(
        "SELECT 1 FROM {} AS p WHERE ({}) IN ({}) FOR KEY SHARE OF p",
        key.parent,
        key.ref_columns
            .iter()
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        keys_of(key, filter)
    )
}

/// Rows breaking the key: a value with no parent row, and under `MATCH FULL` also a key that
/// is null in some columns only.
fn missing_sql(key: &Key, filter: &str) -> String {
    let join = key
        .columns
        .iter()
        .zip(&key.ref_columns)
        .map(|(c, rc)| format!("p.{rc} = r.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut sql = format!(
        "SELECT (SELECT count(*) FROM ({}) AS r WHERE NOT EXISTS (SELECT 1 FROM {} AS p WHERE {join}))",
        keys_of(key, filter),
        key.parent
    );
    if key.match_full && key.columns.len() > 1 {
        let cols = key.columns.join(", ");
        sql.push_str(&format!(
            " + (SELECT count(*) FROM {} WHERE {filter} AND num_nulls({cols}) BETWEEN 1 AND {})",
            key.child,
            key.columns.len() - 1
        ));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(match_full: bool) -> Key {
        Key {
            name: "m_user_fk".into(),
            label: "public.memberships".into(),
            child: "public.memberships".into(),
            parent: "public.users".into(),
            columns: vec!["user_id".into(), "realm_id".into()],
            ref_columns: vec!["id".into(), "realm_id".into()],
            match_full,
        }
    }

    #[test]
    fn a_missing_parent_is_looked_for_per_distinct_key() {
        let q = missing_sql(&key(false), "realm_id = 'w1'::text");
        assert!(q.contains("SELECT DISTINCT user_id, realm_id FROM public.memberships WHERE realm_id = 'w1'::text AND user_id IS NOT NULL AND realm_id IS NOT NULL"), "{q}");
        assert!(
            q.contains("p.id = r.user_id AND p.realm_id = r.realm_id"),
            "{q}"
        );
        assert!(!q.contains("num_nulls"), "{q}");
        assert!(missing_sql(&key(true), "true")
            .contains("num_nulls(user_id, realm_id) BETWEEN 1 AND 1"));
    }

    #[test]
    fn parents_are_locked_as_the_trigger_locks_them() {
        let q = lock_sql(&key(false), "true");
        assert!(
            q.starts_with(
                "SELECT 1 FROM public.users AS p WHERE (p.id, p.realm_id) IN (SELECT DISTINCT"
            ),
            "{q}"
        );
        assert!(q.ends_with("FOR KEY SHARE OF p"), "{q}");
    }
}
