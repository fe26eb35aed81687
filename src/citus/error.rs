//! What can stop `citus plan` or `citus distribute` (docs/citus.md). A step's failure is also
//! recorded in the report and in `realmguard.citus_steps`. The variants holding an
//! `anyhow::Error` wrap what db and catalog return today.

/// The error of the citus functions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting to the coordinator (db's error, which names it).
    #[error(transparent)]
    Connect { source: crate::db::Error },
    /// Reading the catalog model (catalog's error).
    #[error(transparent)]
    Catalog { source: crate::catalog::Error },
    /// Reading Citus's metadata (catalog's error).
    #[error(transparent)]
    CitusFacts { source: crate::catalog::Error },
    /// Not a coordinator, or `verify --profile citus` finds errors: the one-line reason.
    #[error("{reason}")]
    Refused { reason: String },
    /// `SET client_connection_check_interval`.
    #[error(transparent)]
    SetCheckInterval { source: sqlx::Error },
    /// Trying the runner's advisory lock.
    #[error(transparent)]
    RunnerLock { source: sqlx::Error },
    #[error("another `realmguard citus distribute` has been running on this database for over {secs}s; wait for it to finish")]
    RunnerBusy { secs: u64 },
    /// Creating `realmguard.citus_steps` or recording a step's start, end or interruption in it.
    #[error(transparent)]
    RecordStep { source: sqlx::Error },
    #[error("interrupted before {table}; run distribute again to resume")]
    Interrupted { table: String },
    /// `error` is the step's own failure; as before, it is said in the message, not as a source.
    #[error("{table} failed: {error}")]
    StepFailed { table: String, error: Box<Error> },
    /// A statement the server refused, described by `db::describe_pg_error`.
    #[error("{message}")]
    Statement { message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
