//! The executor: runs a plan's steps against the live database, one short transaction per lock
//! step and per fill batch, and records each in the `realmguard` schema in the same transaction
//! as its effect, so a crash can never leave a step done but unrecorded (or the reverse).
//! Concurrent index builds cannot run in a transaction: they are made idempotent instead by
//! reading `pg_index` (valid: keep, invalid leftover: drop and rebuild).
//!
//! The ledger is in `ledger`, statement steps in `step`, the fill in `fill`, lock failures and
//! their blockers in `blockers`.

mod blockers;
mod fill;
mod ledger;
mod step;

pub use ledger::{
    append_steps, ensure_ledger, load_progress, load_steps, lock_runner, store_plan, Progress,
    StoredStep,
};

use super::plan::{Action, Lock};
use crate::events::{Cancel, Event, EventSink};
use sqlx::PgConnection;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Options {
    pub batch: Duration,
    pub lock_timeout: Duration,
    pub lock_retries: u32,
    pub max_transaction_age: Duration,
    /// Parallel workers a build or validation may use (`--workers`).
    pub workers: u32,
    /// `--max-replication-lag` in bytes: wait before a step or batch while a standby is further
    /// behind.
    pub max_replication_lag: Option<u64>,
    /// `--refuse-prepared-star`: refuse when pg_stat_statements has seen a statement returning
    /// `*` of a table whose columns the run changes (or cannot be read).
    pub refuse_prepared_star: bool,
    /// Test and demo hook (`REALMGUARD_BACKFILL_PAUSE_MS`): sleep after each step and batch so
    /// a kill can land in a chosen phase.
    pub pause: Duration,
}

impl Options {
    /// How long attempt `attempt` (from 1) of a step may wait for its lock. Steps whose lock
    /// does not block reads or writes (SHARE UPDATE EXCLUSIVE: validations, concurrent index
    /// builds) may wait longer without hurting traffic. One whose lock does block them makes
    /// every later query on its tables queue behind it while it waits, so it asks with an
    /// eighth of `--lock-timeout` first and doubles per retry up to it: a writer that holds its
    /// lock a little longer (a slow commit) then costs the application a short queue, not the
    /// whole timeout. Measured in scripts/bench-backfill.sh: one 100 ms wait for the locks to
    /// drop a single-column foreign key, behind a writer in COMMIT, held 17 writer transactions
    /// for 24-102 ms, the run's p99 going from ~2.5x to 46x its baseline.
    fn timeout_for(&self, lock: Lock, attempt: u32) -> Duration {
        if lock.blocks_traffic() {
            let first = (self.lock_timeout / 8)
                .max(Duration::from_millis(5))
                .min(self.lock_timeout);
            first
                .saturating_mul(1 << attempt.saturating_sub(1).min(16))
                .min(self.lock_timeout)
        } else {
            self.lock_timeout.max(self.max_transaction_age)
        }
    }
}

/// What one pass of the executor did.
#[derive(Debug, Default)]
pub struct Tally {
    pub steps_total: usize,
    pub steps_run: usize,
    pub resumed: bool,
    pub interrupted: bool,
    pub seconds: f64,
    pub fills: Vec<Progress>,
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Everything needed to run steps: the working connection, a second one that watches who blocks
/// the first, the options, where progress goes and the request to stop.
pub struct Executor<'a> {
    pub conn: &'a mut PgConnection,
    pub watch: &'a mut PgConnection,
    pub opts: Options,
    stop: Cancel,
    sink: &'a dyn EventSink,
    pid: i32,
}

/// Compress the full-page images our session writes to WAL: zstd, else lz4, else pglz; a
/// one-line note when the role may not or the server cannot.
///
/// A concurrent index build logs every page of the new index whole (27 MB for the (id, realm)
/// index of 1M rows; 6.8 MB with zstd, 13 MB with lz4), and an application's commit must flush
/// all WAL written before its own record: measured with a writer at 100 tps while the unique
/// index of the 1M-row table was built and dropped repeatedly, the writer's transactions over
/// 3x its idle p99 fell from 63 to 32 with zstd (47 with lz4). `wal_compression` is settable by
/// superusers or (PostgreSQL 15+) after `GRANT SET ON PARAMETER wal_compression`; the right is
/// asked first, since a refused SET leaves an ERROR in the server log on every run.
async fn compress_wal(conn: &mut PgConnection, sink: &dyn EventSink) {
    let (superuser, version, user): (bool, i32, String) = match sqlx::query_as(
        "SELECT current_setting('is_superuser') = 'on',
                current_setting('server_version_num')::int, current_user::text",
    )
    .fetch_one(&mut *conn)
    .await
    {
        Ok(r) => r,
        Err(_) => return,
    };
    let granted = !superuser
        && version >= 150_000
        && sqlx::query_scalar::<_, bool>(
            "SELECT has_parameter_privilege('wal_compression', 'SET')",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap_or(false);
    if !superuser && !granted {
        sink.emit(Event::line(format!(
            "realmguard: note: index builds write their WAL uncompressed: role {user} may not set wal_compression (a superuser may, or GRANT SET ON PARAMETER wal_compression TO {user} on PostgreSQL 15+)"
        )));
        return;
    }
    // "on" is pglz on PostgreSQL 14, where the setting is a boolean.
    for method in ["zstd", "lz4", "pglz", "on"] {
        if sqlx::raw_sql(&format!("SET wal_compression = {method}"))
            .execute(&mut *conn)
            .await
            .is_ok()
        {
            return;
        }
    }
    sink.emit(Event::line(
        "realmguard: note: index builds write their WAL uncompressed: the server accepts no wal_compression method",
    ));
}

/// A retryable failure with the sessions that blocked it.
struct Blocked {
    error: sqlx::Error,
    blockers: Vec<i32>,
}

impl<'a> Executor<'a> {
    pub async fn new(
        conn: &'a mut PgConnection,
        watch: &'a mut PgConnection,
        opts: Options,
        stop: Cancel,
        sink: &'a dyn EventSink,
    ) -> crate::backfill::error::Result<Executor<'a>> {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await?;
        // The server's defaults let a concurrent index build or a foreign-key validation take
        // two more cores. On a live database that is the application's CPU: measured with
        // scripts/bench-backfill.sh on 2 cores, during a parallel build of the 1M-row table a
        // third of the writer's transactions took over 3x its baseline p99; on one core the
        // builds take 1.1-1.4x longer and few of the writer's transactions notice.
        sqlx::raw_sql(&format!(
            "SET max_parallel_maintenance_workers = {w}; SET max_parallel_workers_per_gather = {w}",
            w = opts.workers
        ))
        .execute(&mut *conn)
        .await?;
        Ok(Executor {
            conn,
            watch,
            opts,
            stop,
            sink,
            pid,
        })
    }

    fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Run every step not done yet. Returns early (interrupted) after the current step or batch
    /// when asked to stop.
    pub async fn run(
        &mut self,
        steps: &[StoredStep],
        report: &mut Tally,
    ) -> crate::backfill::error::Result<()> {
        let total = steps.len();
        report.steps_total = total;
        // Only index builds and fills write full-page images in bulk; a run left with neither
        // (`backfill finish`, a resume past them) neither sets it nor prints its note.
        if steps.iter().any(|s| {
            !s.done
                && matches!(
                    s.step.action,
                    Action::ConcurrentIndex { .. } | Action::Fill { .. }
                )
        }) {
            compress_wal(self.conn, self.sink).await;
        }
        for s in steps.iter().filter(|s| !s.done) {
            self.wait_for_replicas().await?;
            if self.stopping() {
                report.interrupted = true;
                return Ok(());
            }
            let step = &s.step;
            self.sink.emit(Event::line(format!(
                "realmguard: [{}/{total}] {} · {} · {}: {}",
                s.seq,
                step.display_table(),
                step.phase,
                step.lock_text(),
                step.title
            )));
            let started = Instant::now();
            let finished = match &step.action {
                Action::Sql {
                    sql,
                    no_fk_depends_on,
                } => {
                    self.sql_step(s.seq, step, sql, no_fk_depends_on.as_deref())
                        .await?;
                    true
                }
                Action::ConcurrentIndex { index, sql } => {
                    self.index_step(s.seq, step, index, sql).await?;
                    true
                }
                Action::DropIndexConcurrently { sql, .. } => {
                    self.drop_index_step(s.seq, step, sql).await?;
                    true
                }
                Action::Fill { key, sql } => {
                    let p = self.fill_step(s.seq, step, key, sql).await?;
                    let done = p.finished;
                    report.fills.push(p);
                    done
                }
            };
            if !finished {
                report.interrupted = true;
                return Ok(());
            }
            report.steps_run += 1;
            self.sink.emit(Event::line(format!(
                "realmguard:     done in {} ms",
                started.elapsed().as_millis()
            )));
            if !self.opts.pause.is_zero() {
                tokio::time::sleep(self.opts.pause).await;
            }
        }
        Ok(())
    }
}

/// Await `fut` (a statement on the working connection) while the watch connection notes which
/// sessions block it (`pg_blocking_pids`), so a retry or a give-up can name them.
async fn watch_while<F, T>(
    fut: F,
    watch: &mut PgConnection,
    pid: i32,
    timeout: Duration,
) -> (Result<T, sqlx::Error>, Vec<i32>)
where
    F: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut blockers: Vec<i32> = Vec::new();
    let probe_after = (timeout / 2).max(Duration::from_millis(20));
    let res = {
        let probe = async {
            tokio::time::sleep(probe_after).await;
            if let Ok(p) = sqlx::query_scalar::<_, Vec<i32>>("SELECT pg_blocking_pids($1)")
                .bind(pid)
                .fetch_one(&mut *watch)
                .await
            {
                blockers = p;
            }
            std::future::pending::<()>().await
        };
        tokio::pin!(fut);
        tokio::select! {
            r = &mut fut => r,
            _ = probe => unreachable!("the probe never finishes"),
        }
    };
    (res, blockers)
}

/// End the transaction a failed step left open. Best effort: a connection that broke has
/// nothing open (the server rolled it back), and the caller reports the first error.
async fn rollback(conn: &mut PgConnection) {
    let _ = sqlx::raw_sql("ROLLBACK").execute(conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(lock_timeout_ms: u64) -> Options {
        Options {
            batch: Duration::from_millis(100),
            lock_timeout: Duration::from_millis(lock_timeout_ms),
            lock_retries: 30,
            max_transaction_age: Duration::from_secs(300),
            workers: 0,
            max_replication_lag: None,
            refuse_prepared_star: false,
            pause: Duration::ZERO,
        }
    }

    #[test]
    fn traffic_blocking_locks_ask_briefly_first_then_up_to_the_timeout() {
        let ms = |v: u64| Duration::from_micros(v * 1000);
        let o = opts(100);
        let waits: Vec<Duration> = (1..=6)
            .map(|a| o.timeout_for(Lock::AccessExclusive, a))
            .collect();
        assert_eq!(
            waits,
            [
                Duration::from_micros(12_500),
                ms(25),
                ms(50),
                ms(100),
                ms(100),
                ms(100)
            ]
        );
        assert_eq!(
            o.timeout_for(Lock::ShareRowExclusive, 1),
            Duration::from_micros(12_500)
        );
        // Never past --lock-timeout, even when it is below the 5 ms floor or retries run long.
        assert_eq!(opts(2).timeout_for(Lock::AccessExclusive, 1), ms(2));
        assert_eq!(opts(500).timeout_for(Lock::AccessExclusive, 40), ms(500));
        // A lock that lets reads and writes through may wait for old transactions.
        assert_eq!(
            o.timeout_for(Lock::ShareUpdateExclusive, 1),
            Duration::from_secs(300)
        );
    }
}
