//! Text and JSON for the distribution plan and a run's report.

use super::exec::DistributeReport;
use super::plan::{human, Plan, StepKind};
use crate::output::{self, Format};
use std::io::{self, Write};

pub fn render_plan(plan: &Plan, format: Format, out: &mut dyn Write) -> io::Result<()> {
    if format != Format::Text {
        return output::write_json(out, plan);
    }
    if !plan.coordinator {
        writeln!(out, "note: not a Citus coordinator (no citus extension here): this is what distribute would do on one")?;
    }
    let rows: Vec<Vec<String>> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            vec![
                (i + 1).to_string(),
                s.table.clone(),
                match s.kind {
                    StepKind::Reference => "reference".into(),
                    StepKind::Distributed => "distributed".into(),
                },
                if s.done {
                    "done (skipped)".into()
                } else {
                    "pending".into()
                },
                s.rows.to_string(),
                s.lock.clone(),
                if s.done {
                    String::new()
                } else {
                    human(s.estimate_ms)
                },
            ]
        })
        .collect();
    writeln!(
        out,
        "{}",
        output::table(
            &[
                "#",
                "table",
                "becomes",
                "state",
                "rows",
                "lock held",
                "for about"
            ],
            &rows
        )
    )?;
    for (i, s) in plan.steps.iter().enumerate().filter(|(_, s)| !s.done) {
        writeln!(out, "-- step {}: {}", i + 1, s.table)?;
        for line in s.settings.iter().chain(&s.before) {
            writeln!(out, "{line};")?;
        }
        writeln!(out, "{};", s.sql)?;
        for n in &s.notes {
            writeln!(out, "--   note: {n}")?;
        }
    }
    for b in &plan.blockers {
        writeln!(out, "blocked: {b}")?;
    }
    let pending = plan.pending().count();
    writeln!(
        out,
        "citus plan: {} steps, {pending} pending, locks held {} in all{}",
        plan.steps.len(),
        human(plan.estimate_ms),
        if plan.blockers.is_empty() {
            String::new()
        } else {
            format!("; blocked by {} error(s)", plan.blockers.len())
        }
    )
}

pub fn render_report(
    report: &DistributeReport,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    if format != Format::Text {
        return output::write_json(out, report);
    }
    let rows: Vec<Vec<String>> = report
        .steps
        .iter()
        .map(|s| {
            vec![
                s.table.clone(),
                s.state.to_string(),
                s.duration_ms.to_string(),
                s.attempts.to_string(),
                s.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    writeln!(
        out,
        "{}",
        output::table(&["table", "state", "ms", "attempts", "error"], &rows)
    )?;
    let done = report.steps.iter().filter(|s| s.state == "done").count();
    let skipped = report.steps.iter().filter(|s| s.state == "skipped").count();
    writeln!(
        out,
        "citus distribute: {done} done, {skipped} already distributed, {} ms{}",
        report.duration_ms,
        if report.ok { "" } else { "; stopped" }
    )
}
