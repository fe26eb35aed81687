//! The fence: while a realm moves, writes to it are refused on the source, so that what the
//! copy reads is all there is. Two `BEFORE … FOR EACH ROW` triggers per realm-scoped table (and
//! the realms table) whose `WHEN` clause matches only that realm's rows, so writes to the other
//! realms never even call a function. Installed and dropped one table per short transaction
//! under `lock_timeout` (CREATE TRIGGER takes SHARE ROW EXCLUSIVE), retried with backoff.
//!
//! The refusal (docs/realm.md): SQLSTATE 55006 (object_in_use), message `realm W is being moved
//! to another database: writes to it are refused until the move ends`. realmguard's own delete
//! session sets `realmguard.fence_bypass = on` to get past it. TRUNCATE is not fenced.

use super::plan::{Plan, RealmTable};
use super::{Error, Result};
use crate::db::{quote_ident, quote_literal};
use sha2::Digest as _;
use sqlx::PgConnection;
use std::time::Duration;

const FUNCTION: &str = "CREATE SCHEMA IF NOT EXISTS realmguard;
CREATE OR REPLACE FUNCTION realmguard.realm_fence() RETURNS trigger LANGUAGE plpgsql AS $fence$
BEGIN
    IF current_setting('realmguard.fence_bypass', true) = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'realm % is being moved to another database: writes to it are refused until the move ends', TG_ARGV[0]
        USING ERRCODE = '55006',
              HINT = 'retry after realmguard realm move has finished; the realm then lives on its new database',
              TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
END
$fence$";

/// The triggers' name prefix for `realm`: a digest, since a realm id may be any text.
pub fn trigger_name(realm: &str) -> String {
    let d = sha2::Sha256::digest(realm.as_bytes());
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("realmguard_fence_{hex}")
}

/// The statements that fence `realm` on table `t`.
pub fn install_sql(t: &RealmTable, realm: &str, key_type: &str) -> String {
    let name = trigger_name(realm);
    let col = quote_ident(&t.realm_column);
    let lit = format!("{}::{key_type}", quote_literal(realm));
    let arg = quote_literal(realm);
    format!(
        "CREATE OR REPLACE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW WHEN (NEW.{col} = {lit}) EXECUTE FUNCTION realmguard.realm_fence({arg});\n\
         CREATE OR REPLACE TRIGGER {} BEFORE UPDATE OR DELETE ON {} FOR EACH ROW WHEN (OLD.{col} = {lit}) EXECUTE FUNCTION realmguard.realm_fence({arg})",
        quote_ident(&format!("{name}_new")),
        t.sql_name(),
        quote_ident(&format!("{name}_old")),
        t.sql_name(),
    )
}

pub fn drop_sql(t: &RealmTable, realm: &str) -> String {
    let name = trigger_name(realm);
    format!(
        "DROP TRIGGER IF EXISTS {} ON {};\nDROP TRIGGER IF EXISTS {} ON {}",
        quote_ident(&format!("{name}_new")),
        t.sql_name(),
        quote_ident(&format!("{name}_old")),
        t.sql_name()
    )
}

/// Fence every table of the plan (idempotent: a rerun replaces what is there).
pub async fn install(
    conn: &mut PgConnection,
    plan: &Plan,
    realm: &str,
    lock_timeout: Duration,
) -> Result<()> {
    super::exec(conn, FUNCTION)
        .await
        .map_err(|e| Error::FenceFunction {
            source: Box::new(e),
        })?;
    for t in plan.copy_order() {
        short_ddl(conn, &install_sql(t, realm, &plan.key_type), lock_timeout)
            .await
            .map_err(|e| Error::Fence {
                table: t.label(),
                source: Box::new(e),
            })?;
    }
    Ok(())
}

/// Drop the fence from every table (idempotent).
pub async fn remove(
    conn: &mut PgConnection,
    plan: &Plan,
    realm: &str,
    lock_timeout: Duration,
) -> Result<()> {
    for t in plan.copy_order() {
        short_ddl(conn, &drop_sql(t, realm), lock_timeout)
            .await
            .map_err(|e| Error::Unfence {
                table: t.label(),
                source: Box::new(e),
            })?;
    }
    Ok(())
}

/// Run `sql` in its own transaction under `lock_timeout`, retried with backoff while the lock
/// is not granted (the application's queries queue behind a waiting DDL, so it must not wait
/// long).
async fn short_ddl(conn: &mut PgConnection, sql: &str, lock_timeout: Duration) -> Result<()> {
    const RETRIES: u32 = 30;
    let ms = lock_timeout.as_millis().max(1);
    let body = format!("BEGIN; SET LOCAL lock_timeout = '{ms}ms'; {sql}; COMMIT");
    let mut attempt = 0;
    loop {
        match sqlx::raw_sql(&body).execute(&mut *conn).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                if !crate::db::is_lock_conflict(&e) || attempt >= RETRIES {
                    return Err(Error::statement(&e));
                }
                tokio::time::sleep(crate::db::backoff(
                    attempt,
                    Duration::from_millis(50),
                    Duration::from_secs(2),
                ))
                .await;
                attempt += 1;
            }
        }
    }
}
