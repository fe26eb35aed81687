//! Why a backfill command stopped: each variant names the object (step, table, index, statement)
//! and, for a refusal, what to do next. The texts are the command's `error:` line
//! (docs/architecture.md, "Domain modules").

use super::plan::PlanError;
use crate::db::PgError;

/// A failed backfill plan, run, finish or status read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting, the runner lock, creating the ledger, checking an index.
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    /// Reading the shared catalog or its triggers.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::Error),
    /// A plain database error where nothing more can be said (a ledger row, a session setting,
    /// a probe query).
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("cannot plan the backfill")]
    Plan(#[source] PlanError),
    #[error("cannot verify the converted tables")]
    Verify(#[source] crate::verify::Error),

    #[error("cannot read the realms table")]
    RealmsTable(#[source] sqlx::Error),
    #[error("cannot read the partitions")]
    Partitions(#[source] sqlx::Error),
    #[error("cannot read the triggers")]
    Triggers(#[source] sqlx::Error),

    #[error("the recorded backfill plan is unreadable (written by another realmguard version?)")]
    UnreadablePlan(#[source] serde_json::Error),
    /// A step that cannot be written to the ledger as JSON.
    #[error(transparent)]
    EncodeStep(serde_json::Error),
    #[error("another backfill is running on this database{}; wait for it or stop it", pid_note(.holder))]
    RunnerLocked { holder: Option<i32> },

    #[error("step {seq} ({title}): foreign keys still depend on {index}: {dependents}; realmguard never drops with CASCADE — convert or drop them first")]
    ForeignKeysDepend {
        seq: i32,
        title: String,
        index: String,
        dependents: String,
    },
    /// A statement step failed; `hint` says what to fix for the failures that have a known
    /// cause (empty otherwise).
    #[error("step {seq} on {table} ({title}) failed: {cause}{hint}")]
    StepFailed {
        seq: i32,
        table: String,
        title: String,
        cause: PgError,
        hint: &'static str,
    },
    #[error("gave up on {table} ({title}) after {attempts} attempts: {lock} not granted (the last attempt waited {waited}); {blockers}")]
    GaveUp {
        table: String,
        title: String,
        attempts: u32,
        lock: &'static str,
        waited: String,
        blockers: String,
    },
    /// A statement run outside a transaction (CONCURRENTLY) failed; `statement` is its first line.
    #[error("`{statement}` failed")]
    Concurrently {
        statement: String,
        #[source]
        source: PgError,
    },
    #[error("filling {schema}.{table} ({lo}, {hi}] failed")]
    Fill {
        schema: String,
        table: String,
        lo: i64,
        hi: i64,
        #[source]
        source: PgError,
    },

    #[error("preflight refused to start: {}", .refusals.join("; "))]
    Refused { refusals: Vec<String> },
    #[error("interrupted after {done} of {total} steps; every finished step and batch is recorded: `realmguard backfill run` resumes")]
    Interrupted { done: usize, total: usize },
    #[error("a backfill is under way ({done} of {total} steps done) and its fill needs the triggers: complete it with `realmguard backfill run` first")]
    UnderWay { done: usize, total: usize },
    #[error(
        "interrupted; every dropped trigger is recorded: `realmguard backfill finish` resumes"
    )]
    FinishInterrupted,
}

fn pid_note(holder: &Option<i32>) -> String {
    holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::cause_chain;

    #[test]
    fn the_error_line_names_the_object_and_the_next_step() {
        let e = Error::RunnerLocked { holder: Some(42) };
        assert_eq!(
            cause_chain(&e),
            "another backfill is running on this database (pid 42); wait for it or stop it"
        );
        let e = Error::RunnerLocked { holder: None };
        assert_eq!(
            cause_chain(&e),
            "another backfill is running on this database; wait for it or stop it"
        );
        let e = Error::Refused {
            refusals: vec!["pid 7 is old".into(), "index i is INVALID".into()],
        };
        assert_eq!(
            cause_chain(&e),
            "preflight refused to start: pid 7 is old; index i is INVALID"
        );
        // The planner's refusal stays the cause, after what was being done.
        let e = Error::Plan(PlanError::UnknownTable("nope".into()));
        assert_eq!(
            cause_chain(&e),
            "cannot plan the backfill: realm_scoped lists `nope`, but no such table exists in the checked schemas"
        );
    }

    #[test]
    fn an_io_error_stays_reachable_through_anyhow() {
        // The commands edge recognises a broken pipe by finding the io::Error in the chain.
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "Broken pipe");
        let err = anyhow::Error::from(Error::from(sqlx::Error::Io(io)));
        assert!(err.chain().any(|c| c
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)));
    }
}
