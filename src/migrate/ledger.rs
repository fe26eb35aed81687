//! The ledger: `realmguard.migrations`, one row per applied version with its checksum, who applied
//! it and when, how long it took, and how many of its statements ran (no-transaction files record
//! progress per statement so a rerun resumes). Also adopts sqlx-cli's `_sqlx_migrations`.

use super::plan::Applied;
use super::source::{hex, Migration};
use super::{Error, Result};
use sqlx::{PgConnection, Row};

const CREATE: &str = "
CREATE SCHEMA IF NOT EXISTS realmguard;
CREATE TABLE IF NOT EXISTS realmguard.migrations (
    version            bigint PRIMARY KEY,
    description        text NOT NULL,
    checksum           text NOT NULL,
    applied_by         text NOT NULL DEFAULT current_user,
    applied_at         timestamptz NOT NULL DEFAULT now(),
    duration_ms        bigint NOT NULL DEFAULT 0,
    statements_applied integer NOT NULL,
    statements_total   integer NOT NULL,
    success            boolean NOT NULL,
    baseline           boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE realmguard.migrations IS 'realmguard migrate ledger: one row per applied version';
";

/// Create the ledger if needed (caller holds the migration lock). Returns whether it was new.
pub async fn ensure(conn: &mut PgConnection) -> Result<bool> {
    let existed = exists(conn).await?;
    if !existed {
        crate::db::create_if_missing(conn, CREATE, "the ledger realmguard.migrations").await?;
    }
    Ok(!existed)
}

/// Make the ledger ready for a runner holding the migration lock: create it when missing and, the
/// first time only, adopt sqlx-cli's history. Returns how many versions were adopted. `migrate`
/// and `baseline` both go through here, so whichever runs first adopts.
pub async fn prepare(conn: &mut PgConnection, files: &[Migration]) -> Result<usize> {
    if ensure(conn).await? {
        adopt_sqlx(conn, files).await
    } else {
        Ok(0)
    }
}

pub async fn exists(conn: &mut PgConnection) -> Result<bool> {
    let found: bool = sqlx::query_scalar("SELECT to_regclass('realmguard.migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::LedgerLookup)?;
    Ok(found)
}

/// Every ledger row (empty when there is no ledger yet).
pub async fn read(conn: &mut PgConnection) -> Result<Vec<Applied>> {
    if !exists(conn).await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT version, description, checksum, success, statements_applied, statements_total,
                to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || 'Z', applied_by,
                duration_ms, baseline
         FROM realmguard.migrations ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::LedgerRead)?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            version: r.get(0),
            description: r.get(1),
            checksum: r.get(2),
            success: r.get(3),
            statements_applied: r.get(4),
            statements_total: r.get(5),
            applied_at: r.get(6),
            applied_by: r.get(7),
            duration_ms: r.get(8),
            baseline: r.get(9),
        })
        .collect())
}

/// Record a migration (inside the migration's own transaction for transactional files).
pub async fn insert(
    conn: &mut PgConnection,
    m: &Migration,
    success: bool,
    applied: i32,
    total: i32,
    duration_ms: i64,
    baseline: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO realmguard.migrations
            (version, description, checksum, duration_ms, statements_applied, statements_total, success, baseline)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(m.version)
    .bind(&m.description)
    .bind(&m.checksum)
    .bind(duration_ms)
    .bind(applied)
    .bind(total)
    .bind(success)
    .bind(baseline)
    .execute(&mut *conn)
    .await
    .map_err(|source| Error::Record {
        version: m.version,
        source,
    })?;
    Ok(())
}

/// [`insert`]'s row for a migration that succeeded whole, as SQL text with literal values, to be
/// sent in the same round trip as the migration's statements. Its duration is measured by the
/// server: from the arrival of that batch (`statement_timestamp()`) to the insert.
pub fn insert_applied_sql(m: &Migration, statements: i32) -> String {
    format!(
        "INSERT INTO realmguard.migrations
            (version, description, checksum, duration_ms, statements_applied, statements_total, success, baseline)
         VALUES ({}, {}, {}, (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::bigint, {statements}, {statements}, true, false)",
        m.version,
        literal(&m.description),
        literal(&m.checksum)
    )
}

/// A string literal that reads the same whatever `standard_conforming_strings` says: an `E''`
/// literal with backslashes doubled when there are any.
fn literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Per-statement progress of a no-transaction migration.
pub async fn progress(
    conn: &mut PgConnection,
    version: i64,
    applied: i32,
    success: bool,
    duration_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE realmguard.migrations
            SET statements_applied = $2, success = $3, duration_ms = duration_ms + $4, applied_at = now()
          WHERE version = $1",
    )
    .bind(version)
    .bind(applied)
    .bind(success)
    .bind(duration_ms)
    .execute(&mut *conn)
    .await
    .map_err(|source| Error::Progress { version, source })?;
    Ok(())
}

/// Copy sqlx-cli's history into an empty ledger, so its users switch without re-running anything.
/// A row whose SHA-384 matches the file on disk gets our checksum of that file; one that does not
/// keeps `sqlx:<hex>` and so shows as modified (or missing) in `status`.
pub async fn adopt_sqlx(conn: &mut PgConnection, files: &[Migration]) -> Result<usize> {
    let has: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !has {
        return Ok(0);
    }
    let rows = sqlx::query(
        "SELECT version, description, checksum, execution_time / 1000000, installed_on::text
           FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::SqlxRead)?;
    for r in &rows {
        let version: i64 = r.get(0);
        let sqlx_sum: Vec<u8> = r.get(2);
        let file = files.iter().find(|f| f.version == version);
        let checksum = match file {
            Some(f) if f.sqlx_checksum == sqlx_sum || sha384(&f.sql) == sqlx_sum => {
                f.checksum.clone()
            }
            _ => format!("sqlx:{}", hex(&sqlx_sum)),
        };
        let total = file.map_or(0, Migration::statement_count);
        sqlx::query(
            "INSERT INTO realmguard.migrations
                (version, description, checksum, applied_by, applied_at, duration_ms, statements_applied, statements_total, success)
             VALUES ($1, $2, $3, 'sqlx-cli', $5::timestamptz, $4, $6, $6, true)",
        )
        .bind(version)
        .bind(r.get::<String, _>(1))
        .bind(checksum)
        .bind(r.get::<i64, _>(3))
        .bind(r.get::<String, _>(4))
        .bind(total)
        .execute(&mut *conn)
        .await
        .map_err(|source| Error::Adopt { version, source })?;
    }
    Ok(rows.len())
}

fn sha384(s: &str) -> Vec<u8> {
    use sha2::{Digest, Sha384};
    Sha384::digest(s.as_bytes()).to_vec()
}

#[cfg(test)]
mod literal_tests {
    #[test]
    fn literals_survive_quotes_and_backslashes() {
        assert_eq!(super::literal("it's"), "'it''s'");
        assert_eq!(super::literal(r"a\b'c"), r"E'a\\b''c'");
    }
}
