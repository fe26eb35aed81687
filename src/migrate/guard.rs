//! The verify guard: before a migration's COMMIT, verify the tables it touched and compare with
//! the committed state; a migration that *introduces* an error-severity violation is rolled back.
//!
//! What a migration touched is read from the locks its transaction holds: every DDL statement
//! takes a lock stronger than ROW EXCLUSIVE on each table it changes (drops included, which leave
//! no trace in the catalog rows themselves), and that lock is held until COMMIT. Plain DML takes
//! ROW EXCLUSIVE at most and cannot change the schema. The one lock that does not mean "changed"
//! is the SHARE ROW EXCLUSIVE a new foreign key takes on the table it references. So the guard costs one small query on
//! `pg_locks` plus a scoped verify of those tables, whatever the size of the catalog.

use super::source::Migration;
use crate::config::Config;
use crate::rules::Severity;
use crate::verify::Violation;
use anyhow::Context;
use serde::Serialize;
use sqlx::{PgConnection, Row};

#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub version: i64,
    pub file: String,
    /// The error-severity violations the migration would have introduced.
    pub violations: Vec<Violation>,
}

const TOUCHED: &str = "
WITH mine AS (
    SELECT COALESCE(pg_partition_root(COALESCE(i.indrelid, l.relation)), i.indrelid, l.relation) AS rel, l.mode
      FROM pg_locks l
      LEFT JOIN pg_index i ON i.indexrelid = l.relation
     WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
       AND l.mode NOT IN ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock')
), changed AS (
    SELECT rel FROM mine WHERE mode <> 'ShareRowExclusiveLock'
    UNION
    -- ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE on both ends. The child owns the constraint the
    -- rules judge; the parent's shape does not change, and scoping from a parent such as the
    -- realms table would drag in every table that references it.
    SELECT m.rel FROM mine m
     WHERE m.mode = 'ShareRowExclusiveLock'
       AND EXISTS (SELECT 1 FROM pg_constraint co JOIN mine p ON p.rel = co.confrelid
                    WHERE co.contype = 'f' AND co.conrelid = m.rel)
)
SELECT n.nspname::text, c.relname::text
  FROM changed t
  JOIN pg_class c ON c.oid = t.rel
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')";

/// Tables whose definition the current transaction changed (or created).
pub async fn touched_tables(conn: &mut PgConnection) -> anyhow::Result<Vec<(String, String)>> {
    let rows = sqlx::query(TOUCHED)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read which tables the migration changed")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// `Some(rejection)` when the migration running on `conn` introduces error-severity violations
/// compared with the committed state seen by `before_conn`. Violations that existed before do not
/// count, so a legacy database stays migratable. The committed state is read only when the
/// migrated state has errors at all, so a clean migration costs one scoped verify.
pub async fn check(
    conn: &mut PgConnection,
    before_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
) -> anyhow::Result<Option<Rejection>> {
    let touched = touched_tables(conn).await?;
    if touched.is_empty() {
        return Ok(None);
    }
    let after = crate::verify::verify_tables(conn, cfg, &touched)
        .await
        .with_context(|| format!("cannot verify what migration {} changed", m.version))?;
    if after.errors().next().is_none() {
        return Ok(None);
    }
    let before = crate::verify::verify_tables(before_conn, cfg, &touched)
        .await
        .with_context(|| format!("cannot verify the state before migration {}", m.version))?;
    let key = |v: &Violation| {
        (
            v.rule.clone(),
            v.schema.clone(),
            v.table.clone(),
            v.constraint.clone(),
        )
    };
    let existed: std::collections::HashSet<_> = before.violations.iter().map(key).collect();
    let introduced: Vec<Violation> = after
        .violations
        .into_iter()
        .filter(|v| v.severity == Severity::Error && !existed.contains(&key(v)))
        .collect();
    if introduced.is_empty() {
        return Ok(None);
    }
    Ok(Some(Rejection {
        version: m.version,
        file: m.path.display().to_string(),
        violations: introduced,
    }))
}
