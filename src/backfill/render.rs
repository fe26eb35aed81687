//! Text and JSON rendering of the backfill's reports.
//!
//! JSON goes through `serde_json::Value`, whose objects keep their keys sorted: the documented
//! output has always listed keys in that order, at every level.

use super::plan::Derive;
use super::prepared::{PreparedReport, Seen};
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
    if let Some(p) = &r.prepared_statements {
        writeln!(out)?;
        for line in prepared_lines(p) {
            writeln!(out, "{line}")?;
        }
    }
    for s in &r.steps {
        write_step(out, s)?;
    }
    Ok(())
}

/// Statements listed in text; JSON has them all.
const SHOWN_STATEMENTS: usize = 10;

/// What the column steps do to prepared `SELECT *`, for `plan` and the start of `run`
/// (`docs/backfill-design.md`, "Prepared statements").
pub fn prepared_lines(p: &PreparedReport) -> Vec<String> {
    let mut lines = vec![
        format!(
            "warning: adding the realm column changes what `SELECT *` and `RETURNING *` return on {}: a session that prepared such a statement before the table's column step gets SQLSTATE 0A000 (cached plan must not change result type) the next time it runs it, once if its driver then prepares it again",
            p.tables.join(", ")
        ),
        "  psycopg 3, pgjdbc, Rails and many drivers prepare a statement after a few executions; remedies: a driver that re-prepares on this error (pgjdbc with autosave=conservative retries it), automatic preparation off for the run (psycopg 3 prepare_threshold=None, pgjdbc prepareThreshold=0, Rails prepared_statements: false), columns named instead of *, or the run at a quiet moment with the pool reconnected after the column steps".to_string(),
    ];
    match &p.pg_stat_statements {
        Seen::NotAvailable { reason } => lines.push(format!(
            "  pg_stat_statements is not available ({reason}): the statements cannot be listed"
        )),
        Seen::Available {
            statements,
            hidden,
            unparsed,
        } => {
            if statements.is_empty() {
                lines.push(
                    "  pg_stat_statements has seen no statement returning * of these tables".into(),
                );
            } else {
                lines.push(format!(
                    "  pg_stat_statements has seen {} statement{} returning * of these tables (prepared or not, it does not say):",
                    statements.len(),
                    if statements.len() == 1 { "" } else { "s" }
                ));
                for st in statements.iter().take(SHOWN_STATEMENTS) {
                    lines.push(format!(
                        "    {}: {} calls: {}",
                        st.table, st.calls, st.query
                    ));
                }
                if statements.len() > SHOWN_STATEMENTS {
                    lines.push(format!(
                        "    and {} more (--format json lists them all)",
                        statements.len() - SHOWN_STATEMENTS
                    ));
                }
            }
            if *hidden > 0 {
                lines.push(format!(
                    "  {hidden} statements of other roles are hidden from this role (GRANT pg_read_all_stats to see them)"
                ));
            }
            if *unparsed > 0 {
                lines.push(format!(
                    "  {unparsed} statements with a * could not be parsed and were not checked"
                ));
            }
        }
    }
    lines
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
