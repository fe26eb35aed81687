//! The executor: runs a plan's steps against the live database, one short transaction per lock
//! step and per fill batch, and records each in the `realmguard` schema in the same transaction
//! as its effect, so a crash can never leave a step done but unrecorded (or the reverse).
//! Concurrent index builds cannot run in a transaction: they are made idempotent instead by
//! reading `pg_index` (valid: keep, invalid leftover: drop and rebuild).

use super::plan::{Action, Lock, Phase, Plan, Step};
use super::replicas;
use crate::db::{self, describe_pg_error, qualified, sqlstate};
use crate::events::{Cancel, Event, EventSink, Unit};
use anyhow::{anyhow, bail, Context};
use sqlx::{Connection, PgConnection, Row};
use std::time::{Duration, Instant};

const LEDGER: &str = "
CREATE SCHEMA IF NOT EXISTS realmguard;
CREATE TABLE IF NOT EXISTS realmguard.backfill_steps (
    seq          integer PRIMARY KEY,
    table_schema text NOT NULL,
    table_name   text NOT NULL,
    phase        text NOT NULL,
    title        text NOT NULL,
    step         jsonb NOT NULL,
    planned_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    duration_ms  bigint
);
CREATE TABLE IF NOT EXISTS realmguard.backfill_progress (
    table_schema text NOT NULL,
    table_name   text NOT NULL,
    key_min      bigint NOT NULL,
    bound        bigint NOT NULL,
    done_upto    bigint NOT NULL,
    rows_done    bigint NOT NULL DEFAULT 0,
    batches      integer NOT NULL DEFAULT 0,
    fill_ms      bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (table_schema, table_name)
);";

/// One runner at a time per database: a session-level advisory lock on a direct connection.
/// "rgbackfl" in ASCII: distinct from migrate's lock, fixed across versions.
const ADVISORY_KEY: i64 = 0x7267_6261_636b_666c;

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

#[derive(Debug, Clone)]
pub struct StoredStep {
    pub seq: i32,
    pub step: Step,
    pub done: bool,
}

impl StoredStep {
    /// A fresh plan's steps, numbered from 1, none done yet.
    pub fn fresh(steps: &[Step]) -> Vec<StoredStep> {
        steps
            .iter()
            .enumerate()
            .map(|(i, s)| StoredStep {
                seq: i as i32 + 1,
                step: s.clone(),
                done: false,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Progress {
    pub schema: String,
    pub table: String,
    pub key_min: i64,
    pub bound: i64,
    pub done_upto: i64,
    pub rows_done: i64,
    pub batches: i32,
    pub fill_ms: i64,
    pub finished: bool,
}

impl Progress {
    pub fn fraction(&self) -> f64 {
        let span = (self.bound - self.key_min).max(0) as f64;
        if span == 0.0 {
            1.0
        } else {
            ((self.done_upto - self.key_min) as f64 / span).clamp(0.0, 1.0)
        }
    }
}

pub async fn ensure_ledger(conn: &mut PgConnection) -> anyhow::Result<()> {
    db::create_if_missing(conn, LEDGER, "the backfill ledger in schema realmguard").await
}

async fn ledger_exists(conn: &mut PgConnection) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT to_regclass('realmguard.backfill_steps') IS NOT NULL
            AND to_regclass('realmguard.backfill_progress') IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// The recorded plan, in order (empty when no backfill ever ran).
pub async fn load_steps(conn: &mut PgConnection) -> anyhow::Result<Vec<StoredStep>> {
    if !ledger_exists(conn).await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT seq, step::text, done_at IS NOT NULL FROM realmguard.backfill_steps ORDER BY seq",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let text: String = r.get(1);
            Ok(StoredStep {
                seq: r.get(0),
                step: serde_json::from_str(&text)
                    .context("the recorded backfill plan is unreadable (written by another realmguard version?)")?,
                done: r.get(2),
            })
        })
        .collect()
}

pub async fn load_progress(conn: &mut PgConnection) -> anyhow::Result<Vec<Progress>> {
    if !ledger_exists(conn).await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT table_schema, table_name, key_min, bound, done_upto, rows_done, batches, fill_ms,
                finished_at IS NOT NULL
         FROM realmguard.backfill_progress ORDER BY started_at",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Progress {
            schema: r.get(0),
            table: r.get(1),
            key_min: r.get(2),
            bound: r.get(3),
            done_upto: r.get(4),
            rows_done: r.get(5),
            batches: r.get(6),
            fill_ms: r.get(7),
            finished: r.get(8),
        })
        .collect())
}

/// Replace the recorded plan with `plan` (the previous one is finished).
pub async fn store_plan(conn: &mut PgConnection, plan: &Plan) -> anyhow::Result<Vec<StoredStep>> {
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(
        "DELETE FROM realmguard.backfill_steps; DELETE FROM realmguard.backfill_progress",
    )
    .execute(&mut *tx)
    .await?;
    let out = insert_steps(&mut tx, 1, &plan.steps).await?;
    tx.commit().await?;
    Ok(out)
}

/// Record steps after those already recorded (`backfill finish`), keeping the run's history.
pub async fn append_steps(
    conn: &mut PgConnection,
    steps: &[Step],
) -> anyhow::Result<Vec<StoredStep>> {
    let mut tx = conn.begin().await?;
    let last: i32 =
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM realmguard.backfill_steps")
            .fetch_one(&mut *tx)
            .await?;
    let out = insert_steps(&mut tx, last + 1, steps).await?;
    tx.commit().await?;
    Ok(out)
}

async fn insert_steps(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    first: i32,
    steps: &[Step],
) -> anyhow::Result<Vec<StoredStep>> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let seq = first + i as i32;
        sqlx::query(
            "INSERT INTO realmguard.backfill_steps (seq, table_schema, table_name, phase, title, step)
             VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
        )
        .bind(seq)
        .bind(&step.schema)
        .bind(&step.table)
        .bind(step.phase.to_string())
        .bind(&step.title)
        .bind(serde_json::to_string(step)?)
        .execute(&mut **tx)
        .await?;
        out.push(StoredStep {
            seq,
            step: step.clone(),
            done: false,
        });
    }
    Ok(out)
}

/// Take the runner lock, or say who holds it.
/// A runner killed a moment ago may still hold the lock until the server notices its socket
/// closed, so poll briefly before calling it taken.
pub async fn lock_runner(conn: &mut PgConnection) -> anyhow::Result<()> {
    match db::poll_advisory_lock(conn, ADVISORY_KEY, Duration::from_secs(5), |_| {}).await? {
        db::LockPoll::Taken => Ok(()),
        db::LockPoll::Held(holder) => bail!(
            "another backfill is running on this database{}; wait for it or stop it",
            holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ),
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
    ) -> anyhow::Result<Executor<'a>> {
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
    pub async fn run(&mut self, steps: &[StoredStep], report: &mut Tally) -> anyhow::Result<()> {
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

    /// `--max-replication-lag`: hold the next step or batch while a standby has more WAL left to
    /// replay than allowed, so what the backfill writes cannot pile up on a replica that the
    /// application reads from or would fail over to. Returns early when asked to stop.
    async fn wait_for_replicas(&mut self) -> anyhow::Result<()> {
        let Some(max) = self.opts.max_replication_lag else {
            return Ok(());
        };
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        // A line event: the terminal sink prints it above the fill's bar, never through it.
        let sink = self.sink;
        let say = |msg: String| sink.emit(Event::line(msg));
        let started = Instant::now();
        let mut waited = false;
        while let Some((name, lag)) = replicas::furthest_behind(self.conn).await? {
            if lag <= max {
                break;
            }
            if !waited {
                say(format!(
                    "realmguard:     waiting: standby {name} has {} of WAL not yet replayed (--max-replication-lag {})",
                    replicas::pretty(lag),
                    replicas::pretty(max)
                ));
                waited = true;
            }
            if self.stopping() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if waited {
            say(format!(
                "realmguard:     standbys within --max-replication-lag after {:.1}s",
                started.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }

    async fn sql_step(
        &mut self,
        seq: i32,
        step: &Step,
        sql: &str,
        guard: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let timeout = self.opts.timeout_for(step.lock, attempt);
            let started = Instant::now();
            match self
                .sql_attempt(seq, step, sql, guard, timeout, attempt, started)
                .await?
            {
                None => return Ok(()),
                Some(b) => self.after_lock_failure(step, attempt, timeout, b).await?,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn sql_attempt(
        &mut self,
        seq: i32,
        step: &Step,
        sql: &str,
        guard: Option<&str>,
        timeout: Duration,
        attempt: u32,
        started: Instant,
    ) -> anyhow::Result<Option<Blocked>> {
        if step.lock.blocks_traffic() {
            self.yield_autovacuum(step).await;
        }
        // The guard reads the catalog before the step's transaction: DROP without CASCADE
        // would refuse such a dependency anyway, this is for a message that says what to do.
        if let Some(index) = guard {
            let deps: Vec<String> = sqlx::query_scalar(
                "SELECT conrelid::regclass::text || ' (' || conname || ')' FROM pg_constraint
                 WHERE contype = 'f' AND conindid = to_regclass($1)",
            )
            .bind(qualified(&step.schema, index))
            .fetch_all(&mut *self.conn)
            .await?;
            if !deps.is_empty() {
                bail!(
                    "step {seq} ({}): foreign keys still depend on {index}: {}; realmguard never drops with CASCADE — convert or drop them first",
                    step.title,
                    deps.join(", ")
                );
            }
        }
        // The whole transaction is one message: the settings, the statement, its ledger row and
        // COMMIT. A lock that blocks traffic is then held for the server's work and the commit
        // only, never across a round trip back to this process (on a busy machine each waits
        // for this process to be scheduled). SET LOCAL: the settings die with the
        // transaction, also behind a transaction pooler.
        let body = format!(
            "BEGIN;\nSET LOCAL lock_timeout = '{}';\nSET LOCAL statement_timeout = 0;\n{sql}\n;\n{};\nCOMMIT",
            ms(timeout),
            done_sql(seq, attempt, started.elapsed())
        );
        let (res, blockers) = watch_while(
            sqlx::raw_sql(&body).execute(&mut *self.conn),
            &mut *self.watch,
            self.pid,
            timeout,
        )
        .await;
        match res {
            Ok(_) => Ok(None),
            Err(e) if db::is_lock_conflict(&e) => {
                rollback(self.conn).await;
                Ok(Some(Blocked { error: e, blockers }))
            }
            Err(e) => {
                rollback(self.conn).await;
                // 23514 from a step of the NOT NULL phase: its CHECK (realm IS NOT NULL) failed.
                // 23503 from validating a composite key: a child row's realm is not its
                // parent's. Old rows whose realm the plan took as certain (the default realm,
                // kept in the catalog) can be such rows if their parent was moved to another
                // realm between the parent's column step and the child's.
                let hint = match (sqlstate(&e).as_deref(), step.phase) {
                    (Some("23514"), Phase::NotNull) => {
                        "; some rows still have no realm (their parent reference is NULL or names no row): fix them and run again"
                    }
                    (Some("23503"), Phase::ForeignKey) => {
                        "; some rows are not in their parent's realm (was a parent row given another realm during the backfill?): set those rows' realm to their parent's and run again"
                    }
                    _ => "",
                };
                bail!(
                    "step {seq} on {} ({}) failed: {}{hint}",
                    step.display_table(),
                    step.title,
                    describe_pg_error(&e)
                )
            }
        }
    }

    /// Back off with jitter after a lock timeout or deadlock, or give up naming the blockers.
    async fn after_lock_failure(
        &mut self,
        step: &Step,
        attempt: u32,
        timeout: Duration,
        b: Blocked,
    ) -> anyhow::Result<()> {
        let who = self.describe_blockers(&b.blockers, &step.relations).await;
        if attempt > self.opts.lock_retries {
            bail!(
                "gave up on {} ({}) after {attempt} attempts: {} not granted (the last attempt waited {}); {who}",
                step.display_table(),
                step.title,
                step.lock.name(),
                ms(timeout),
            );
        }
        let wait = db::backoff(
            attempt - 1,
            Duration::from_millis(50),
            Duration::from_secs(5),
        );
        self.sink.emit(Event::line(format!(
            "realmguard:     {} ({}); {who}; retry {attempt}/{} in {}",
            if sqlstate(&b.error).as_deref() == Some(db::DEADLOCK) {
                "deadlock".to_string()
            } else {
                format!("lock not granted within {}", ms(timeout))
            },
            step.lock.name(),
            self.opts.lock_retries,
            ms(wait)
        )));
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// An autovacuum worker on the step's tables holds SHARE UPDATE EXCLUSIVE for as long as its
    /// pass takes (after a fill: a long one). PostgreSQL cancels it for any lock waiter after
    /// deadlock_timeout (1 s), but our lock_timeout is shorter, so we would time out and queue
    /// the application behind us again and again. Cancel it up front, as the server would; it
    /// comes back later. An anti-wraparound pass is never cancelled (nor would the server): the
    /// retry message names it instead.
    async fn yield_autovacuum(&mut self, step: &Step) {
        let names: Vec<String> = step
            .relations
            .iter()
            .map(|(s, n)| qualified(s, n))
            .collect();
        // Find first, cancel second: in one statement the planner may evaluate the cancel
        // before the filters and hit other sessions.
        let workers: Vec<i32> = sqlx::query_scalar(
            "SELECT a.pid FROM pg_stat_activity a
             WHERE a.backend_type = 'autovacuum worker'
               AND a.query NOT LIKE '%to prevent wraparound%'
               AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation'
                           AND l.relation IN (SELECT to_regclass(x)::oid FROM unnest($1::text[]) x))",
        )
        .bind(&names)
        .fetch_all(&mut *self.watch)
        .await
        .unwrap_or_default();
        for pid in workers {
            // Re-checked at the moment of cancelling: the pid must still be an autovacuum worker.
            let done: bool = sqlx::query_scalar(
                "SELECT CASE WHEN (SELECT backend_type FROM pg_stat_activity WHERE pid = $1) = 'autovacuum worker'
                        THEN pg_cancel_backend($1) ELSE false END",
            )
            .bind(pid)
            .fetch_one(&mut *self.watch)
            .await
            .unwrap_or(false);
            if !done {
                continue;
            }
            self.sink.emit(Event::line(format!(
                "realmguard:     cancelled autovacuum (pid {pid}) on {} so the lock is granted at once",
                step.display_table()
            )));
        }
    }

    /// "blocked by pid 123 (idle in transaction for 12s, user app: SELECT …)"; when the probe saw
    /// nothing, the sessions holding locks on the step's tables.
    async fn describe_blockers(&mut self, pids: &[i32], relations: &[(String, String)]) -> String {
        let mut pids = pids.to_vec();
        if pids.is_empty() {
            let names: Vec<String> = relations.iter().map(|(s, n)| qualified(s, n)).collect();
            pids = sqlx::query_scalar(
                "SELECT DISTINCT l.pid FROM pg_locks l
                 WHERE l.granted AND l.locktype = 'relation' AND l.pid <> $2
                   AND l.relation IN (SELECT to_regclass(x)::oid FROM unnest($1::text[]) x)",
            )
            .bind(&names)
            .bind(self.pid)
            .fetch_all(&mut *self.watch)
            .await
            .unwrap_or_default();
        }
        if pids.is_empty() {
            return "no blocking session seen (it ended before we looked)".into();
        }
        let rows = sqlx::query(
            "SELECT pid, coalesce(state, ''), coalesce(usename::text, ''),
                    coalesce(extract(epoch FROM now() - xact_start), 0)::float8,
                    left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 60)
             FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid",
        )
        .bind(&pids)
        .fetch_all(&mut *self.watch)
        .await
        .unwrap_or_default();
        let mut parts = Vec::new();
        for pid in &pids {
            match rows.iter().find(|r| r.get::<i32, _>(0) == *pid) {
                Some(r) => parts.push(format!(
                    "pid {pid} ({} for {:.0}s, user {}: {})",
                    r.get::<String, _>(1),
                    r.get::<f64, _>(3),
                    r.get::<String, _>(2),
                    r.get::<String, _>(4)
                )),
                None => parts.push(format!("pid {pid}")),
            }
        }
        format!("blocked by {}", parts.join(", "))
    }

    async fn index_step(
        &mut self,
        seq: i32,
        step: &Step,
        index: &str,
        sql: &str,
    ) -> anyhow::Result<()> {
        let timeout = self.opts.timeout_for(step.lock, 1);
        let started = Instant::now();
        // Statements sent (drops of an invalid leftover, builds): the loop's last round only
        // finds the index valid.
        let mut attempt = 0u32;
        loop {
            match db::index_valid(self.conn, &qualified(&step.schema, index)).await? {
                Some(true) => break,
                Some(false) => {
                    attempt += 1;
                    // A failed or killed CONCURRENTLY build leaves an invalid index that
                    // IF NOT EXISTS would silently accept (pitfall 4): drop it and build again.
                    self.sink.emit(Event::line(format!(
                        "realmguard:     dropping the invalid leftover index {index}"
                    )));
                    let drop = format!(
                        "DROP INDEX CONCURRENTLY IF EXISTS {}",
                        qualified(&step.schema, index)
                    );
                    if let Some(b) = self.concurrently(&drop, timeout).await? {
                        self.after_lock_failure(step, attempt, timeout, b).await?;
                    }
                    continue;
                }
                None => {
                    attempt += 1;
                    if let Some(b) = self.concurrently(sql, timeout).await? {
                        self.after_lock_failure(step, attempt, timeout, b).await?;
                    }
                }
            }
        }
        mark_done(&mut *self.conn, seq, attempt, started.elapsed()).await?;
        Ok(())
    }

    async fn drop_index_step(&mut self, seq: i32, step: &Step, sql: &str) -> anyhow::Result<()> {
        let timeout = self.opts.timeout_for(step.lock, 1);
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.concurrently(sql, timeout).await? {
                None => break,
                Some(b) => self.after_lock_failure(step, attempt, timeout, b).await?,
            }
        }
        mark_done(&mut *self.conn, seq, attempt, started.elapsed()).await?;
        Ok(())
    }

    /// A CONCURRENTLY statement: outside any transaction, so the timeouts are session settings,
    /// reset afterwards.
    async fn concurrently(
        &mut self,
        sql: &str,
        timeout: Duration,
    ) -> anyhow::Result<Option<Blocked>> {
        sqlx::raw_sql(&format!(
            "SET lock_timeout = '{}'; SET statement_timeout = 0",
            ms(timeout)
        ))
        .execute(&mut *self.conn)
        .await?;
        let (res, blockers) = watch_while(
            sqlx::raw_sql(sql).execute(&mut *self.conn),
            &mut *self.watch,
            self.pid,
            timeout,
        )
        .await;
        sqlx::raw_sql("RESET lock_timeout; RESET statement_timeout")
            .execute(&mut *self.conn)
            .await?;
        match res {
            Ok(_) => Ok(None),
            Err(e) if db::is_lock_conflict(&e) => Ok(Some(Blocked { error: e, blockers })),
            Err(e) => Err(anyhow!("{}", describe_pg_error(&e)))
                .with_context(|| format!("`{}` failed", sql.lines().next().unwrap_or(sql))),
        }
    }

    /// Fill old rows in keyset batches over `key`, each its own transaction, sized so one batch
    /// takes about `--batch-ms` (a concurrent writer waits at most about that long on its row
    /// locks). The upper bound is `max(key)` captured now that the trigger is live: later rows
    /// are the trigger's. Progress commits with each batch, so a rerun resumes after the last one.
    async fn fill_step(
        &mut self,
        seq: i32,
        step: &Step,
        key: &str,
        sql: &str,
    ) -> anyhow::Result<Progress> {
        let qt = qualified(&step.schema, &step.table);
        let existing = sqlx::query(
            "SELECT key_min, bound, done_upto, rows_done, batches, fill_ms
             FROM realmguard.backfill_progress WHERE table_schema = $1 AND table_name = $2",
        )
        .bind(&step.schema)
        .bind(&step.table)
        .fetch_optional(&mut *self.conn)
        .await?;
        let mut p = Progress {
            schema: step.schema.clone(),
            table: step.table.clone(),
            ..Progress::default()
        };
        match existing {
            Some(r) => {
                p.key_min = r.get(0);
                p.bound = r.get(1);
                p.done_upto = r.get(2);
                p.rows_done = r.get(3);
                p.batches = r.get(4);
                p.fill_ms = r.get(5);
                self.sink.emit(Event::line(format!(
                    "realmguard:     resuming after {key} = {} ({} rows already filled)",
                    p.done_upto, p.rows_done
                )));
            }
            None => {
                let q = crate::db::quote_ident(key);
                let r = sqlx::query(&format!(
                    "SELECT coalesce(min({q}), 0)::bigint, coalesce(max({q}), 0)::bigint FROM {qt}"
                ))
                .fetch_one(&mut *self.conn)
                .await?;
                let (lo, hi): (i64, i64) = (r.get(0), r.get(1));
                p.key_min = lo.saturating_sub(1);
                p.bound = hi;
                p.done_upto = p.key_min;
                sqlx::query(
                    "INSERT INTO realmguard.backfill_progress (table_schema, table_name, key_min, bound, done_upto)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&step.schema)
                .bind(&step.table)
                .bind(p.key_min)
                .bind(p.bound)
                .bind(p.done_upto)
                .execute(&mut *self.conn)
                .await?;
            }
        }
        self.sink.emit(Event::WorkStarted {
            unit: Unit::Rows,
            total: (p.bound - p.key_min).max(0) as u64,
            label: step.display_table(),
        });
        self.sink.emit(Event::WorkProgress {
            done: (p.done_upto - p.key_min).max(0) as u64,
            label: String::new(),
        });

        let target = self.opts.batch.max(Duration::from_millis(1));
        // A batch waits on row locks of the application's short transactions. Bounding that wait
        // near the batch's own duration (and well under the server's 1 s deadlock_timeout) makes
        // the batch, never the application, give way when a writer transaction locks two rows
        // of one batch in the opposite order: our lock_timeout fires before the writer's
        // deadlock check, the batch rolls back and is retried smaller.
        let timeout = self
            .opts
            .lock_timeout
            .min((target * 2).max(Duration::from_millis(50)));
        let mut size: i64 = 1_000;
        let started = Instant::now();
        let rows_before = p.rows_done;
        let mut attempt = 0u32;
        while p.done_upto < p.bound {
            self.wait_for_replicas().await?;
            if self.stopping() {
                self.sink.emit(Event::WorkFinished);
                self.sink.emit(Event::line(format!(
                    "realmguard:     stopped after the batch ending at {key} = {}; `realmguard backfill run` resumes there",
                    p.done_upto
                )));
                return Ok(p);
            }
            let lo = p.done_upto;
            let hi = lo.saturating_add(size).min(p.bound);
            let t0 = Instant::now();
            match self.batch(sql, lo, hi, timeout, &p).await? {
                Ok((n, fill_ms)) => {
                    attempt = 0;
                    let took = t0.elapsed();
                    p.done_upto = hi;
                    p.rows_done += n as i64;
                    p.batches += 1;
                    p.fill_ms = fill_ms;
                    // Aim the next batch at the target duration; change by at most 2× a step so
                    // one odd batch (a checkpoint, a stall) does not swing it.
                    let factor =
                        (target.as_secs_f64() / took.as_secs_f64().max(1e-4)).clamp(0.5, 2.0);
                    size = ((size as f64 * factor) as i64).clamp(1, 10_000_000);
                    let rate = (p.rows_done - rows_before) as f64
                        / started.elapsed().as_secs_f64().max(1e-3);
                    self.sink.emit(Event::WorkProgress {
                        done: (p.done_upto - p.key_min) as u64,
                        label: format!("{} rows, {:.0} rows/s", p.rows_done, rate),
                    });
                    if !self.opts.pause.is_zero() {
                        tokio::time::sleep(self.opts.pause).await;
                    }
                }
                Err(b) => {
                    attempt += 1;
                    size = (size / 2).max(1);
                    self.after_lock_failure(step, attempt, timeout, b).await?;
                }
            }
        }
        p.finished = true;
        let mut tx = self.conn.begin().await?;
        sqlx::query(
            "UPDATE realmguard.backfill_progress SET finished_at = clock_timestamp()
             WHERE table_schema = $1 AND table_name = $2",
        )
        .bind(&step.schema)
        .bind(&step.table)
        .execute(&mut *tx)
        .await?;
        // Like every step: the wall time this run spent on it (batches, waits and round trips).
        mark_done(&mut tx, seq, 1, started.elapsed()).await?;
        tx.commit().await?;
        self.sink.emit(Event::WorkFinished);
        let secs = p.fill_ms as f64 / 1000.0;
        self.sink.emit(Event::line(format!(
            "realmguard:     filled {} rows in {} batches, {:.2}s in batches ({:.0} rows/s)",
            p.rows_done,
            p.batches,
            secs,
            p.rows_done as f64 / secs.max(1e-3)
        )));
        Ok(p)
    }

    /// One batch: its own transaction with the row-lock wait bounded, progress in the same commit.
    async fn batch(
        &mut self,
        sql: &str,
        lo: i64,
        hi: i64,
        timeout: Duration,
        p: &Progress,
    ) -> anyhow::Result<Result<(u64, i64), Blocked>> {
        let mut tx = self.conn.begin().await?;
        // synchronous_commit off: a batch commit need not wait for its WAL flush. A crash can
        // lose the last batches, but their progress rows go with them (same transaction), so
        // the rerun redoes exactly those; it makes short batches cheap, which keeps writers'
        // waits on our row locks short.
        sqlx::raw_sql(&format!(
            "SET LOCAL lock_timeout = '{}'; SET LOCAL synchronous_commit = off",
            ms(timeout)
        ))
        .execute(&mut *tx)
        .await?;
        let (res, blockers) = watch_while(
            sqlx::query(sql).bind(lo).bind(hi).execute(&mut *tx),
            &mut *self.watch,
            self.pid,
            timeout,
        )
        .await;
        match res {
            Ok(r) => {
                // The time inside batches is counted here only (the server's clock), so the
                // ledger and this run's report cannot drift apart.
                let fill_ms: i64 = sqlx::query_scalar(
                    "UPDATE realmguard.backfill_progress
                     SET done_upto = $3, rows_done = rows_done + $4, batches = batches + 1,
                         fill_ms = fill_ms + (extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint
                     WHERE table_schema = $1 AND table_name = $2
                     RETURNING fill_ms",
                )
                .bind(&p.schema)
                .bind(&p.table)
                .bind(hi)
                .bind(r.rows_affected() as i64)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Ok((r.rows_affected(), fill_ms)))
            }
            Err(e) if db::is_lock_conflict(&e) => {
                let _ = tx.rollback().await;
                Ok(Err(Blocked { error: e, blockers }))
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(anyhow!("{}", describe_pg_error(&e))).with_context(|| {
                    format!("filling {}.{} ({lo}, {hi}] failed", p.schema, p.table)
                })
            }
        }
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

/// The ledger UPDATE that records step `seq` as done: `took` is this run's time on it before
/// the statement's message reached the server, and the server adds its own time for that
/// message (`statement_timestamp()` is when it arrived), so a step whose statement rides in the
/// same message is timed to its commit.
fn done_sql(seq: i32, attempts: u32, took: Duration) -> String {
    format!(
        "UPDATE realmguard.backfill_steps SET done_at = clock_timestamp(), attempts = {attempts},
    duration_ms = {} + round(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::bigint
WHERE seq = {seq}",
        took.as_millis()
    )
}

/// Record a step as done (in the step's own transaction where it has one, so the record and the
/// effect commit together).
async fn mark_done(
    conn: &mut sqlx::PgConnection,
    seq: i32,
    attempts: u32,
    took: Duration,
) -> anyhow::Result<()> {
    sqlx::raw_sql(&done_sql(seq, attempts, took))
        .execute(conn)
        .await?;
    Ok(())
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
