//! The backfill's commands as domain functions: each takes validated options, sends progress to
//! an [`EventSink`], stops at a [`Cancel`] and returns a typed report (see `report`), which the
//! commands layer renders.

use super::error::{Error, Result};
use super::exec::{self, StoredStep, Tally};
use super::plan::{self, Action, Phase, Plan};
use super::report::{
    FinishPreview, FinishReport, FinishSummary, NothingToDo, PlanReport, RunReport, RunSummary,
    StatusReport, StepReport,
};
use super::{load, preflight, prepared, replicas};
use crate::config::Config;
use crate::db::Target;
use crate::events::{Cancel, Event, EventSink};
use crate::rules::{Rule, Severity};
use std::time::{Duration, Instant};

/// `backfill run`'s options (`exec::Options`: batch size, lock timeouts and retries, preflight's
/// transaction age, workers, replication lag).
pub type RunOptions = exec::Options;

/// `backfill finish`'s options.
#[derive(Debug, Clone)]
pub struct FinishOptions {
    pub lock_timeout: Duration,
    pub lock_retries: u32,
    /// Only say which steps would run.
    pub dry_run: bool,
}

/// The tables a list of steps converts (the realms table's own step is not a conversion); a
/// partitioned table stands for its partitions, as verify judges it.
fn tables_of(steps: &[StoredStep]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for s in steps {
        let id = s
            .step
            .partition_of
            .clone()
            .unwrap_or_else(|| (s.step.schema.clone(), s.step.table.clone()));
        if s.step.phase != Phase::Realms && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// [`tables_of`] and the partitions the steps work on: what preflight looks at (a fill or a
/// validation runs on the partition, under the partition's own row level security).
fn relations_of(steps: &[StoredStep]) -> Vec<(String, String)> {
    let mut out = tables_of(steps);
    for s in steps.iter().filter(|s| s.step.partition_of.is_some()) {
        let id = (s.step.schema.clone(), s.step.table.clone());
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// The config the end check verifies with: the goal rules at error whatever the config says, and
/// every converted table checked (even if `exclude` or `schemas` changed since the plan was
/// recorded) and realm-scoped (even if the column went missing).
fn goal_config(cfg: &Config, tables: &[(String, String)]) -> Config {
    let mut goal = cfg.clone();
    for rule in Rule::backfill_goals() {
        goal.rules.insert(rule.id().to_string(), Severity::Error);
    }
    goal.realm_scoped
        .extend(tables.iter().map(|(s, t)| format!("{s}.{t}")));
    goal.exclude.retain(|e| {
        !tables
            .iter()
            .any(|(s, t)| crate::names::names_table(e, s, t))
    });
    if !goal.schemas.is_empty() {
        for (s, _) in tables {
            if !goal.schemas.contains(s) {
                goal.schemas.push(s.clone());
            }
        }
    }
    goal
}

/// The plan for the catalog as it is now.
async fn plan_now(conn: &mut sqlx::PgConnection, cfg: &Config) -> Result<Plan> {
    let cat = load::read(conn, cfg).await?;
    plan::plan(&cat, cfg).map_err(Error::Plan)
}

fn own_indexes(steps: &[StoredStep]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match &s.step.action {
            Action::ConcurrentIndex { index, .. } => Some(index.clone()),
            Action::Sql { sql, .. } => plan::on_only_index(sql),
            _ => None,
        })
        .collect()
}

/// `backfill plan`: the recorded plan while a run is under way (the next run continues it),
/// else the plan for the catalog as it is.
pub async fn show_plan(target: &Target, cfg: &Config) -> Result<PlanReport> {
    let mut conn = target.connect().await?;
    let stored = exec::load_steps(&mut conn).await?;
    if stored.iter().any(|s| !s.done) {
        return Ok(PlanReport {
            in_progress: true,
            realm_column: None,
            realm_type: None,
            tables: None,
            steps: StepReport::all(&stored),
            prepared_statements: prepared::report(&mut conn, &stored).await?,
        });
    }
    let p = plan_now(&mut conn, cfg).await?;
    let fresh = StoredStep::fresh(&p.steps);
    Ok(PlanReport {
        in_progress: false,
        steps: StepReport::all(&fresh),
        prepared_statements: prepared::report(&mut conn, &fresh).await?,
        realm_column: Some(p.realm_column),
        realm_type: Some(p.realm_type),
        tables: Some(p.tables),
    })
}

/// `backfill run`: plan (or resume the recorded plan), refuse when preflight says the run would
/// stall traffic, run every step, then verify the converted tables against the goal rules.
/// Interrupted by `cancel` after the current step or batch, it returns an error saying so.
pub async fn run(
    target: &Target,
    cfg: &Config,
    opts: &RunOptions,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<RunReport> {
    let mut conn = target.connect().await?;
    let mut watch = target.connect().await?;
    let started = Instant::now();
    exec::lock_runner(&mut conn).await?;
    exec::ensure_ledger(&mut conn).await?;

    let stored = exec::load_steps(&mut conn).await?;
    let resumed = stored.iter().any(|s| !s.done);
    let mut prepared_report = None;
    let steps = if resumed {
        sink.emit(Event::line(format!(
            "realmguard: resuming the recorded backfill: {} of {} steps done",
            stored.iter().filter(|s| s.done).count(),
            stored.len()
        )));
        stored
    } else {
        let p = plan_now(&mut conn, cfg).await?;
        if p.steps.is_empty() {
            return Ok(RunReport::NothingToDo(NothingToDo {
                ok: true,
                steps_total: 0,
                steps_run: 0,
                problems: Vec::new(),
            }));
        }
        // Refuse before recording anything, so a refused run leaves no half-plan behind.
        let steps = StoredStep::fresh(&p.steps);
        prepared_report = refuse_unless_clear(&mut conn, &steps, opts, sink).await?;
        exec::store_plan(&mut conn, &p).await?
    };
    if resumed {
        prepared_report = refuse_unless_clear(&mut conn, &steps, opts, sink).await?;
    }

    let mut tally = Tally {
        resumed,
        ..Default::default()
    };
    {
        let mut ex =
            exec::Executor::new(&mut conn, &mut watch, opts.clone(), cancel.clone(), sink).await?;
        ex.run(&steps, &mut tally).await?;
    }
    tally.seconds = started.elapsed().as_secs_f64();
    if tally.interrupted {
        return Err(Error::Interrupted {
            done: exec::load_steps(&mut conn)
                .await?
                .iter()
                .filter(|s| s.done)
                .count(),
            total: tally.steps_total,
        });
    }

    // The end state must satisfy verify on the converted tables: errors only (warnings such as
    // fk-unindexed are the schema owner's call), with the rules that state the backfill's goal
    // forced to error and the converted tables counted as realm-scoped, so a run cannot end "ok"
    // short of its goal because the config turned a rule off.
    let tables = tables_of(&steps);
    let verified = crate::verify::verify_tables(&mut conn, &goal_config(cfg, &tables), &tables)
        .await
        .map_err(Error::Verify)?;
    let mut problems: Vec<String> = tables
        .iter()
        .filter(|t| !verified.checked.contains(t))
        .map(|(s, t)| format!("{s}.{t}: table is gone"))
        .collect();
    problems.extend(
        verified
            .errors()
            .filter(|v| tables.iter().any(|(s, t)| *s == v.schema && *t == v.table))
            .map(|v| format!("{}.{}: {} ({})", v.schema, v.table, v.message, v.rule)),
    );
    let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut conn)
        .await;

    Ok(RunReport::Ran(RunSummary {
        ok: problems.is_empty(),
        resumed: tally.resumed,
        steps_total: tally.steps_total,
        steps_run: tally.steps_run,
        seconds: tally.seconds,
        tables: tables.iter().map(|(s, t)| format!("{s}.{t}")).collect(),
        fills: exec::load_progress(&mut conn).await?,
        problems,
        prepared_statements: prepared_report,
    }))
}

/// Preflight: refuse (an error) when the run would stall traffic or silently do nothing, or,
/// with `--refuse-prepared-star`, break prepared `SELECT *`; else say what the column steps do
/// to prepared `SELECT *` (the returned report) before the first step runs.
async fn refuse_unless_clear(
    conn: &mut sqlx::PgConnection,
    steps: &[StoredStep],
    opts: &RunOptions,
    sink: &dyn EventSink,
) -> Result<Option<prepared::PreparedReport>> {
    let mut refusals = preflight::check(
        conn,
        &relations_of(steps),
        &own_indexes(steps),
        opts.max_transaction_age,
        opts.max_replication_lag.is_some(),
    )
    .await?;
    let prepared_report = prepared::report(conn, steps).await?;
    if let Some(r) = &prepared_report {
        match opts
            .refuse_prepared_star
            .then(|| prepared::refusal(r))
            .flatten()
        {
            Some(refusal) => refusals.push(refusal),
            None => {
                for line in super::render::prepared_lines(r) {
                    sink.emit(Event::line(format!("realmguard: {line}")));
                }
            }
        }
    }
    if !refusals.is_empty() {
        return Err(Error::Refused { refusals });
    }
    if opts.max_replication_lag.is_some() && replicas::count(conn).await? == 0 {
        // Not a refusal: the standbys may be down for maintenance; the check still applies to
        // any that connects during the run.
        sink.emit(Event::line("realmguard: note: no standby is connected now; --max-replication-lag applies to any that connects during the run"));
    }
    Ok(prepared_report)
}

/// `backfill finish`: drop the fill triggers a backfill installed, once the application writes
/// the realm column itself (from then on a row written without it breaks NOT NULL, loudly).
/// The drops are steps like a run's, appended to the recorded ones (the run's history stays for
/// `status`): each its own transaction under `lock_timeout`, retried, resumed after a kill.
/// Refused while a backfill is under way, whose fill needs the triggers.
pub async fn finish(
    target: &Target,
    opts: &FinishOptions,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<FinishReport> {
    let mut conn = target.connect().await?;
    if !opts.dry_run {
        exec::lock_runner(&mut conn).await?;
    }
    let started = Instant::now();
    let stored = exec::load_steps(&mut conn).await?;
    let pending: Vec<StoredStep> = stored.iter().filter(|s| !s.done).cloned().collect();
    if pending.iter().any(|s| s.step.phase != Phase::Finish) {
        return Err(Error::UnderWay {
            done: stored.len() - pending.len(),
            total: stored.len(),
        });
    }
    let resumed = !pending.is_empty();
    let steps = if resumed {
        pending
    } else {
        let mut found = load::triggers(&mut conn).await?;
        found.retain(|t| t.fills_realm);
        StoredStep::fresh(&plan::finish_steps(&found))
    };
    if opts.dry_run {
        return Ok(FinishReport::Preview(FinishPreview {
            dry_run: true,
            steps: StepReport::all(&steps),
        }));
    }
    let mut tally = Tally {
        resumed,
        ..Default::default()
    };
    if !steps.is_empty() {
        // The executor gets the whole record, done steps included, so its progress lines
        // number the drops as `status` does ("[44/47]").
        let mut all = stored;
        if resumed {
            sink.emit(Event::line("realmguard: resuming the recorded finish"));
        } else {
            let plain: Vec<plan::Step> = steps.iter().map(|s| s.step.clone()).collect();
            exec::ensure_ledger(&mut conn).await?;
            all.extend(exec::append_steps(&mut conn, &plain).await?);
        }
        let run_opts = exec::Options {
            batch: Duration::from_millis(100),
            lock_timeout: opts.lock_timeout,
            lock_retries: opts.lock_retries,
            max_transaction_age: Duration::from_secs(60),
            workers: 0,
            max_replication_lag: None,
            refuse_prepared_star: false,
            pause: Duration::ZERO,
        };
        let mut watch = target.connect().await?;
        exec::Executor::new(&mut conn, &mut watch, run_opts, cancel.clone(), sink)
            .await?
            .run(&all, &mut tally)
            .await?;
        if tally.interrupted {
            return Err(Error::FinishInterrupted);
        }
    }
    Ok(FinishReport::Done(FinishSummary {
        ok: true,
        resumed,
        steps_run: tally.steps_run,
        seconds: started.elapsed().as_secs_f64(),
        dropped: steps
            .iter()
            .map(|s| format!("{}: {}", s.step.display_table(), s.step.title))
            .collect(),
    }))
}

/// `backfill status`: the recorded plan's progress per table.
pub async fn status(target: &Target) -> Result<StatusReport> {
    let mut conn = target.connect().await?;
    let steps = exec::load_steps(&mut conn).await?;
    let progress = exec::load_progress(&mut conn).await?;
    Ok(StatusReport::of(&steps, &progress))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_check_holds_the_goal_rules_at_error_whatever_the_config() {
        let cfg = Config::parse(
            "realm_scoped = [\"groups\"]\nschemas = [\"public\"]\nexclude = [\"memberships\", \"audit\"]\n[rules]\nfk-not-cascade = \"off\"\ninvalid-index = \"warning\"\n",
        )
        .unwrap();
        let goal = goal_config(&cfg, &[("app".into(), "memberships".into())]);
        let goals: Vec<&str> = Rule::backfill_goals().map(Rule::id).collect();
        assert_eq!(
            goals,
            [
                "realm-column-missing",
                "realm-column-nullable",
                "composite-primary-key",
                "unique-without-realm",
                "realm-fk-missing",
                "fk-missing-realm",
                "fk-not-cascade",
                "constraint-not-validated",
                "invalid-index",
            ]
        );
        for rule in goals {
            assert_eq!(goal.severity(rule), Severity::Error, "{rule}");
        }
        // Rules outside the goal keep the config's say; converted tables count as realm-scoped.
        assert_eq!(goal.severity("fk-unindexed"), Severity::Warning);
        assert_eq!(goal.realm_scoped, ["groups", "app.memberships"]);
        // A converted table is checked even if the config now leaves it out.
        assert_eq!(goal.exclude, ["audit"]);
        assert_eq!(goal.schemas, ["public", "app"]);
    }
}
