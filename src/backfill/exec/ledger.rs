//! The ledger in schema `realmguard`: the recorded plan (one row per step, done or not) and each
//! fill's progress, written in the same transaction as the effect they record; and the runner
//! lock. Rows are decoded by column name: a changed ledger is an error, never a panic.

use crate::backfill::error::{Error, Result};
use crate::backfill::plan::{Plan, Step};
use crate::db;
use sqlx::{Connection, PgConnection, Row};
use std::time::Duration;

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

pub async fn ensure_ledger(conn: &mut PgConnection) -> Result<()> {
    Ok(db::create_if_missing(conn, LEDGER, "the backfill ledger in schema realmguard").await?)
}

async fn ledger_exists(conn: &mut PgConnection) -> Result<bool> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT to_regclass('realmguard.backfill_steps') IS NOT NULL
            AND to_regclass('realmguard.backfill_progress') IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// The recorded plan, in order (empty when no backfill ever ran).
pub async fn load_steps(conn: &mut PgConnection) -> Result<Vec<StoredStep>> {
    if !ledger_exists(conn).await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT seq, step::text AS step, done_at IS NOT NULL AS done
         FROM realmguard.backfill_steps ORDER BY seq",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let text: String = r.try_get("step")?;
            Ok(StoredStep {
                seq: r.try_get("seq")?,
                step: serde_json::from_str(&text).map_err(Error::UnreadablePlan)?,
                done: r.try_get("done")?,
            })
        })
        .collect()
}

pub async fn load_progress(conn: &mut PgConnection) -> Result<Vec<Progress>> {
    if !ledger_exists(conn).await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT table_schema, table_name, key_min, bound, done_upto, rows_done, batches, fill_ms,
                finished_at IS NOT NULL AS finished
         FROM realmguard.backfill_progress ORDER BY started_at",
    )
    .fetch_all(&mut *conn)
    .await?;
    let progress = rows
        .iter()
        .map(|r| {
            Ok(Progress {
                schema: r.try_get("table_schema")?,
                table: r.try_get("table_name")?,
                key_min: r.try_get("key_min")?,
                bound: r.try_get("bound")?,
                done_upto: r.try_get("done_upto")?,
                rows_done: r.try_get("rows_done")?,
                batches: r.try_get("batches")?,
                fill_ms: r.try_get("fill_ms")?,
                finished: r.try_get("finished")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(progress)
}

/// Replace the recorded plan with `plan` (the previous one is finished).
pub async fn store_plan(conn: &mut PgConnection, plan: &Plan) -> Result<Vec<StoredStep>> {
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
pub async fn append_steps(conn: &mut PgConnection, steps: &[Step]) -> Result<Vec<StoredStep>> {
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
) -> Result<Vec<StoredStep>> {
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
        .bind(serde_json::to_string(step).map_err(Error::EncodeStep)?)
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
pub async fn lock_runner(conn: &mut PgConnection) -> Result<()> {
    match db::poll_advisory_lock(conn, ADVISORY_KEY, Duration::from_secs(5), |_| {}).await? {
        db::LockPoll::Taken => Ok(()),
        db::LockPoll::Held(holder) => Err(Error::RunnerLocked { holder }),
    }
}

/// The ledger UPDATE that records step `seq` as done: `took` is this run's time on it before
/// the statement's message reached the server, and the server adds its own time for that
/// message (`statement_timestamp()` is when it arrived), so a step whose statement rides in the
/// same message is timed to its commit.
pub(super) fn done_sql(seq: i32, attempts: u32, took: Duration) -> String {
    format!(
        "UPDATE realmguard.backfill_steps SET done_at = clock_timestamp(), attempts = {attempts},
    duration_ms = {} + round(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::bigint
WHERE seq = {seq}",
        took.as_millis()
    )
}

/// Record a step as done (in the step's own transaction where it has one, so the record and the
/// effect commit together).
pub(super) async fn mark_done(
    conn: &mut sqlx::PgConnection,
    seq: i32,
    attempts: u32,
    took: Duration,
) -> Result<()> {
    sqlx::raw_sql(&done_sql(seq, attempts, took))
        .execute(conn)
        .await?;
    Ok(())
}
