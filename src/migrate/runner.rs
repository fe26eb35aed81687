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
        if !todo.is_empty() {
            sink.emit(Event::WorkStarted {
                unit: Unit::Migrations,
                total: todo.len() as u64,
                label: String::new(),
            });
        }
        for (n, &i) in todo.iter().enumerate() {
            let m = &files[i];
            if opts.cancel.is_cancelled() {
                report.stopped_before = Some(m.version);
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
            let done = if m.no_transaction {
                apply_no_transaction(&mut conn, m, opts, prior, sink).await?
            } else {
                match apply_in_transaction(&mut conn, &mut lock_conn, cfg, m, opts, sink).await? {
                    Ok(done) => done,
                    Err(rejection) => {
                        report.rejected = Some(rejection);
                        break;
                    }
                }
            };
            sink.emit(Event::MigrationApplied {
                version: done.version,
                duration_ms: done.duration_ms,
            });
            report.applied.push(done);
        }
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

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The statements of a file; a file our tokenizer cannot split runs whole (PostgreSQL is the
/// judge of its syntax), losing only per-statement line numbers.
fn pieces(m: &Migration) -> Vec<Piece<'_>> {
    split::split(&m.sql).unwrap_or_else(|_| {
        vec![Piece {
            sql: m.sql.as_str(),
            line: 1,
            column: 1,
            offset: 0,
        }]
    })
}

/// Transaction control inside a migration would commit half of it: refuse before running.
fn check_no_transaction_control(m: &Migration, pieces: &[Piece<'_>]) -> Result<()> {
    for p in pieces {
        let mut words = p
            .sql
            .split_whitespace()
            .map(|w| w.trim_end_matches(';').to_ascii_uppercase());
        let first = words.next().unwrap_or_default();
        let second = words.next().unwrap_or_default();
        let control = matches!(first.as_str(), "COMMIT" | "ROLLBACK" | "END" | "ABORT")
            || (first == "BEGIN" && second != "ATOMIC")
            || (first == "START" && second == "TRANSACTION");
        if control && !second.starts_with("PREPARED") {
            return Err(Error::TransactionControl {
                file: m.path.display().to_string(),
                line: p.line,
                keyword: first,
            });
        }
    }
    Ok(())
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

async fn apply_in_transaction(
    conn: &mut PgConnection,
    lock_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
    opts: &MigrateOptions,
    sink: &dyn EventSink,
) -> Result<Result<AppliedMigration, super::guard::Rejection>> {
    let pieces = pieces(m);
    check_no_transaction_control(m, &pieces)?;
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms'",
        ms(opts.lock_timeout),
        ms(opts.statement_timeout)
    );
    // The first attempt sends the whole migration in one round trip (see `run_batch`); any
    // failure there is rolled back and the migration run again statement by statement, which
    // names the failing statement's line exactly as before.
    let mut batched = split::split(&m.sql).is_ok();
    let n = pieces.len() as i32;
    let mut attempt = 0;
    'attempt: loop {
        attempt += 1;
        let started = Instant::now();
        let last_line = pieces.last().map_or(1, |p| p.line);
        if batched {
            batched = false;
            match run_batch(conn, m, &begin, n, opts.guard).await {
                Ok(setup) => {
                    let Some((seqscan_was, changed)) = setup else {
                        // The batch committed too: one round trip for the whole migration.
                        return Ok(Ok(applied(m, pieces.len(), attempt, started)));
                    };
                    if !changed {
                        // No table changed: nothing for the guard to check (its read would
                        // find no table); commit as the unguarded path would.
                        commit(conn, m, last_line).await?;
                        return Ok(Ok(applied(m, pieces.len(), attempt, started)));
                    }
                    match finish_guarded(
                        conn,
                        lock_conn,
                        cfg,
                        m,
                        opts,
                        sink,
                        last_line,
                        Some(seqscan_was),
                    )
                    .await?
                    {
                        Ok(()) => return Ok(Ok(applied(m, pieces.len(), attempt, started))),
                        Err(rejection) => return Ok(Err(rejection)),
                    }
                }
                Err(e) => {
                    if rollback(conn).await.is_err() {
                        return Err(connection_lost(m, last_line, &disconnect_cause(&e)));
                    }
                    if db::is_lock_conflict(&e) && attempt <= opts.lock_retries {
                        let what = format!(
                            "migration {} hit lock_timeout ({}ms) in {}; rolled back",
                            m.version,
                            ms(opts.lock_timeout),
                            m.path.display()
                        );
                        pause_before_retry(attempt, opts.lock_retries, &what, sink).await;
                    } else {
                        // Not counted: the statement-by-statement run says where it fails.
                        attempt -= 1;
                    }
                    continue 'attempt;
                }
            }
        }
        if let Err(e) = sqlx::raw_sql(&begin).execute(&mut *conn).await {
            if is_disconnect(&e) {
                return Err(Error::LostBeforeStart {
                    version: m.version,
                    cause: disconnect_cause(&e),
                });
            }
            return Err(Error::Begin(e));
        }
        for p in &pieces {
            if let Err(e) = sqlx::raw_sql(p.sql).execute(&mut *conn).await {
                if rollback(conn).await.is_err() {
                    return Err(connection_lost(m, p.line, &disconnect_cause(&e)));
                }
                if db::is_lock_conflict(&e) && attempt <= opts.lock_retries {
                    let what = format!(
                        "migration {} hit lock_timeout ({}ms) at {}:{}; rolled back",
                        m.version,
                        ms(opts.lock_timeout),
                        m.path.display(),
                        p.line
                    );
                    pause_before_retry(attempt, opts.lock_retries, &what, sink).await;
                    continue 'attempt;
                }
                let failed = failure(m, p, &e);
                if db::is_lock_conflict(&e) {
                    return Err(Error::LockConflict {
                        version: m.version,
                        attempts: attempt,
                        lock_timeout_ms: ms(opts.lock_timeout),
                        source: failed,
                    });
                }
                return Err(failed.into());
            }
        }
        if opts.guard {
            if let Some(rejection) =
                guard(conn, lock_conn, cfg, m, opts, sink, last_line, None).await?
            {
                return Ok(Err(rejection));
            }
        }
        let elapsed = started.elapsed();
        if let Err(e) = ledger::insert(conn, m, true, n, n, elapsed.as_millis() as i64, false).await
        {
            return Err(abort(conn, m, last_line, e).await);
        }
        commit(conn, m, last_line).await?;
        return Ok(Ok(applied(m, pieces.len(), attempt, started)));
    }
}

/// The whole migration in one round trip: BEGIN with the session's timeouts, the file's text,
/// its ledger row, and then either COMMIT (no guard) or the guard's set-up, which returns the
/// saved enable_seqscan value and whether any table may have changed (`GUARD_SETUP_SQL`). Only
/// for files the tokenizer splits: their text is whole statements, so nothing appended can end
/// up inside a string or comment of theirs.
async fn run_batch(
    conn: &mut PgConnection,
    m: &Migration,
    begin: &str,
    statements: i32,
    guard: bool,
) -> Result<Option<(String, bool)>, sqlx::Error> {
    use futures_util::TryStreamExt;
    let tail = if guard {
        crate::catalog::GUARD_SETUP_SQL
    } else {
        "COMMIT"
    };
    let batch = format!(
        "{begin};\n{}\n;\n{};\n{tail}",
        m.sql,
        ledger::insert_applied_sql(m, statements)
    );
    // Only the last row matters (the saved setting); the migration's own rows are dropped as
    // they arrive.
    let mut last: Option<sqlx::postgres::PgRow> = None;
    let mut results = sqlx::raw_sql(&batch).fetch_many(&mut *conn);
    while let Some(item) = results.try_next().await? {
        if let sqlx::Either::Right(row) = item {
            last = Some(row);
        }
    }
    drop(results);
    if !guard {
        return Ok(None);
    }
    match last {
        Some(row) => Ok(Some((
            sqlx::Row::try_get(&row, 0)?,
            sqlx::Row::try_get(&row, 1)?,
        ))),
        None => Err(sqlx::Error::Protocol(
            "the batch returned no enable_seqscan value".into(),
        )),
    }
}

/// The guard and the COMMIT of a migration whose statements and ledger row ran in a batch.
#[allow(clippy::too_many_arguments)]
async fn finish_guarded(
    conn: &mut PgConnection,
    lock_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
    opts: &MigrateOptions,
    sink: &dyn EventSink,
    last_line: usize,
    seqscan_was: Option<String>,
) -> Result<Result<(), super::guard::Rejection>> {
    if let Some(rejection) =
        guard(conn, lock_conn, cfg, m, opts, sink, last_line, seqscan_was).await?
    {
        return Ok(Err(rejection));
    }
    commit(conn, m, last_line).await?;
    Ok(Ok(()))
}

/// Run the verify guard inside the migration's transaction: `Some` when the migration was rolled
/// back for introducing violations.
#[allow(clippy::too_many_arguments)]
async fn guard(
    conn: &mut PgConnection,
    lock_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
    opts: &MigrateOptions,
    sink: &dyn EventSink,
    last_line: usize,
    seqscan_was: Option<String>,
) -> Result<Option<super::guard::Rejection>> {
    let checked = match super::guard::check(conn, lock_conn, cfg, m, seqscan_was).await {
        Ok(checked) => checked,
        Err(e) => return Err(abort(conn, m, last_line, e).await),
    };
    let Some(rejection) = checked else {
        return Ok(None);
    };
    if !opts.allow_violations {
        if let Err(e) = rollback(conn).await {
            return Err(abort(conn, m, last_line, e).await);
        }
        return Ok(Some(rejection));
    }
    sink.emit(Event::line(format!(
        "realmguard: migration {} introduces {} error-severity violation(s); committed anyway (--allow-violations)",
        m.version,
        rejection.violations.len()
    )));
    Ok(None)
}

async fn commit(conn: &mut PgConnection, m: &Migration, last_line: usize) -> Result<()> {
    if let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *conn).await {
        if is_disconnect(&e) {
            // The COMMIT may or may not have reached the server before it went away; the
            // ledger row commits with the migration, so the ledger knows.
            return Err(Error::LostAtCommit {
                version: m.version,
                cause: disconnect_cause(&e),
            });
        }
        // A deferred constraint fails at COMMIT; the transaction is gone either way.
        return Err(Error::Failed(MigrationFailed {
            version: m.version,
            file: m.path.display().to_string(),
            line: last_line,
            cause: format!("at COMMIT: {}", db::describe_pg_error(&e)),
        }));
    }
    Ok(())
}

fn applied(m: &Migration, statements: usize, attempts: u32, started: Instant) -> AppliedMigration {
    AppliedMigration {
        version: m.version,
        description: m.description.clone(),
        file: m.path.clone(),
        no_transaction: false,
        statements,
        resumed_after: None,
        attempts,
        duration_ms: started.elapsed().as_millis() as u64,
    }
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

/// Run a `-- realmguard:no-transaction` file statement by statement (for CREATE INDEX
/// CONCURRENTLY, which cannot run in a transaction), recording progress after each so a rerun
/// resumes after the last statement that succeeded.
async fn apply_no_transaction(
    conn: &mut PgConnection,
    m: &Migration,
    opts: &MigrateOptions,
    prior: Option<&Applied>,
    sink: &dyn EventSink,
) -> Result<AppliedMigration> {
    let pieces = split::split(&m.sql).map_err(|reason| Error::Unsplittable {
        file: m.path.display().to_string(),
        line: reason.line,
        reason,
    })?;
    let total = pieces.len() as i32;
    let start_at = match prior {
        Some(a) => a.statements_applied.max(0) as usize,
        None => {
            ledger::insert(conn, m, total == 0, 0, total, 0, false).await?;
            0
        }
    };
    // Session settings (not SET LOCAL): each statement is its own transaction here.
    sqlx::raw_sql(&format!(
        "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'",
        ms(opts.lock_timeout),
        ms(opts.statement_timeout)
    ))
    .execute(&mut *conn)
    .await?;
    let started = Instant::now();
    let mut attempts = 1;
    let result = async {
        for (i, p) in pieces.iter().enumerate().skip(start_at) {
            let index = created_index(p.sql);
            let t0 = Instant::now();
            if let Some(ix) = &index {
                match db::index_valid(conn, ix).await? {
                    Some(true) => {
                        sink.emit(Event::line(format!("realmguard: {}:{}: index {ix} already exists and is valid; not rebuilding it", m.path.display(), p.line)));
                        ledger::progress(conn, m.version, i as i32 + 1, i as i32 + 1 == total, 0).await?;
                        continue;
                    }
                    Some(false) => drop_invalid_index(conn, m, p, ix, sink).await?,
                    None => {}
                }
            }
            let mut attempt = 0;
            loop {
                attempt += 1;
                match sqlx::raw_sql(p.sql).execute(&mut *conn).await {
                    Ok(_) => break,
                    Err(e) if db::is_lock_conflict(&e) && attempt <= opts.lock_retries => {
                        attempts += 1;
                        // A CONCURRENTLY build that timed out leaves an invalid index behind.
                        if let Some(ix) = &index {
                            if db::index_valid(conn, ix).await? == Some(false) {
                                drop_invalid_index(conn, m, p, ix, sink).await?;
                            }
                        }
                        let what = format!("{}:{} hit lock_timeout", m.path.display(), p.line);
                        pause_before_retry(attempt, opts.lock_retries, &what, sink).await;
                    }
                    Err(e) => {
                        let failed = failure(m, p, &e);
                        let mut invalid_index = None;
                        if let Some(ix) = &index {
                            if db::index_valid(conn, ix).await? == Some(false) {
                                invalid_index = Some(ix.clone());
                            }
                        }
                        return Err(Error::NoTransactionFailed { failed, done: i, total, invalid_index });
                    }
                }
            }
            if let Some(ix) = &index {
                if db::index_valid(conn, ix).await? == Some(false) {
                    return Err(Error::InvalidIndex {
                        version: m.version,
                        index: ix.clone(),
                        file: m.path.display().to_string(),
                        line: p.line,
                    });
                }
            }
            ledger::progress(conn, m.version, i as i32 + 1, i as i32 + 1 == total, t0.elapsed().as_millis() as i64).await?;
        }
        if total == 0 || start_at >= pieces.len() {
            ledger::progress(conn, m.version, total, true, 0).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    let _ = sqlx::raw_sql("RESET lock_timeout; RESET statement_timeout")
        .execute(&mut *conn)
        .await;
    result?;
    Ok(AppliedMigration {
        version: m.version,
        description: m.description.clone(),
        file: m.path.clone(),
        no_transaction: true,
        statements: pieces.len(),
        resumed_after: prior.map(|a| a.statements_applied.max(0) as usize),
        attempts,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

async fn drop_invalid_index(
    conn: &mut PgConnection,
    m: &Migration,
    p: &Piece<'_>,
    ix: &str,
    sink: &dyn EventSink,
) -> Result<()> {
    sink.emit(Event::line(format!(
        "realmguard: {}:{}: index {ix} is INVALID (left by a failed CONCURRENTLY build); dropping it to rebuild",
        m.path.display(),
        p.line
    )));
    sqlx::raw_sql(&format!("DROP INDEX CONCURRENTLY IF EXISTS {ix}"))
        .execute(&mut *conn)
        .await
        .map_err(|source| Error::DropInvalidIndex {
            index: ix.to_string(),
            source,
        })?;
    Ok(())
}

/// The (schema-qualified when known) name of the index a `CREATE INDEX` statement builds.
fn created_index(sql: &str) -> Option<String> {
    use sqlparser::ast::Statement;
    let head: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    if head.first().map(String::as_str) != Some("CREATE") || !head.iter().any(|w| w == "INDEX") {
        return None;
    }
    let stmts =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
            .ok()?;
    let Some(Statement::CreateIndex(ci)) = stmts.first() else {
        return None;
    };
    let name = ci.name.as_ref()?;
    if name.0.len() > 1 {
        return Some(name.to_string());
    }
    match ci.table_name.0.len() {
        2 => Some(format!("{}.{}", ci.table_name.0[0], name)),
        _ => Some(name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::source;

    #[test]
    fn finds_the_index_a_statement_builds() {
        assert_eq!(
            created_index("CREATE INDEX CONCURRENTLY ix ON t (a)").as_deref(),
            Some("ix")
        );
        assert_eq!(
            created_index("create unique index concurrently if not exists ix on s.t (a)")
                .as_deref(),
            Some("s.ix")
        );
        assert_eq!(
            created_index("CREATE INDEX \"Ix\" ON \"S\".t (a)").as_deref(),
            Some("\"S\".\"Ix\"")
        );
        assert_eq!(created_index("CREATE TABLE t (a int)"), None);
        assert_eq!(created_index("CREATE INDEX ON t (a)"), None);
    }

    #[test]
    fn transaction_control_is_refused() {
        let m = source::from_bytes(
            1,
            "x".into(),
            "1_x.sql".into(),
            b"begin;\ncreate table t (a int);\ncommit;",
        )
        .unwrap();
        let p = pieces(&m);
        let err = check_no_transaction_control(&m, &p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1_x.sql:1") && err.contains("BEGIN"), "{err}");
        let ok = source::from_bytes(
            1,
            "x".into(),
            "1_x.sql".into(),
            b"create function f() returns int language sql begin atomic select 1; end;\nselect 1;",
        )
        .unwrap();
        assert!(check_no_transaction_control(&ok, &pieces(&ok)).is_ok());
    }
}
