//! Text rendering of migrate's and status's reports (JSON is the reports themselves).

use super::plan::{self, Entry};
use super::MigrateReport;
use crate::output::{self, Format};
use std::io::Write;

/// `migrate`'s report: the plan of a dry run, or what was applied, rejected and verified.
pub fn render_migrate(
    r: &MigrateReport,
    format: Format,
    db: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
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

/// `status`'s report: one row per version with its state.
pub fn render_status(
    entries: &[Entry],
    format: Format,
    dir: &std::path::Path,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if format == Format::Json {
        return output::write_json(out, &serde_json::json!({ "migrations": entries }));
    }
    if entries.is_empty() {
        return writeln!(out, "No migrations in {} and none applied.", dir.display());
    }
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
                    (plan::State::Applied, Some(a)) if a.baseline => "applied (baseline)".into(),
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
    )
}

/// `baseline`'s report: the versions it marked.
pub fn render_baseline(
    marked: &[i64],
    upto: i64,
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if format == Format::Json {
        return output::write_json(out, &serde_json::json!({ "baselined": marked }));
    }
    match (marked.first(), marked.last()) {
        (Some(first), Some(last)) => writeln!(
            out,
            "Marked {} migration(s) as applied without running them (versions {first}..={last}).",
            marked.len()
        ),
        _ => writeln!(
            out,
            "Nothing to baseline: every migration up to {upto} is already recorded."
        ),
    }
}
