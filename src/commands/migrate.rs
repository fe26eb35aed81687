//! `realmguard migrate`, `status` and `baseline`.

use super::cli::{BaselineArgs, GlobalOpts, MigrateArgs, StatusArgs};
use super::progress::Stderr;
use super::Outcome;
use crate::migrate::{self, plan, render, source, MigrateOptions};
use std::io::Write;

/// The validated options of one target's migration (fleet applies the same to every target).
pub(super) fn options(a: &MigrateArgs) -> MigrateOptions {
    MigrateOptions {
        plan: plan::PlanOptions {
            to: a.to,
            allow_modified: a.allow_modified,
            allow_missing: a.allow_missing,
            allow_out_of_order: a.allow_out_of_order,
        },
        dry_run: a.dry_run,
        lock_wait: a.lock_wait,
        lock_timeout: a.lock_timeout,
        lock_retries: a.lock_retries,
        statement_timeout: a.statement_timeout,
        guard: !a.no_verify,
        allow_violations: a.allow_violations,
        cancel: crate::events::Cancel::default(),
    }
}

pub(super) async fn migrate(g: &GlobalOpts, a: &MigrateArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("migrate")?;
    let cfg = g.config()?;
    // Read the files before connecting: a bad file name is reported without touching anything.
    let files = source::load_dir(&a.source.dir)?;
    let target = g.database().await?;
    let (report, result) =
        migrate::migrate_reporting(&target, &cfg, &files, &options(a), &Stderr::default()).await;
    let mut out = std::io::stdout().lock();
    // What was applied before a failure is reported too: those migrations are committed.
    if result.is_ok() || !report.applied.is_empty() {
        render::render_migrate(&report, g.format, &target.display, &mut out)?;
        out.flush()?;
    }
    result?;
    Ok(Outcome::from_findings(report.rejected.is_some()))
}

pub(super) async fn status(g: &GlobalOpts, a: &StatusArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("status")?;
    let files = source::load_dir(&a.source.dir)?;
    let target = g.database().await?;
    let entries = migrate::status(&target, &files).await?;
    let mut out = std::io::stdout().lock();
    render::render_status(&entries, g.format, &a.source.dir, &mut out)?;
    out.flush()?;
    let dirty = entries.iter().any(|e| e.state.needs_attention());
    Ok(Outcome::from_findings(a.exit_code && dirty))
}

pub(super) async fn baseline(g: &GlobalOpts, a: &BaselineArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("baseline")?;
    let files = source::load_dir(&a.source.dir)?;
    let target = g.database().await?;
    let marked = migrate::baseline(&target, &files, a.version, &Stderr::default()).await?;
    let mut out = std::io::stdout().lock();
    render::render_baseline(&marked, a.version, g.format, &mut out)?;
    out.flush()?;
    Ok(Outcome::Clean)
}
