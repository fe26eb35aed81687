//! The verify guard: before a migration's COMMIT, verify the tables it touched and compare with
//! the committed state; a migration that *introduces* an error-severity violation is rolled back.
//!
//! What a migration touched is read from the locks its transaction holds: every DDL statement
//! takes a lock stronger than ROW EXCLUSIVE on each table it changes (drops included, which leave
//! no trace in the catalog rows themselves), and that lock is held until COMMIT. Plain DML takes
//! ROW EXCLUSIVE at most and cannot change the schema. The one lock that does not mean "changed"
//! is the SHARE ROW EXCLUSIVE a new foreign key takes on the table it references (see
//! `catalog/sql/touched.sql`). The lock read and the scoped catalog read of those tables are one
//! statement, so a clean migration costs the guard one round trip, whatever the catalog's size.

use super::source::Migration;
use super::Error;
use crate::config::Config;
use crate::rules::Severity;
use crate::verify::Violation;
use serde::Serialize;
use sqlx::{PgConnection, Row};

#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub version: i64,
    pub file: String,
    /// The error-severity violations the migration would have introduced.
    pub violations: Vec<Violation>,
}

/// Tables whose definition the current transaction changed (or created).
pub async fn touched_tables(conn: &mut PgConnection) -> Result<Vec<(String, String)>, Error> {
    let rows = sqlx::query(crate::catalog::TOUCHED_SQL)
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::Touched)?;
    Ok(rows
        .iter()
        .map(|r| (r.get("schema"), r.get("name")))
        .collect())
}

/// `Some(rejection)` when the migration running on `conn` introduces error-severity violations
/// compared with the committed state seen by `before_conn`. Violations that existed before do not
/// count, so a legacy database stays migratable. The committed state is read only when the
/// migrated state has errors at all, so a clean migration costs one round trip: the changed
/// tables and their scoped catalog come from a single statement.
pub async fn check(
    conn: &mut PgConnection,
    before_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
) -> Result<Option<Rejection>, Error> {
    let (touched, after) = crate::verify::verify_changed(conn, cfg)
        .await
        .map_err(|source| Error::VerifyChanged {
            version: m.version,
            source,
        })?;
    judge(before_conn, cfg, m, touched, after).await
}

/// [`check`] of the row the guard's read answered inside the migration's batch
/// (`catalog::GUARD_EXECUTE_SQL`).
pub async fn check_row(
    row: &sqlx::postgres::PgRow,
    before_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
) -> Result<Option<Rejection>, Error> {
    use sqlx::Row;
    // No table changed (json_agg of no rows is NULL): nothing can be introduced, so the rest of
    // the row (the realms table's catalog, which the read leaves out then) is not decoded. A
    // column that does not decode goes the long way, which reports it.
    if matches!(row.try_get::<Option<&str>, _>("touched"), Ok(None)) {
        return Ok(None);
    }
    let (touched, after) =
        crate::verify::verify_guard_row(row, cfg).map_err(|source| Error::VerifyChanged {
            version: m.version,
            source,
        })?;
    judge(before_conn, cfg, m, touched, after).await
}

/// The violations of the migrated state (`after`, over the `touched` tables) that the committed
/// state does not have.
async fn judge(
    before_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
    touched: Vec<(String, String)>,
    after: crate::verify::Report,
) -> Result<Option<Rejection>, Error> {
    if touched.is_empty() || after.errors().next().is_none() {
        return Ok(None);
    }
    let before = crate::verify::verify_tables(before_conn, cfg, &touched)
        .await
        .map_err(|source| Error::VerifyBefore {
            version: m.version,
            source,
        })?;
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
