//! Applying migrations: the advisory lock, one transaction per migration (script and ledger row
//! commit together or not at all), `lock_timeout` with retry so a migration never waits in the lock
//! queue in front of the application, and the no-transaction mode that runs statement by
//! statement, records progress, resumes, and checks that every index it built is valid.

use super::ledger;
use super::plan::{self, Applied, PlanOptions};
use super::source::Migration;
use super::{Error, Result};
use crate::config::Config;
use crate::db::{self, Target};
use crate::events::{Cancel, Event, EventSink, Unit};
use crate::split::{self, Piece};
use serde::Serialize;
use sqlx::PgConnection;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod in_transaction;
mod no_transaction;

use in_transaction::{apply_in_transaction, commit_deferred, Deferred, Outcome, Pipeline};
use no_transaction::apply_no_transaction;

/// Advisory lock key: "realmgrd" in ASCII, fixed so every realmguard version agrees on it.
pub const LOCK_KEY: i64 = 0x7265_616c_6d67_7264;

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub plan: PlanOptions,
    pub dry_run: bool,
    pub lock_wait: Duration,
    pub lock_timeout: Duration,
    pub lock_retries: u32,
    pub statement_timeout: Duration,
    /// Verify, inside each migration's transaction, that it introduces no error-severity violation.
    pub guard: bool,
    pub allow_violations: bool,
    /// Checked before each migration: once set, the run stops after the migration in hand
    /// (the fleet sets it after a failure under `on_error = "stop"`, or on Ctrl-C).
    pub cancel: Cancel,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            plan: PlanOptions::default(),
            dry_run: false,
            lock_wait: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(2),
            lock_retries: 8,
            statement_timeout: Duration::ZERO,
            guard: true,
            allow_violations: false,
            cancel: Cancel::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
    pub file: PathBuf,
    pub no_transaction: bool,
    pub statements: usize,
    /// For a resumed no-transaction migration: how many statements had run before.
    pub resumed_after: Option<usize>,
    pub attempts: u32,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedMigration {
    pub version: i64,
    pub description: String,
    pub file: PathBuf,
    pub no_transaction: bool,
    pub sql: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrateReport {
    pub dry_run: bool,
    /// Migrations this run applied, in order.
    pub applied: Vec<AppliedMigration>,
    /// With --dry-run: what would run.
    pub planned: Vec<PlannedMigration>,
    /// Migrations applied before this run.
    pub already_applied: usize,
    /// Rows adopted from sqlx-cli's `_sqlx_migrations`.
    pub adopted_from_sqlx: usize,
    /// A migration the verify guard rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<super::guard::Rejection>,
    /// verify's summary of the whole database after migrating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySummary>,
    /// The run was cancelled before this version started (the ones before it are committed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_before: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    #[serde(flatten)]
    pub summary: crate::verify::Summary,
    #[serde(skip)]
    pub line: String,
}

/// Where a migration failed: the file and line, and PostgreSQL's SQLSTATE, message and hint.
#[derive(Debug, thiserror::Error)]
#[error("migration {version} failed at {file}:{line}: {cause}")]
pub struct MigrationFailed {
    pub version: i64,
    pub file: String,
    pub line: usize,
    pub cause: String,
}

/// Run `migrate` and return the report of what was done even when it stopped on an error.
pub async fn migrate_reporting(
    target: &Target,
    cfg: &Config,
    files: &[Migration],
    opts: &MigrateOptions,
    sink: &dyn EventSink,
) -> (MigrateReport, Result<()>) {
    let mut report = MigrateReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let result = run(target, cfg, files, opts, sink, &mut report).await;
    (report, result)
}

async fn run(
    target: &Target,
    cfg: &Config,
    files: &[Migration],
    opts: &MigrateOptions,
    sink: &dyn EventSink,
    report: &mut MigrateReport,
) -> Result<()> {
    if opts.dry_run {
        // Read-only: no lock, no ledger created, nothing executed.
        let mut conn = target.connect().await?;
        let applied = ledger::read(&mut conn).await?;
        let entries = plan::entries(&applied, files);
        let todo = plan::plan(&entries, files, opts.plan)?;
        report.already_applied = applied.iter().filter(|a| a.success).count();
        report.planned = todo
            .iter()
            .map(|&i| {
                let m = &files[i];
                PlannedMigration {
                    version: m.version,
                    description: m.description.clone(),
                    file: m.path.clone(),
                    no_transaction: m.no_transaction,
                    sql: m.sql.clone(),
                }
            })
            .collect();
        return Ok(());
    }

    let mut lock_conn = target.connect().await?;
    acquire_lock(&mut lock_conn, opts.lock_wait, sink).await?;
    let result = async {
        let mut conn = target.connect().await?;
        // If this process dies (Ctrl-C, kill -9), the server notices within a second and aborts
        // the running statement instead of finishing it while holding its locks (PostgreSQL 14+;
        // older servers reject the setting and keep their default behaviour).
        let _ = sqlx::raw_sql("SET client_connection_check_interval = '1s'")
            .execute(&mut conn)
            .await;
        report.adopted_from_sqlx = ledger::prepare(&mut conn, files).await?;
        // Read the ledger only now, under the lock: another runner may just have applied.
        let applied = ledger::read(&mut conn).await?;
        report.already_applied = applied.iter().filter(|a| a.success).count();
        let entries = plan::entries(&applied, files);
        let todo = plan::plan(&entries, files, opts.plan)?;
        if opts.guard && !todo.is_empty() {
            prepare_guard(&mut conn, &cfg.realms_table, false).await?;
        }
        if !todo.is_empty() {
            sink.emit(Event::WorkStarted {
                unit: Unit::Migrations,
                total: todo.len() as u64,
                label: String::new(),
            });
        }
        // A migration the guard judged clean, its COMMIT still to be sent: at the head of the
        // next migration's batch, or alone below.
        let mut deferred: Option<Deferred> = None;
        // The next file's statements, split while the server ran the migration before it.
        let mut ready: Option<(usize, (Vec<Piece<'_>>, bool))> = None;
        let (mut rejected, mut stopped_before) = (None, None);
        let mut committed = |done: AppliedMigration| {
            sink.emit(Event::MigrationApplied {
                version: done.version,
                duration_ms: done.duration_ms,
            });
            report.applied.push(done);
        };
        for (n, &i) in todo.iter().enumerate() {
            let m = &files[i];
            if opts.cancel.is_cancelled() {
                stopped_before = Some(m.version);
                break;
            }
            sink.emit(Event::WorkProgress {
                done: n as u64,
                label: format!("{} {}", m.version, m.description),
            });
            sink.emit(Event::MigrationStarted {
                version: m.version,
                description: m.description.clone(),
            });
            let prior = applied.iter().find(|a| a.version == m.version);
            if m.no_transaction {
                if let Some(d) = deferred.take() {
                    committed(commit_deferred(&mut conn, d).await?);
                }
                committed(apply_no_transaction(&mut conn, m, opts, prior, sink).await?);
                continue;
            }
            let split = match ready.take() {
                Some((k, split)) if k == n => split,
                _ => pieces(m),
            };
            let next = todo.get(n + 1).map(|&j| &files[j]);
            let mut ahead = None;
            let mut split_next = || ahead = next.filter(|m| !m.no_transaction).map(pieces);
            let pipe = Pipeline {
                prior: deferred.take(),
                committed: &mut committed,
                meanwhile: Some(&mut split_next),
            };
            let outcome =
                apply_in_transaction(&mut conn, &mut lock_conn, cfg, m, split, opts, sink, pipe)
                    .await?;
            ready = ahead.map(|split| (n + 1, split));
            match outcome {
                Outcome::Committed(done) => committed(done),
                Outcome::Deferred(d) => deferred = Some(d),
                Outcome::Rejected(rejection) => {
                    rejected = Some(rejection);
                    break;
                }
            }
        }
        if let Some(d) = deferred.take() {
            committed(commit_deferred(&mut conn, d).await?);
        }
        report.rejected = rejected;
        report.stopped_before = stopped_before;
        if !todo.is_empty() {
            sink.emit(Event::WorkFinished);
        }
        if opts.guard && !report.applied.is_empty() {
            let full = crate::verify::verify(&mut conn, cfg)
                .await
                .map_err(Error::VerifyAll)?;
            report.verify = Some(VerifySummary {
                line: crate::verify::summary_line(&full),
                summary: full.summary,
            });
        }
        let _ = sqlx::Connection::close(conn).await;
        Ok::<_, Error>(())
    }
    .await;
    release_lock(lock_conn).await;
    result
}

/// Unlock explicitly on every path (closing the session would release it too) and close.
pub async fn release_lock(mut conn: PgConnection) {
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut conn)
        .await;
    let _ = sqlx::Connection::close(conn).await;
}

/// Take the migration lock, waiting up to `wait` and naming the pid that holds it meanwhile.
pub async fn acquire_lock(
    conn: &mut PgConnection,
    wait: Duration,
    sink: &dyn EventSink,
) -> Result<()> {
    let announce = |pid: i32| {
        sink.emit(Event::line(format!(
            "realmguard: waiting for the migration lock held by pid {pid} (up to {:.0}s)",
            wait.as_secs_f64()
        )))
    };
    match db::poll_advisory_lock(conn, LOCK_KEY, wait, announce).await? {
        db::LockPoll::Taken => Ok(()),
        db::LockPoll::Held(holder) => {
            let who = holder.map_or("another session".to_string(), |p| format!("pid {p}"));
            Err(Error::LockHeld {
                holder: who,
                waited_secs: wait.as_secs_f64(),
            })
        }
    }
}

/// Prepare the guard's catalog read on the migrating session, so that each migration's batch
/// can run it (`catalog::GUARD_EXECUTE_SQL`); again after a migration took it away. Outside any
/// migration's transaction. A role that may not create temporary objects gets the read without
/// the function behind it (docs/architecture.md, "The guard").
async fn prepare_guard(conn: &mut PgConnection, realms_table: &str, again: bool) -> Result<()> {
    if again {
        // Whichever part is gone (DISCARD TEMP drops only the function), the name is made free
        // for the PREPARE.
        let _ = sqlx::raw_sql(&format!("DEALLOCATE {}", crate::catalog::GUARD_STATEMENT))
            .execute(&mut *conn)
            .await;
    }
    let sql = crate::catalog::guard_prepare_sql(realms_table);
    let e = match sqlx::raw_sql(&sql).execute(&mut *conn).await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let _ = rollback(conn).await;
    if db::sqlstate(&e).as_deref() != Some("42501") {
        return Err(Error::PrepareGuard(e));
    }
    sqlx::raw_sql(&crate::catalog::guard_prepare_plain_sql(realms_table))
        .execute(&mut *conn)
        .await
        .map_err(Error::PrepareGuard)?;
    Ok(())
}

/// Whether a migration's batch failed because the guard's prepared read, or the temporary
/// function behind it, is gone (DEALLOCATE, DISCARD TEMP in an earlier migration).
fn guard_gone(e: &sqlx::Error) -> bool {
    matches!(db::sqlstate(e).as_deref(), Some("26000" | "42883"))
        && e.to_string().contains(crate::catalog::GUARD_STATEMENT)
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The statements of a file, and whether our tokenizer split it; a file it cannot split runs
/// whole (PostgreSQL is the judge of its syntax), losing only per-statement line numbers.
fn pieces(m: &Migration) -> (Vec<Piece<'_>>, bool) {
    match split::split(&m.sql) {
        Ok(pieces) => (pieces, true),
        Err(_) => (
            vec![Piece {
                sql: m.sql.as_str(),
                line: 1,
                column: 1,
                offset: 0,
            }],
            false,
        ),
    }
}

fn failure(m: &Migration, p: &Piece<'_>, e: &sqlx::Error) -> MigrationFailed {
    let within = db::error_position(e)
        .map(|pos| {
            p.sql
                .chars()
                .take(pos.saturating_sub(1))
                .filter(|&c| c == '\n')
                .count()
        })
        .unwrap_or(0);
    MigrationFailed {
        version: m.version,
        file: m.path.display().to_string(),
        line: p.line + within,
        cause: db::describe_pg_error(e),
    }
}

/// Wait before retrying a lock conflict: jittered exponential backoff from 200 ms up to 5 s,
/// announced on stderr (`what` happened) so the operator sees why nothing moves.
async fn pause_before_retry(attempt: u32, retries: u32, what: &str, sink: &dyn EventSink) {
    let pause = db::backoff(
        attempt - 1,
        Duration::from_millis(200),
        Duration::from_secs(5),
    );
    sink.emit(Event::line(format!(
        "realmguard: {what}; retrying in {}ms ({attempt}/{retries})",
        ms(pause)
    )));
    tokio::time::sleep(pause).await;
}

/// Whether the error means the session is gone (the server shut down or crashed, or the network
/// dropped): I/O and protocol errors, and PostgreSQL's own "terminating connection" (class 57P).
fn is_disconnect(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        _ => db::sqlstate(e).is_some_and(|s| s.starts_with("57P")),
    }
}

/// Why the session ended, in words: sqlx reports a closed socket as "expected to read 5 bytes,
/// got 0 bytes at EOF".
fn disconnect_cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            "the server closed the connection".into()
        }
        other => db::describe_pg_error(other),
    }
}

/// The one line for a session that ended under a migration's open transaction. PostgreSQL rolls
/// such a transaction back, so nothing of the migration is committed; saying so beats the failed
/// ROLLBACK's "expected to read 5 bytes, got 0 bytes at EOF", which reads as if it were half-done.
fn connection_lost(m: &Migration, line: usize, cause: &str) -> Error {
    Error::ConnectionLost {
        version: m.version,
        file: m.path.display().to_string(),
        line,
        cause: cause.to_string(),
    }
}

/// Roll back after `err`; when even the rollback cannot reach the server, the session is gone and
/// that is what the error says.
async fn abort(conn: &mut PgConnection, m: &Migration, line: usize, err: Error) -> Error {
    match rollback(conn).await {
        Ok(()) => err,
        Err(_) => {
            let cause = match err.sqlx_cause() {
                Some(e) => disconnect_cause(e),
                None => err.root_text(),
            };
            connection_lost(m, line, &cause)
        }
    }
}

async fn rollback(conn: &mut PgConnection) -> Result<()> {
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut *conn)
        .await
        .map_err(Error::Rollback)?;
    Ok(())
}

#[cfg(test)]
mod tests;
