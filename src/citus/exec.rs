//! Running the distribution plan: one transaction per step under `lock_timeout` (retried with
//! backoff when the lock is not granted in time), each recorded in `realmguard.citus_steps`
//! before it starts and when it ends. Citus's functions are transactional, so a step that was
//! killed left nothing behind; the next run re-reads Citus's metadata, skips what is done, marks
//! the step left `running` as `interrupted` and runs it again.

use super::plan::{self, Plan, StepKind};
use super::{Error, Result};
use crate::config::Config;
use crate::db::{describe_pg_error, sqlstate, Target, LOCK_TIMEOUT};
use crate::events::{Cancel, Event, EventSink};
use serde::Serialize;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};

const LEDGER_SQL: &str = "CREATE SCHEMA IF NOT EXISTS realmguard;
CREATE TABLE IF NOT EXISTS realmguard.citus_steps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name  text NOT NULL,
    kind        text NOT NULL,
    sql         text NOT NULL,
    state       text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    duration_ms bigint,
    attempts    int NOT NULL DEFAULT 0,
    error       text
)";

/// Two runs at once would race on the same tables; the second is refused.
const RUNNER_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('realmguard.citus.distribute'))";

#[derive(Debug, Clone)]
pub struct Options {
    pub plan: plan::Options,
    pub lock_timeout: Duration,
    pub lock_retries: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepResult {
    pub table: String,
    pub kind: StepKind,
    /// `done`, `skipped` (Citus held it already), `failed`, `not_started`.
    pub state: &'static str,
    pub duration_ms: u64,
    pub attempts: u32,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributeReport {
    pub ok: bool,
    pub steps: Vec<StepResult>,
    pub duration_ms: u64,
}

/// Refuse (one line) when the database is no coordinator or the profile finds errors.
pub fn refusal(plan: &Plan) -> Option<String> {
    if !plan.coordinator {
        return Some(
            "this database is not a Citus coordinator (no pg_dist_partition): CREATE EXTENSION citus and add the workers (citus_add_node) first".into(),
        );
    }
    if let Some(first) = plan.blockers.first() {
        return Some(format!(
            "`verify --profile citus` reports {} error(s), refusing to distribute; first: {first}",
            plan.blockers.len()
        ));
    }
    None
}

/// Build the plan and run its pending steps. The report comes back even when a step failed
/// (with the error as the second value), so the caller can show how far it got.
pub async fn distribute(
    target: &Target,
    cfg: &Config,
    opts: &Options,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<(DistributeReport, Result<()>)> {
    let started = Instant::now();
    let mut conn = target
        .connect()
        .await
        .map_err(|source| Error::Connect { source })?;
    let plan = super::load_plan(&mut conn, cfg, &opts.plan).await?;
    if let Some(reason) = refusal(&plan) {
        return Err(Error::Refused { reason });
    }
    // A killed run's backend notices its client is gone within a second (PostgreSQL 14+) and
    // rolls its step back instead of finishing a copy nobody will commit.
    sqlx::raw_sql("SET client_connection_check_interval = '1s'")
        .execute(&mut conn)
        .await
        .map_err(|source| Error::SetCheckInterval { source })?;
    wait_for_runner_lock(&mut conn, sink).await?;
    sqlx::raw_sql(LEDGER_SQL)
        .execute(&mut conn)
        .await
        .map_err(|source| Error::RecordStep { source })?;
    sqlx::query(
        "UPDATE realmguard.citus_steps SET state = 'interrupted', finished_at = clock_timestamp() WHERE state = 'running'",
    )
    .execute(&mut conn)
    .await
    .map_err(|source| Error::RecordStep { source })?;
    let mut results: Vec<StepResult> = plan
        .steps
        .iter()
        .map(|s| StepResult {
            table: s.table.clone(),
            kind: s.kind,
            state: if s.done { "skipped" } else { "not_started" },
            duration_ms: 0,
            attempts: 0,
            error: None,
        })
        .collect();
    let mut outcome = Ok(());
    for (i, step) in plan.steps.iter().enumerate() {
        if step.done {
            continue;
        }
        if cancel.is_cancelled() {
            outcome = Err(Error::Interrupted {
                table: step.table.clone(),
            });
            break;
        }
        sink.emit(Event::line(format!(
            "realmguard: {} {} (holds {} for {})",
            match step.kind {
                StepKind::Reference => "reference table",
                StepKind::Distributed => "distributing",
            },
            step.table,
            step.lock,
            plan::human(step.estimate_ms)
        )));
        let r = &mut results[i];
        match run_step(&mut conn, step, opts, r).await {
            Ok(()) => r.state = "done",
            Err(e) => {
                r.state = "failed";
                r.error = Some(e.to_string());
                outcome = Err(Error::StepFailed {
                    table: step.table.clone(),
                    error: Box::new(e),
                });
                break;
            }
        }
    }
    let ok = outcome.is_ok();
    Ok((
        DistributeReport {
            ok,
            steps: results,
            duration_ms: started.elapsed().as_millis() as u64,
        },
        outcome,
    ))
}

/// The runner lock, waited for a while: a run killed a moment ago holds it until its backend
/// has noticed.
async fn wait_for_runner_lock(conn: &mut PgConnection, sink: &dyn EventSink) -> Result<()> {
    let until = Instant::now() + RUNNER_WAIT;
    let mut said = false;
    loop {
        let got: bool = sqlx::query_scalar(RUNNER_LOCK)
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| Error::RunnerLock { source })?;
        if got {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(Error::RunnerBusy {
                secs: RUNNER_WAIT.as_secs(),
            });
        }
        if !said {
            sink.emit(Event::line(
                "realmguard: waiting for another distribute run on this database to end",
            ));
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

const RUNNER_WAIT: Duration = Duration::from_secs(30);

/// One step: recorded, then its transaction, retried while the lock times out.
async fn run_step(
    conn: &mut PgConnection,
    step: &plan::Step,
    opts: &Options,
    r: &mut StepResult,
) -> Result<()> {
    let kind = match step.kind {
        StepKind::Reference => "reference",
        StepKind::Distributed => "distributed",
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO realmguard.citus_steps (table_name, kind, sql, state) VALUES ($1, $2, $3, 'running') RETURNING id",
    )
    .bind(&step.table)
    .bind(kind)
    .bind(&step.sql)
    .fetch_one(&mut *conn)
    .await
    .map_err(|source| Error::RecordStep { source })?;
    let started = Instant::now();
    let mut backoff = Duration::from_millis(200);
    let result = loop {
        r.attempts += 1;
        match attempt(conn, step, opts.lock_timeout).await {
            Err(e)
                if sqlstate(&e).as_deref() == Some(LOCK_TIMEOUT)
                    && r.attempts <= opts.lock_retries =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            other => break other,
        }
    };
    r.duration_ms = started.elapsed().as_millis() as u64;
    let error = result.as_ref().err().map(describe_pg_error);
    let state = if error.is_none() { "done" } else { "failed" };
    sqlx::query(
        "UPDATE realmguard.citus_steps SET state = $2, finished_at = clock_timestamp(), duration_ms = $3, attempts = $4, error = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(r.duration_ms as i64)
    .bind(r.attempts as i32)
    .bind(&error)
    .execute(&mut *conn)
    .await
    .map_err(|source| Error::RecordStep { source })?;
    match error {
        None => Ok(()),
        Some(message) => Err(Error::Statement { message }),
    }
}

async fn attempt(
    conn: &mut PgConnection,
    step: &plan::Step,
    lock_timeout: Duration,
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(&format!(
        "SET LOCAL lock_timeout = '{}ms'",
        lock_timeout.as_millis()
    ))
    .execute(&mut *tx)
    .await?;
    for s in step.settings.iter().chain(&step.before) {
        sqlx::raw_sql(s).execute(&mut *tx).await?;
    }
    sqlx::raw_sql(&step.sql).execute(&mut *tx).await?;
    tx.commit().await
}
