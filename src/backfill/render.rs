//! Text and JSON rendering of the backfill's reports.
//!
//! JSON goes through `serde_json::Value`, whose objects keep their keys sorted: the documented
//! output has always listed keys in that order, at every level.

use super::plan::Derive;
use super::report::{FinishReport, PlanReport, RunReport, StatusReport, StepReport};
use crate::output::{self, Format};
use std::io::{self, Write};

const NOTHING_TO_FINISH: &str = "backfill finish: no fill triggers left; nothing to do";

fn json<T: serde::Serialize>(out: &mut dyn Write, report: &T) -> io::Result<()> {
    let value = serde_json::to_value(report).map_err(io::Error::other)?;
    output::write_json(out, &value)
}

/// `backfill plan`.
pub fn render_plan(r: &PlanReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    if format == Format::Json {
        return json(out, r);
    }
    if r.steps.is_empty() {
        return writeln!(
            out,
            "backfill plan: nothing to do; every realm table already has the realm shape"
        );
    }
    match (&r.tables, r.in_progress) {
        (Some(tables), false) => {
            writeln!(
                out,
                "backfill plan: {} tables, {} steps; realm column {} {}",
                tables.len(),
                r.steps.len(),
                r.realm_column.as_deref().unwrap_or_default(),
                r.realm_type.as_deref().unwrap_or_default()
            )?;
            let rows: Vec<Vec<String>> = tables
                .iter()
                .map(|t| {
                    vec![
                        format!("{}.{}", t.schema, t.table),
                        t.key.clone(),
                        match &t.derive {
                            Derive::Default { realm } => format!("default realm '{realm}'"),
                            Derive::Parent {
                                constraint,
                                schema,
                                table,
                            } => format!("{schema}.{table} through {constraint}"),
                            Derive::Done => "already filled".into(),
                        },
                        match (&t.derive, t.rewrite) {
                            (Derive::Done, _) => "-",
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
        _ => writeln!(
            out,
            "backfill in progress: {} of {} steps done; `realmguard backfill run` continues it",
            r.steps.iter().filter(|s| s.done).count(),
            r.steps.len()
        )?,
    }
    for s in &r.steps {
        write_step(out, s)?;
    }
    Ok(())
}

fn write_step(out: &mut dyn Write, s: &StepReport) -> io::Result<()> {
    writeln!(
        out,
        "\n{:>3}. {}{} · {} · {}\n     lock: {}",
        s.n,
        if s.done { "[done] " } else { "" },
        s.display_table(),
        s.phase,
        s.title,
        s.lock_text()
    )?;
    for line in s.sql.lines() {
        writeln!(out, "     {line}")?;
    }
    Ok(())
}

/// `backfill run`.
pub fn render_run(r: &RunReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    if format == Format::Json {
        return json(out, r);
    }
    let r = match r {
        RunReport::NothingToDo(_) => {
            return writeln!(
                out,
                "backfill: nothing to do; every realm table already has the realm shape"
            )
        }
        RunReport::Ran(r) => r,
    };
    writeln!(
        out,
        "backfill: {} tables converted, {} steps run{} in {:.1}s",
        r.tables.len(),
        r.steps_run,
        if r.resumed { " (resumed)" } else { "" },
        r.seconds
    )?;
    for f in &r.fills {
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
    for p in &r.problems {
        writeln!(out, "  problem: {p}")?;
    }
    Ok(())
}

/// `backfill finish` (and its `--dry-run`).
pub fn render_finish(r: &FinishReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    if format == Format::Json {
        return json(out, r);
    }
    match r {
        FinishReport::Preview(p) if p.steps.is_empty() => writeln!(out, "{NOTHING_TO_FINISH}"),
        FinishReport::Preview(p) => {
            writeln!(
                out,
                "backfill finish: {} steps (dry run); afterwards a row written without the realm column is refused",
                p.steps.len()
            )?;
            for s in &p.steps {
                write_step(out, s)?;
            }
            Ok(())
        }
        FinishReport::Done(d) if d.dropped.is_empty() => writeln!(out, "{NOTHING_TO_FINISH}"),
        FinishReport::Done(d) => {
            writeln!(
                out,
                "backfill finish: {} steps run{} in {:.1}s; a row written without the realm column is now refused",
                d.steps_run,
                if d.resumed { " (resumed)" } else { "" },
                d.seconds,
            )?;
            for line in &d.dropped {
                writeln!(out, "  {line}")?;
            }
            Ok(())
        }
    }
}

/// `backfill status`.
pub fn render_status(r: &StatusReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    if format == Format::Json {
        return json(out, r);
    }
    if !r.recorded {
        return writeln!(
            out,
            "no backfill recorded in this database; `realmguard backfill plan` shows what one would do"
        );
    }
    writeln!(
        out,
        "backfill: {} of {} steps done{}",
        r.steps_done,
        r.steps_total,
        if r.steps_done == r.steps_total {
            " (finished)"
        } else {
            "; `realmguard backfill run` continues"
        }
    )?;
    let rows: Vec<Vec<String>> = r
        .tables
        .iter()
        .map(|t| {
            vec![
                format!("{}.{}", t.schema, t.table),
                t.phase.clone(),
                format!("{}/{}", t.steps_done, t.steps_total),
                match (t.rows_filled, t.fill_fraction) {
                    (Some(rows), Some(fraction)) => format!(
                        "{rows} rows, {:.0}%{}",
                        fraction * 100.0,
                        if t.filling { " (filling)" } else { "" }
                    ),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    writeln!(
        out,
        "{}",
        output::table(&["table", "phase", "steps", "fill"], &rows)
    )
}
