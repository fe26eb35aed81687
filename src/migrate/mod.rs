//! `realmguard migrate`, `status` and `baseline`: versioned SQL files applied exactly once, in
//! order, atomically, under a lock two runners cannot both hold.
//!
//! `source` reads the files, `plan` compares them with the ledger (pure), `ledger` owns the
//! `realmguard.migrations` table, `runner` applies, `guard` keeps each migration realm-safe.

pub mod guard;
pub mod ledger;
pub mod plan;
pub mod runner;
pub mod source;

pub use runner::{migrate_reporting, MigrateOptions, MigrateReport};

use crate::cli::{BaselineArgs, GlobalOpts, MigrateArgs, StatusArgs};
use crate::output::{self, Format};
use crate::Outcome;
use anyhow::Context;
use std::io::Write;

impl MigrateOptions {
    pub fn from_args(a: &MigrateArgs) -> Self {
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
            progress: true,
        }
    }
}

pub async fn cmd_migrate(g: &GlobalOpts, a: &MigrateArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("migrate")?;
    let cfg = g.config()?;
    // Read the files before connecting: a bad file name is reported without touching anything.
    let files = source::load_dir(&a.source.dir)?;
    let target = g.database().await?;
    let opts = MigrateOptions::from_args(a);
    let (report, result) = migrate_reporting(&target, &cfg, &files, &opts).await;
    let mut out = std::io::stdout().lock();
    // What was applied before a failure is reported too: those migrations are committed.
    if result.is_ok() || !report.applied.is_empty() {
        render_migrate(&report, g.format, &target.display, &mut out)?;
    }
    result?;
    Ok(Outcome::from_findings(report.rejected.is_some()))
}

fn render_migrate(
    r: &MigrateReport,
    format: Format,
    db: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if format == Format::Json {
        output::write_json(out, r)?;
        return Ok(());
    }
    if r.dry_run {
        if r.planned.is_empty() {
            writeln!(
                out,
                "Dry run: nothing to apply ({} migrations already applied).",
                r.already_applied
            )?;
        } else {
            writeln!(
                out,
                "Dry run: {} migration(s) would be applied, in this order. Nothing was changed.",
                r.planned.len()
            )?;
            for p in &r.planned {
                let mode = if p.no_transaction {
                    "no transaction, statement by statement"
                } else {
                    "one transaction"
                };
                writeln!(
                    out,
                    "\n-- {} {} ({}; {mode})",
                    p.version,
                    p.description,
                    p.file.display()
                )?;
                writeln!(out, "{}", p.sql.trim_end())?;
            }
        }
        return Ok(());
    }
    if r.adopted_from_sqlx > 0 {
        writeln!(
            out,
            "Adopted {} migration(s) from sqlx-cli's _sqlx_migrations.",
            r.adopted_from_sqlx
        )?;
    }
    if r.applied.is_empty() && r.rejected.is_none() {
        writeln!(
            out,
            "Nothing to apply: the database is up to date ({} migrations applied).",
            r.already_applied
        )?;
    } else if !r.applied.is_empty() {
        let rows: Vec<Vec<String>> = r
            .applied
            .iter()
            .map(|m| {
                vec![
                    m.version.to_string(),
                    m.description.clone(),
                    match (m.no_transaction, m.resumed_after) {
                        (true, Some(k)) => format!("{} (resumed after {k})", m.statements),
                        _ => m.statements.to_string(),
                    },
                    if m.no_transaction {
                        "no".into()
                    } else {
                        "yes".into()
                    },
                    format!("{} ms", m.duration_ms),
                    m.attempts.to_string(),
                ]
            })
            .collect();
        writeln!(out, "Applied {} migration(s) to {db}:", r.applied.len())?;
        writeln!(
            out,
            "{}",
            output::table(
                &[
                    "version",
                    "description",
                    "statements",
                    "transaction",
                    "duration",
                    "attempts"
                ],
                &rows
            )
        )?;
    }
    if let Some(rej) = &r.rejected {
        writeln!(
            out,
            "Migration {} ({}) was rolled back: it introduces {} error-severity verify violation(s):",
            rej.version,
            rej.file,
            rej.violations.len()
        )?;
        for v in &rej.violations {
            writeln!(out, "  {} {}.{}: {}", v.rule, v.schema, v.table, v.message)?;
            if let Some(fix) = &v.fix {
                writeln!(out, "    fix: {}", fix.replace('\n', "\n         "))?;
            }
        }
        writeln!(
            out,
            "Fix the migration, or pass --allow-violations to commit it anyway."
        )?;
    }
    if let Some(v) = &r.verify {
        writeln!(out, "{}", v.line)?;
    }
    Ok(())
}

pub async fn cmd_status(g: &GlobalOpts, a: &StatusArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("status")?;
    let files = source::load_dir(&a.source.dir)?;
    let target = g.database().await?;
    let mut conn = target.connect().await?;
    let applied = ledger::read(&mut conn).await?;
    let entries = plan::entries(&applied, &files);
    let mut out = std::io::stdout().lock();
    if g.format == Format::Json {
        output::write_json(&mut out, &serde_json::json!({ "migrations": entries }))?;
    } else if entries.is_empty() {
        writeln!(
            out,
            "No migrations in {} and none applied.",
            a.source.dir.display()
        )?;
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                let ap = e.applied.as_ref();
                vec![
                    e.version.to_string(),
                    e.description.clone(),
                    match (e.state, ap) {
                        (plan::State::Partial, Some(a)) => {
                            format!(
                                "partial ({}/{} statements)",
                                a.statements_applied, a.statements_total
                            )
                        }
                        (plan::State::Applied, Some(a)) if a.baseline => {
                            "applied (baseline)".into()
                        }
                        (s, _) => s.as_str().into(),
                    },
                    ap.map_or(String::new(), |a| a.applied_at.clone()),
                    ap.map_or(String::new(), |a| a.applied_by.clone()),
                ]
            })
            .collect();
        writeln!(
            out,
            "{}",
            output::table(
                &["version", "description", "state", "applied at", "by"],
                &rows
            )
        )?;
    }
    let dirty = entries.iter().any(|e| e.state.needs_attention());
    Ok(Outcome::from_findings(a.exit_code && dirty))
}

pub async fn cmd_baseline(g: &GlobalOpts, a: &BaselineArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("baseline")?;
    let files = source::load_dir(&a.source.dir)?;
    let target = g.database().await?;
    // The lock's own session does the work: baseline has no guard needing a second one.
    let mut conn = target.connect().await?;
    runner::acquire_lock(&mut conn, std::time::Duration::from_secs(60)).await?;
    let marked = async {
        // sqlx-cli history first: versions it applied must not be marked or run again later.
        ledger::prepare(&mut conn, &files).await?;
        let applied = ledger::read(&mut conn).await?;
        let mut marked = Vec::new();
        for m in files.iter().filter(|m| m.version <= a.version) {
            if applied.iter().any(|x| x.version == m.version) {
                continue;
            }
            ledger::insert(&mut conn, m, true, 0, m.statement_count(), 0, true)
                .await
                .with_context(|| format!("baseline stopped at version {}", m.version))?;
            marked.push(m.version);
        }
        anyhow::Ok(marked)
    }
    .await;
    runner::release_lock(conn).await;
    let marked = marked?;
    let mut out = std::io::stdout().lock();
    if g.format == Format::Json {
        output::write_json(&mut out, &serde_json::json!({ "baselined": marked }))?;
    } else if marked.is_empty() {
        writeln!(
            out,
            "Nothing to baseline: every migration up to {} is already recorded.",
            a.version
        )?;
    } else {
        writeln!(
            out,
            "Marked {} migration(s) as applied without running them (versions {}..={}).",
            marked.len(),
            marked[0],
            marked[marked.len() - 1]
        )?;
    }
    Ok(Outcome::Clean)
}
