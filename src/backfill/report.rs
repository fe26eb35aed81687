//! What `backfill plan/run/finish/status` found or did, as typed reports. Their JSON is the
//! documented `--format json` output (see `render`), their text rendering is in `render` too.

use super::exec::{Progress, StoredStep};
use super::plan::{Action, Phase, TablePlan};
use super::prepared::PreparedReport;
use serde::Serialize;

/// One step of a plan or of the recorded plan, as the reports show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// Its number in the recorded plan (from 1).
    pub n: i32,
    pub schema: String,
    pub table: String,
    pub phase: Phase,
    pub title: String,
    /// The strongest lock it takes ("ACCESS EXCLUSIVE", …).
    pub lock: String,
    /// How long and on what, for humans.
    pub lock_note: String,
    /// How it runs: "transaction", "concurrent-index", "concurrent-drop" or "fill".
    pub kind: String,
    pub sql: String,
    pub done: bool,
}

impl StepReport {
    pub fn of(s: &StoredStep) -> StepReport {
        StepReport {
            n: s.seq,
            schema: s.step.schema.clone(),
            table: s.step.table.clone(),
            phase: s.step.phase,
            title: s.step.title.clone(),
            lock: s.step.lock.name().to_string(),
            lock_note: s.step.lock_note.clone(),
            kind: match &s.step.action {
                Action::Sql { .. } => "transaction",
                Action::ConcurrentIndex { .. } => "concurrent-index",
                Action::DropIndexConcurrently { .. } => "concurrent-drop",
                Action::Fill { .. } => "fill",
            }
            .to_string(),
            sql: s.step.sql().to_string(),
            done: s.done,
        }
    }

    pub fn all(steps: &[StoredStep]) -> Vec<StepReport> {
        steps.iter().map(StepReport::of).collect()
    }

    pub fn display_table(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    pub fn lock_text(&self) -> String {
        format!("{} ({})", self.lock, self.lock_note)
    }
}

/// `backfill plan`: the plan for the catalog as it is, or the recorded plan of a run under way
/// (`in_progress`, and no realm column, type or tables: those were decided when it was made).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    pub in_progress: bool,
    pub realm_column: Option<String>,
    pub realm_type: Option<String>,
    pub tables: Option<Vec<TablePlan>>,
    pub steps: Vec<StepReport>,
    /// The tables whose `SELECT *` the pending column steps change, and the statements seen on
    /// them; None when no pending step adds a column.
    pub prepared_statements: Option<PreparedReport>,
}

/// `backfill run`: nothing to do, or what the run did and what the end check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RunReport {
    NothingToDo(NothingToDo),
    Ran(RunSummary),
}

impl RunReport {
    /// Whether the end state satisfies the goal (exit 0) or problems remain (exit 1).
    pub fn ok(&self) -> bool {
        match self {
            RunReport::NothingToDo(n) => n.ok,
            RunReport::Ran(r) => r.ok,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NothingToDo {
    pub ok: bool,
    pub steps_total: usize,
    pub steps_run: usize,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub ok: bool,
    pub resumed: bool,
    pub steps_total: usize,
    pub steps_run: usize,
    pub seconds: f64,
    /// The converted tables, "schema.table".
    pub tables: Vec<String>,
    /// Every fill recorded in the ledger (this run's and earlier runs' of the same plan).
    pub fills: Vec<Progress>,
    /// What the end check found wrong on the converted tables ("schema.table: message (rule)").
    pub problems: Vec<String>,
    /// What the start of the run said about prepared `SELECT *` (see `PlanReport`).
    pub prepared_statements: Option<PreparedReport>,
}

/// `backfill finish`: the steps of a dry run, or what was dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FinishReport {
    Preview(FinishPreview),
    Done(FinishSummary),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinishPreview {
    pub dry_run: bool,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinishSummary {
    pub ok: bool,
    pub resumed: bool,
    pub steps_run: usize,
    pub seconds: f64,
    /// "schema.table: title" of each drop step.
    pub dropped: Vec<String>,
}

/// `backfill status`: the recorded plan's progress per table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub recorded: bool,
    pub steps_total: usize,
    pub steps_done: usize,
    pub tables: Vec<StatusTable>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusTable {
    pub schema: String,
    pub table: String,
    /// The phase of its first step not done, or "done".
    pub phase: String,
    pub steps_done: usize,
    pub steps_total: usize,
    pub rows_filled: Option<i64>,
    pub fill_fraction: Option<f64>,
    /// Its fill started and has not finished (text output only).
    #[serde(skip)]
    pub filling: bool,
}

impl StatusReport {
    pub fn of(steps: &[StoredStep], progress: &[Progress]) -> StatusReport {
        let mut tables: Vec<StatusTable> = Vec::new();
        for s in steps {
            let i = match tables
                .iter()
                .position(|r| r.schema == s.step.schema && r.table == s.step.table)
            {
                Some(i) => i,
                None => {
                    let fill = progress
                        .iter()
                        .find(|p| p.schema == s.step.schema && p.table == s.step.table);
                    tables.push(StatusTable {
                        schema: s.step.schema.clone(),
                        table: s.step.table.clone(),
                        phase: "done".into(),
                        steps_done: 0,
                        steps_total: 0,
                        rows_filled: fill.map(|f| f.rows_done),
                        fill_fraction: fill.map(Progress::fraction),
                        filling: fill.is_some_and(|f| !f.finished),
                    });
                    tables.len() - 1
                }
            };
            let r = &mut tables[i];
            r.steps_total += 1;
            if s.done {
                r.steps_done += 1;
            } else if r.phase == "done" {
                r.phase = s.step.phase.to_string();
            }
        }
        StatusReport {
            recorded: !steps.is_empty(),
            steps_total: steps.len(),
            steps_done: steps.iter().filter(|s| s.done).count(),
            tables,
        }
    }
}
