//! `realmguard backfill plan/run/status/finish`: arguments into the domain's options, the
//! domain call, the report rendered on stdout, the exit code; and Ctrl-C.

use super::cli::{BackfillArgs, BackfillFinishArgs, BackfillRunArgs, GlobalOpts};
use super::progress::Stderr;
use super::Outcome;
use crate::backfill::{self, render, FinishOptions, RunOptions};
use crate::events::Cancel;
use std::time::Duration;

pub(super) async fn cmd_plan(g: &GlobalOpts, _a: &BackfillArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("backfill plan")?;
    let cfg = g.config()?;
    let target = g.database().await?;
    let report = backfill::show_plan(&target, &cfg).await?;
    render::render_plan(&report, g.format, &mut std::io::stdout().lock())?;
    Ok(Outcome::Clean)
}

pub(super) async fn cmd_run(g: &GlobalOpts, a: &BackfillRunArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("backfill run")?;
    let cfg = g.config()?;
    let target = g.database().await?;
    let opts = RunOptions {
        batch: a.batch_ms,
        lock_timeout: a.lock_timeout,
        lock_retries: a.lock_retries,
        max_transaction_age: a.max_transaction_age,
        workers: a.workers,
        max_replication_lag: a.max_replication_lag,
        refuse_prepared_star: a.refuse_prepared_star,
        // Test and demo hook: sleep after each step and batch so a kill can land in a chosen
        // phase.
        pause: std::env::var("REALMGUARD_BACKFILL_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or_default(),
    };
    let cancel = cancel_on_interrupt();
    let report = backfill::run(&target, &cfg, &opts, &Stderr::default(), &cancel).await?;
    render::render_run(&report, g.format, &mut std::io::stdout().lock())?;
    Ok(Outcome::from_findings(!report.ok()))
}

pub(super) async fn cmd_finish(g: &GlobalOpts, a: &BackfillFinishArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("backfill finish")?;
    let target = g.database().await?;
    let opts = FinishOptions {
        lock_timeout: a.lock_timeout,
        lock_retries: a.lock_retries,
        dry_run: a.dry_run,
    };
    let cancel = if a.dry_run {
        Cancel::default()
    } else {
        cancel_on_interrupt()
    };
    let report = backfill::finish(&target, &opts, &Stderr::default(), &cancel).await?;
    render::render_finish(&report, g.format, &mut std::io::stdout().lock())?;
    Ok(Outcome::Clean)
}

pub(super) async fn cmd_status(g: &GlobalOpts, _a: &BackfillArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("backfill status")?;
    let target = g.database().await?;
    let report = backfill::status(&target).await?;
    render::render_status(&report, g.format, &mut std::io::stdout().lock())?;
    Ok(Outcome::Clean)
}

/// Ctrl-C (or SIGTERM) asks the run to finish the current step or batch and stop cleanly; a
/// second one exits at once with status 2 (every committed step and batch is still recorded).
fn cancel_on_interrupt() -> Cancel {
    let cancel = Cancel::default();
    let c = cancel.clone();
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
            if c.is_cancelled() {
                eprintln!(
                    "error: interrupted twice; stopping now (`realmguard backfill run` resumes)"
                );
                std::process::exit(2);
            }
            eprintln!("realmguard: interrupted; finishing the current step (interrupt again to stop at once)");
            c.cancel();
        }
    });
    cancel
}
