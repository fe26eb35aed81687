//! `realmguard backfill plan/run/status/finish`.
//!
//! Still holds orchestration that belongs in the domain module; see `docs/architecture.md`.

use super::cli::{BackfillArgs, BackfillFinishArgs, BackfillRunArgs, GlobalOpts};
use super::Outcome;
use crate::backfill::{exec, model, plan, preflight, replicas};
use crate::config::Config;
use crate::output::{self, Format};
use crate::rules::Severity;
use anyhow::{bail, Context};
use exec::{Progress, StoredStep};
use plan::{Action, Phase, Plan};
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tables a list of steps converts (the realms table's own step is not a conversion).
fn tables_of(steps: &[StoredStep]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for s in steps {
        let id = (s.step.schema.clone(), s.step.table.clone());
        if s.step.phase != Phase::Realms && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// The verify rules whose passing is the backfill's goal (the composite shape, cascading and
/// validated keys, valid indexes).
const GOAL_RULES: [&str; 9] = [
    "realm-column-missing",
    "realm-column-nullable",
    "composite-primary-key",
    "unique-without-realm",
    "realm-fk-missing",
    "fk-missing-realm",
    "fk-not-cascade",
    "constraint-not-validated",
    "invalid-index",
];

/// The config the end check verifies with: the goal rules at error whatever the config says, and
/// every converted table checked (even if `exclude` or `schemas` changed since the plan was
/// recorded) and realm-scoped (even if the column went missing).
fn goal_config(cfg: &Config, tables: &[(String, String)]) -> Config {
    let mut goal = cfg.clone();
    for rule in GOAL_RULES {
        goal.rules.insert(rule.to_string(), Severity::Error);
    }
    goal.realm_scoped
        .extend(tables.iter().map(|(s, t)| format!("{s}.{t}")));
    goal.exclude
        .retain(|e| !tables.iter().any(|(s, t)| plan::names_table(e, s, t)));
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
async fn plan_now(conn: &mut sqlx::PgConnection, cfg: &Config) -> anyhow::Result<Plan> {
    let cat = model::read(
        conn,
        &cfg.realms_table,
        &cfg.backfill.default_realm,
        &cfg.realm_column,
    )
    .await?;
    plan::plan(&cat, cfg).context("cannot plan the backfill")
}

fn own_indexes(steps: &[StoredStep]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match &s.step.action {
            Action::ConcurrentIndex { index, .. } => Some(index.clone()),
            _ => None,
        })
        .collect()
}

pub(super) async fn cmd_plan(g: &GlobalOpts, _a: &BackfillArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("backfill plan")?;
    let cfg = g.config()?;
    let target = g.database().await?;
    let mut conn = target.connect().await?;
    let stored = exec::load_steps(&mut conn).await?;
    let mut out = std::io::stdout().lock();
    if stored.iter().any(|s| !s.done) {
        // A run is under way: its recorded plan is what the next run continues.
        render_steps(&mut out, g.format, None, &stored, true)?;
        return Ok(Outcome::Clean);
    }
    let p = plan_now(&mut conn, &cfg).await?;
    let steps = StoredStep::fresh(&p.steps);
    render_steps(&mut out, g.format, Some(&p), &steps, false)?;
    Ok(Outcome::Clean)
}

fn render_steps(
    out: &mut dyn Write,
    format: Format,
    p: Option<&Plan>,
    steps: &[StoredStep],
    in_progress: bool,
) -> anyhow::Result<()> {
    if format == Format::Json {
        let doc = json!({
            "in_progress": in_progress,
            "realm_column": p.map(|p| p.realm_column.clone()),
            "realm_type": p.map(|p| p.realm_type.clone()),
            "tables": p.map(|p| serde_json::to_value(&p.tables).unwrap_or_default()),
            "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
        });
        output::write_json(out, &doc)?;
        return Ok(());
    }
    if steps.is_empty() {
        writeln!(
            out,
            "backfill plan: nothing to do; every realm table already has the realm shape"
        )?;
        return Ok(());
    }
    match p {
        Some(p) => {
            writeln!(
                out,
                "backfill plan: {} tables, {} steps; realm column {} {}",
                p.tables.len(),
                steps.len(),
                p.realm_column,
                p.realm_type
            )?;
            let rows: Vec<Vec<String>> = p
                .tables
                .iter()
                .map(|t| {
                    vec![
                        format!("{}.{}", t.schema, t.table),
                        t.key.clone(),
                        match &t.derive {
                            plan::Derive::Default { realm } => format!("default realm '{realm}'"),
                            plan::Derive::Parent {
                                constraint,
                                schema,
                                table,
                            } => format!("{schema}.{table} through {constraint}"),
                            plan::Derive::Done => "already filled".into(),
                        },
                        match (&t.derive, t.rewrite) {
                            (plan::Derive::Done, _) => "-",
                            (_, true) => "keyset batches",
                            (_, false) => "catalog default, no rewrite",
                        }
                        .into(),
                    ]
                })
                .collect();
            writeln!(
                out,
                "{}",
                output::table(&["table", "key", "realm from", "old rows"], &rows)
            )?;
        }
        None => writeln!(
            out,
            "backfill in progress: {} of {} steps done; `realmguard backfill run` continues it",
            steps.iter().filter(|s| s.done).count(),
            steps.len()
        )?,
    }
    for s in steps {
        write_step(out, s)?;
    }
    Ok(())
}

fn step_json(s: &StoredStep) -> serde_json::Value {
    json!({
        "n": s.seq,
        "schema": s.step.schema,
        "table": s.step.table,
        "phase": s.step.phase,
        "title": s.step.title,
        "lock": s.step.lock.name(),
        "lock_note": s.step.lock_note,
        "kind": match &s.step.action {
            Action::Sql { .. } => "transaction",
            Action::ConcurrentIndex { .. } => "concurrent-index",
            Action::DropIndexConcurrently { .. } => "concurrent-drop",
            Action::Fill { .. } => "fill",
        },
        "sql": s.step.sql(),
        "done": s.done,
    })
}

fn write_step(out: &mut dyn Write, s: &StoredStep) -> anyhow::Result<()> {
    writeln!(
        out,
        "\n{:>3}. {}{} · {} · {}\n     lock: {}",
        s.seq,
        if s.done { "[done] " } else { "" },
        s.step.display_table(),
        s.step.phase,
        s.step.title,
        s.step.lock_text()
    )?;
    for line in s.step.sql().lines() {
        writeln!(out, "     {line}")?;
    }
    Ok(())
}

pub(super) async fn cmd_run(g: &GlobalOpts, a: &BackfillRunArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("backfill run")?;
    let cfg = g.config()?;
    let target = g.database().await?;
    let mut conn = target.connect().await?;
    let mut watch = target.connect().await?;
    let started = Instant::now();
    exec::lock_runner(&mut conn).await?;
    exec::ensure_ledger(&mut conn).await?;

    let stored = exec::load_steps(&mut conn).await?;
    let resumed = stored.iter().any(|s| !s.done);
    let steps = if resumed {
        eprintln!(
            "realmguard: resuming the recorded backfill: {} of {} steps done",
            stored.iter().filter(|s| s.done).count(),
            stored.len()
        );
        stored
    } else {
        let p = plan_now(&mut conn, &cfg).await?;
        if p.steps.is_empty() {
            let mut out = std::io::stdout().lock();
            if g.format == Format::Json {
                output::write_json(
                    &mut out,
                    &json!({"ok": true, "steps_total": 0, "steps_run": 0, "problems": []}),
                )?;
            } else {
                writeln!(
                    out,
                    "backfill: nothing to do; every realm table already has the realm shape"
                )?;
            }
            return Ok(Outcome::Clean);
        }
        // Refuse before recording anything, so a refused run leaves no half-plan behind.
        let steps = StoredStep::fresh(&p.steps);
        refuse_unless_clear(&mut conn, &steps, a).await?;
        exec::store_plan(&mut conn, &p).await?
    };
    if resumed {
        refuse_unless_clear(&mut conn, &steps, a).await?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_handler(stop.clone());
    let pause = std::env::var("REALMGUARD_BACKFILL_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_default();
    let opts = exec::Options {
        batch: a.batch_ms,
        lock_timeout: a.lock_timeout,
        lock_retries: a.lock_retries,
        max_transaction_age: a.max_transaction_age,
        workers: a.workers,
        max_replication_lag: a.max_replication_lag,
        pause,
    };
    let mut report = exec::RunReport {
        resumed,
        ..Default::default()
    };
    {
        let mut ex = exec::Executor::new(&mut conn, &mut watch, opts, stop.clone()).await?;
        ex.run(&steps, &mut report).await?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    if report.interrupted {
        bail!(
            "interrupted after {} of {} steps; every finished step and batch is recorded: `realmguard backfill run` resumes",
            exec::load_steps(&mut conn).await?.iter().filter(|s| s.done).count(),
            report.steps_total
        );
    }

    // The end state must satisfy verify on the converted tables: errors only (warnings such as
    // fk-unindexed are the schema owner's call), with the rules that state the backfill's goal
    // forced to error and the converted tables counted as realm-scoped, so a run cannot end "ok"
    // short of its goal because the config turned a rule off.
    let tables = tables_of(&steps);
    let verified = crate::verify::verify_tables(&mut conn, &goal_config(&cfg, &tables), &tables)
        .await
        .context("cannot verify the converted tables")?;
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

    let fills = exec::load_progress(&mut conn).await?;
    let mut out = std::io::stdout().lock();
    if g.format == Format::Json {
        output::write_json(
            &mut out,
            &json!({
                "ok": problems.is_empty(),
                "resumed": report.resumed,
                "steps_total": report.steps_total,
                "steps_run": report.steps_run,
                "seconds": report.seconds,
                "tables": tables.iter().map(|(s, t)| format!("{s}.{t}")).collect::<Vec<_>>(),
                "fills": fills,
                "problems": problems,
            }),
        )?;
    } else {
        writeln!(
            out,
            "backfill: {} tables converted, {} steps run{} in {:.1}s",
            tables.len(),
            report.steps_run,
            if report.resumed { " (resumed)" } else { "" },
            report.seconds
        )?;
        for f in &fills {
            let secs = f.fill_ms as f64 / 1000.0;
            writeln!(
                out,
                "  {}.{}: {} rows filled in {} batches, {:.2}s ({:.0} rows/s)",
                f.schema,
                f.table,
                f.rows_done,
                f.batches,
                secs,
                f.rows_done as f64 / secs.max(1e-3)
            )?;
        }
        for p in &problems {
            writeln!(out, "  problem: {p}")?;
        }
    }
    Ok(Outcome::from_findings(!problems.is_empty()))
}

async fn refuse_unless_clear(
    conn: &mut sqlx::PgConnection,
    steps: &[StoredStep],
    a: &BackfillRunArgs,
) -> anyhow::Result<()> {
    let refusals = preflight::check(
        conn,
        &tables_of(steps),
        &own_indexes(steps),
        a.max_transaction_age,
        a.max_replication_lag.is_some(),
    )
    .await?;
    if !refusals.is_empty() {
        bail!("preflight refused to start: {}", refusals.join("; "));
    }
    if a.max_replication_lag.is_some() && replicas::count(conn).await? == 0 {
        // Not a refusal: the standbys may be down for maintenance; the check still applies to
        // any that connects during the run.
        eprintln!("realmguard: note: no standby is connected now; --max-replication-lag applies to any that connects during the run");
    }
    Ok(())
}

/// Ctrl-C (or SIGTERM) finishes the current step or batch and stops cleanly; a second one exits
/// at once (every committed batch is still recorded).
fn spawn_signal_handler(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => { if r.is_err() { return; } }
                _ = async {
                    match term.as_mut() {
                        Some(t) => { t.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!(
                    "error: interrupted twice; stopping now (`realmguard backfill run` resumes)"
                );
                std::process::exit(2);
            }
            eprintln!("realmguard: interrupted; finishing the current step (interrupt again to stop at once)");
        }
    });
}

const NOTHING_TO_FINISH: &str = "backfill finish: no fill triggers left; nothing to do";

/// `backfill finish`: drop the fill triggers a backfill installed, once the application writes
/// the realm column itself (from then on a row written without it breaks NOT NULL, loudly).
/// The drops are steps like a run's, appended to the recorded ones (the run's history stays for
/// `status`): each its own transaction under `--lock-timeout`, retried, resumed after a kill.
/// Refused while a backfill is under way, whose fill needs the triggers.
pub(super) async fn cmd_finish(g: &GlobalOpts, a: &BackfillFinishArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("backfill finish")?;
    let target = g.database().await?;
    let mut conn = target.connect().await?;
    if !a.dry_run {
        exec::lock_runner(&mut conn).await?;
    }
    let started = Instant::now();
    let stored = exec::load_steps(&mut conn).await?;
    let pending: Vec<StoredStep> = stored.iter().filter(|s| !s.done).cloned().collect();
    if pending.iter().any(|s| s.step.phase != Phase::Finish) {
        bail!(
            "a backfill is under way ({} of {} steps done) and its fill needs the triggers: complete it with `realmguard backfill run` first",
            stored.len() - pending.len(),
            stored.len()
        );
    }
    let resumed = !pending.is_empty();
    let steps = if resumed {
        pending
    } else {
        let mut found = model::triggers(&mut conn).await?;
        found.retain(|t| t.fills_realm);
        StoredStep::fresh(&plan::finish_steps(&found))
    };
    if a.dry_run {
        return finish_preview(g.format, &steps);
    }
    let mut report = exec::RunReport {
        resumed,
        ..Default::default()
    };
    if !steps.is_empty() {
        // The executor gets the whole record, done steps included, so its progress lines
        // number the drops as `status` does ("[44/47]").
        let mut all = stored;
        if resumed {
            eprintln!("realmguard: resuming the recorded finish");
        } else {
            let plain: Vec<plan::Step> = steps.iter().map(|s| s.step.clone()).collect();
            exec::ensure_ledger(&mut conn).await?;
            all.extend(exec::append_steps(&mut conn, &plain).await?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        spawn_signal_handler(stop.clone());
        let opts = exec::Options {
            batch: Duration::from_millis(100),
            lock_timeout: a.lock_timeout,
            lock_retries: a.lock_retries,
            max_transaction_age: Duration::from_secs(60),
            workers: 0,
            max_replication_lag: None,
            pause: Duration::ZERO,
        };
        let mut watch = target.connect().await?;
        exec::Executor::new(&mut conn, &mut watch, opts, stop)
            .await?
            .run(&all, &mut report)
            .await?;
        if report.interrupted {
            bail!("interrupted; every dropped trigger is recorded: `realmguard backfill finish` resumes");
        }
    }
    let dropped: Vec<String> = steps
        .iter()
        .map(|s| format!("{}: {}", s.step.display_table(), s.step.title))
        .collect();
    let secs = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    if g.format == Format::Json {
        output::write_json(
            &mut out,
            &json!({
                "ok": true,
                "resumed": resumed,
                "steps_run": report.steps_run,
                "seconds": secs,
                "dropped": dropped,
            }),
        )?;
    } else if dropped.is_empty() {
        writeln!(out, "{NOTHING_TO_FINISH}")?;
    } else {
        writeln!(
            out,
            "backfill finish: {} steps run{} in {secs:.1}s; a row written without the realm column is now refused",
            report.steps_run,
            if resumed { " (resumed)" } else { "" },
        )?;
        for d in &dropped {
            writeln!(out, "  {d}")?;
        }
    }
    Ok(Outcome::Clean)
}

/// `backfill finish --dry-run`: the steps a finish would run, nothing done.
fn finish_preview(format: Format, steps: &[StoredStep]) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        output::write_json(
            &mut out,
            &json!({"dry_run": true, "steps": steps.iter().map(step_json).collect::<Vec<_>>()}),
        )?;
    } else if steps.is_empty() {
        writeln!(out, "{NOTHING_TO_FINISH}")?;
    } else {
        writeln!(
            out,
            "backfill finish: {} steps (dry run); afterwards a row written without the realm column is refused",
            steps.len()
        )?;
        for s in steps {
            write_step(&mut out, s)?;
        }
    }
    Ok(Outcome::Clean)
}

pub(super) async fn cmd_status(g: &GlobalOpts, _a: &BackfillArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("backfill status")?;
    let target = g.database().await?;
    let mut conn = target.connect().await?;
    let steps = exec::load_steps(&mut conn).await?;
    let progress = exec::load_progress(&mut conn).await?;
    let mut out = std::io::stdout().lock();
    let rows = status_rows(&steps, &progress);
    if g.format == Format::Json {
        output::write_json(
            &mut out,
            &json!({
                "recorded": !steps.is_empty(),
                "steps_total": steps.len(),
                "steps_done": steps.iter().filter(|s| s.done).count(),
                "tables": rows.iter().map(|r| json!({
                    "schema": r.schema, "table": r.table, "phase": r.phase,
                    "steps_done": r.done, "steps_total": r.total,
                    "rows_filled": r.fill.as_ref().map(|f| f.rows_done),
                    "fill_fraction": r.fill.as_ref().map(|f| f.fraction()),
                })).collect::<Vec<_>>(),
            }),
        )?;
        return Ok(Outcome::Clean);
    }
    if steps.is_empty() {
        writeln!(
            out,
            "no backfill recorded in this database; `realmguard backfill plan` shows what one would do"
        )?;
        return Ok(Outcome::Clean);
    }
    let done = steps.iter().filter(|s| s.done).count();
    writeln!(
        out,
        "backfill: {done} of {} steps done{}",
        steps.len(),
        if done == steps.len() {
            " (finished)"
        } else {
            "; `realmguard backfill run` continues"
        }
    )?;
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format!("{}.{}", r.schema, r.table),
                r.phase.clone(),
                format!("{}/{}", r.done, r.total),
                match &r.fill {
                    Some(f) => format!(
                        "{} rows, {:.0}%{}",
                        f.rows_done,
                        f.fraction() * 100.0,
                        if f.finished { "" } else { " (filling)" }
                    ),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    writeln!(
        out,
        "{}",
        output::table(&["table", "phase", "steps", "fill"], &table_rows)
    )?;
    Ok(Outcome::Clean)
}

struct StatusRow {
    schema: String,
    table: String,
    phase: String,
    done: usize,
    total: usize,
    fill: Option<Progress>,
}

fn status_rows(steps: &[StoredStep], progress: &[Progress]) -> Vec<StatusRow> {
    let mut rows: Vec<StatusRow> = Vec::new();
    for s in steps {
        let i = match rows
            .iter()
            .position(|r| r.schema == s.step.schema && r.table == s.step.table)
        {
            Some(i) => i,
            None => {
                rows.push(StatusRow {
                    schema: s.step.schema.clone(),
                    table: s.step.table.clone(),
                    phase: "done".into(),
                    done: 0,
                    total: 0,
                    fill: progress
                        .iter()
                        .find(|p| p.schema == s.step.schema && p.table == s.step.table)
                        .cloned(),
                });
                rows.len() - 1
            }
        };
        let r = &mut rows[i];
        r.total += 1;
        if s.done {
            r.done += 1;
        } else if r.phase == "done" {
            r.phase = s.step.phase.to_string();
        }
    }
    rows
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
        for rule in GOAL_RULES {
            assert!(crate::rules::is_known(rule), "{rule}");
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
