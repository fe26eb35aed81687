//! The scheduler: targets worked on `jobs` at a time (tokio tasks behind a semaphore), the canary
//! group first, `on_error`/`max_failures`/Ctrl-C deciding whether new targets start. Each target
//! is migrated by [`crate::migrate::migrate_reporting`] itself, with its own lock, ledger and
//! guard; a read-only look at its ledger first skips an up-to-date target without the lock.

use super::config::OnError;
use super::report::{Action, FleetReport, State, TargetReport, VerifyCounts};
use super::targets::FleetTarget;
use super::{Error, Result};
use crate::config::Config;
use crate::db;
use crate::events::{Cancel, Event, EventSink, Tagged, Unit};
use crate::migrate::{self, ledger, plan, source::Migration, MigrateOptions};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub action: Action,
    pub jobs: usize,
    pub on_error: OnError,
    /// With `continue`: start no new target after this many failures; 0 = no cap.
    pub max_failures: usize,
    /// With migrate: the group that runs (and must all succeed) first.
    pub canary: Option<String>,
    /// Applied to every target (its `cancel` is replaced by the fleet's own).
    pub migrate: MigrateOptions,
    /// Set by the caller on Ctrl-C: no new target starts, running ones stop after the
    /// migration in hand.
    pub cancel: Cancel,
}

struct Shared {
    cfg: Config,
    files: Vec<Migration>,
    opts: FleetOptions,
    /// Stops running targets after their current migration and keeps new ones from starting.
    halt: Cancel,
    /// Keeps new targets from starting (max_failures reached); running ones go on.
    no_new: AtomicBool,
    failures: AtomicUsize,
    sink: Arc<dyn EventSink>,
}

/// Work on every target and report on each, in the order given.
pub async fn run(
    targets: Vec<FleetTarget>,
    cfg: Config,
    files: Vec<Migration>,
    opts: FleetOptions,
    sink: Arc<dyn EventSink>,
) -> FleetReport {
    let halt = Cancel::default();
    let forward = {
        let (user, halt) = (opts.cancel.clone(), halt.clone());
        tokio::spawn(async move {
            user.cancelled().await;
            halt.cancel();
        })
    };
    let mut migrate_opts = opts.migrate.clone();
    migrate_opts.cancel = halt.clone();
    let action = opts.action;
    let shared = Arc::new(Shared {
        cfg,
        files,
        opts: FleetOptions {
            migrate: migrate_opts,
            ..opts
        },
        halt,
        no_new: AtomicBool::new(false),
        failures: AtomicUsize::new(0),
        sink,
    });
    let targets: Vec<Arc<FleetTarget>> = targets.into_iter().map(Arc::new).collect();
    shared.sink.emit(Event::WorkStarted {
        unit: Unit::Targets,
        total: targets.len() as u64,
        label: String::new(),
    });
    let mut reports: Vec<Option<TargetReport>> = vec![None; targets.len()];
    // The targets' tasks run on one thread (a LocalSet): the work is waiting on servers, and
    // sqlx's futures trip the compiler's Send check for spawned tasks (rust-lang/rust#102211).
    let local = tokio::task::LocalSet::new();
    let canary = match (&shared.opts.canary, action) {
        (Some(c), Action::Migrate) => Some(c.clone()),
        _ => None,
    };
    let (first, rest): (Vec<usize>, Vec<usize>) =
        (0..targets.len()).partition(|&i| canary.is_some() && targets[i].group == canary);
    let mut canary_failed = false;
    if !first.is_empty() {
        local
            .run_until(wave(&shared, &targets, &first, &mut reports))
            .await;
        canary_failed = first.iter().any(|&i| {
            !matches!(
                reports[i].as_ref().map(|r| r.state),
                Some(State::Ok | State::Skipped)
            )
        });
    }
    if !canary_failed {
        local
            .run_until(wave(&shared, &targets, &rest, &mut reports))
            .await;
    }
    shared.sink.emit(Event::WorkFinished);
    forward.abort();
    let why = if canary_failed {
        format!(
            "not started: the canary group `{}` did not all succeed",
            canary.unwrap_or_default()
        )
    } else if shared.opts.cancel.is_cancelled() {
        "not started: interrupted (Ctrl-C)".to_string()
    } else if shared.no_new.load(Ordering::SeqCst) {
        format!(
            "not started: {} target(s) failed (max_failures = {})",
            shared.failures.load(Ordering::SeqCst),
            shared.opts.max_failures
        )
    } else {
        "not started: another target failed (on_error = stop)".to_string()
    };
    let done = reports
        .into_iter()
        .zip(&targets)
        .map(|(r, t)| {
            r.unwrap_or_else(|| TargetReport {
                error: Some(why.clone()),
                ..TargetReport::new(&t.name, t.group.as_deref())
            })
        })
        .collect();
    FleetReport::new(action, done)
}

/// Start the targets `indices`, at most `jobs` at once, until they are all done or the run is
/// stopped; targets never started keep no report.
async fn wave(
    shared: &Arc<Shared>,
    targets: &[Arc<FleetTarget>],
    indices: &[usize],
    reports: &mut [Option<TargetReport>],
) {
    let sem = Arc::new(Semaphore::new(shared.opts.jobs.max(1)));
    let mut set = JoinSet::new();
    for &i in indices {
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => p,
            _ = shared.halt.cancelled() => break,
        };
        let Ok(permit) = permit else { break };
        if shared.halt.is_cancelled() || shared.no_new.load(Ordering::SeqCst) {
            break;
        }
        let (t, sh) = (targets[i].clone(), shared.clone());
        set.spawn_local(async move {
            let r = one(&t, &sh).await;
            drop(permit);
            (i, r)
        });
    }
    while let Some(res) = set.join_next().await {
        if let Ok((i, r)) = res {
            reports[i] = Some(r);
        }
    }
}

/// One target, start to end, with its failure counted against the run.
async fn one(t: &FleetTarget, sh: &Shared) -> TargetReport {
    sh.sink.emit(Event::TargetStarted {
        target: t.name.clone(),
    });
    let started = Instant::now();
    let mut r = TargetReport::new(&t.name, t.group.as_deref());
    let sink = Tagged {
        target: t.name.clone(),
        inner: sh.sink.as_ref(),
    };
    if let Err(e) = work(t, sh, &sink, &mut r).await {
        r.state = State::Failed;
        r.error = Some(db::redact(&crate::output::cause_chain(&e), &t.secrets));
    }
    r.duration_ms = started.elapsed().as_millis() as u64;
    if r.state == State::Failed {
        let n = sh.failures.fetch_add(1, Ordering::SeqCst) + 1;
        match sh.opts.on_error {
            OnError::Stop => sh.halt.cancel(),
            OnError::Continue if sh.opts.max_failures > 0 && n >= sh.opts.max_failures => {
                sh.no_new.store(true, Ordering::SeqCst)
            }
            OnError::Continue => {}
        }
    }
    sh.sink.emit(Event::TargetFinished {
        target: t.name.clone(),
        state: r.state.as_str().to_string(),
    });
    r
}

/// What a read-only look at a target's ledger says.
struct Look {
    version: i64,
    drift: Vec<String>,
    pending: usize,
}

async fn look(
    conn: &mut sqlx::PgConnection,
    files: &[Migration],
    opts: plan::PlanOptions,
) -> Result<Look> {
    let applied = ledger::read(conn)
        .await
        .map_err(|source| Error::Ledger { source })?;
    let version = applied
        .iter()
        .filter(|a| a.success)
        .map(|a| a.version)
        .max()
        .unwrap_or(0);
    let entries = plan::entries(&applied, files);
    Ok(match plan::plan(&entries, files, opts) {
        Ok(todo) => Look {
            version,
            drift: Vec::new(),
            pending: todo.len(),
        },
        Err(drift) => Look {
            version,
            drift: drift.problems,
            pending: 0,
        },
    })
}

/// Fill `r` with what the action did on `t`; an `Err` makes it `failed`.
async fn work(
    t: &FleetTarget,
    sh: &Shared,
    sink: &dyn EventSink,
    r: &mut TargetReport,
) -> Result<()> {
    let plan_opts = match sh.opts.action {
        Action::Migrate => sh.opts.migrate.plan,
        _ => plan::PlanOptions::default(),
    };
    let mut conn = t
        .target
        .connect()
        .await
        .map_err(|source| Error::Connect { source })?;
    let seen = look(&mut conn, &sh.files, plan_opts).await;
    let seen = match seen {
        Ok(s) => s,
        Err(e) => {
            let _ = sqlx::Connection::close(conn).await;
            return Err(e);
        }
    };
    r.version_before = Some(seen.version);
    r.version_after = Some(seen.version);
    r.pending = seen.pending;
    r.drift = seen.drift;
    r.state = if r.drift.is_empty() {
        State::Ok
    } else {
        State::Drifted
    };
    if sh.opts.action == Action::Verify {
        let report = crate::verify::verify(&mut conn, &sh.cfg).await;
        let _ = sqlx::Connection::close(conn).await;
        let report = report.map_err(|source| Error::Verify { source })?;
        r.verify = Some(VerifyCounts {
            errors: report.summary.errors,
            warnings: report.summary.warnings,
        });
        return Ok(());
    }
    let _ = sqlx::Connection::close(conn).await;
    if sh.opts.action == Action::Status || r.state == State::Drifted {
        return Ok(());
    }
    if r.pending == 0 {
        r.state = State::Skipped;
        return Ok(());
    }
    if sh.halt.is_cancelled() {
        r.state = State::NotStarted;
        r.error = Some("not started: the run was stopped".into());
        return Ok(());
    }
    migrate_one(t, sh, sink, r).await
}

async fn migrate_one(
    t: &FleetTarget,
    sh: &Shared,
    sink: &dyn EventSink,
    r: &mut TargetReport,
) -> Result<()> {
    let opts = &sh.opts.migrate;
    let (report, result) =
        migrate::migrate_reporting(&t.target, &sh.cfg, &sh.files, opts, sink).await;
    r.applied = report.applied.len();
    if let Some(last) = report.applied.iter().map(|a| a.version).max() {
        r.version_after = Some(last.max(r.version_before.unwrap_or(0)));
    }
    if opts.dry_run {
        r.pending = report.planned.len();
    } else {
        r.pending = r.pending.saturating_sub(r.applied);
    }
    r.verify = report.verify.as_ref().map(|v| VerifyCounts {
        errors: v.summary.errors,
        warnings: v.summary.warnings,
    });
    result.map_err(|source| Error::Migrate { source })?;
    if let Some(rej) = &report.rejected {
        let first = rej
            .violations
            .first()
            .map(|v| format!(": {} on {}.{}", v.rule, v.schema, v.table))
            .unwrap_or_default();
        return Err(Error::GuardRejected {
            version: rej.version,
            count: rej.violations.len(),
            first,
        });
    }
    if let Some(v) = report.stopped_before {
        let why = if sh.opts.cancel.is_cancelled() {
            "interrupted (Ctrl-C)"
        } else {
            "another target failed"
        };
        return Err(Error::Stopped {
            version: v,
            why,
            applied: r.applied,
            pending: r.pending,
        });
    }
    Ok(())
}
