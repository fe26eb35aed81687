//! Why `migrate`, `status` or `baseline` stopped: each variant names the migration (version,
//! file and line when known) and says what to do next. The texts are the command's `error:` line.

pub use super::plan::DriftError;
pub use super::runner::MigrationFailed;

/// A failed migration run, ledger operation or guard check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting, the advisory lock, creating the ledger, checking an index.
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    /// A plain database error where nothing more can be said (session settings, a probe query).
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Drift(#[from] DriftError),
    #[error(transparent)]
    Failed(#[from] MigrationFailed),

    #[error("another migration runner ({holder}) holds the migration lock; gave up after {waited_secs:.1}s (raise --lock-wait to wait longer)")]
    LockHeld { holder: String, waited_secs: f64 },
    #[error("{file}:{line}: `{keyword}` inside a migration would break its atomicity: realmguard runs each file in its own transaction; remove it, or put `-- realmguard:no-transaction` first to run the file statement by statement")]
    TransactionControl {
        file: String,
        line: usize,
        keyword: String,
    },
    #[error("{file}:{line}: {reason}; a no-transaction migration must split into statements")]
    Unsplittable {
        file: String,
        line: usize,
        reason: crate::split::SplitError,
    },
    #[error("cannot begin a transaction")]
    Begin(#[source] sqlx::Error),
    #[error("cannot roll back")]
    Rollback(#[source] sqlx::Error),
    #[error("the connection to the server was lost before migration {version} started ({cause}); nothing of it was committed")]
    LostBeforeStart { version: i64, cause: String },
    #[error("the connection to the server was lost during migration {version} at {file}:{line} ({cause}); nothing of migration {version} was committed: the server rolls back the open transaction of a session that ends")]
    ConnectionLost {
        version: i64,
        file: String,
        line: usize,
        cause: String,
    },
    #[error("the connection to the server was lost during the COMMIT of migration {version} ({cause}); whether it committed is unknown: `realmguard status` shows it (its ledger row commits with it)")]
    LostAtCommit { version: i64, cause: String },
    #[error("another session kept a conflicting lock through {attempts} attempts of {lock_timeout_ms}ms lock_timeout; nothing of migration {version} was applied (find the blocker in pg_stat_activity, or raise --lock-retries)")]
    LockConflict {
        version: i64,
        attempts: u32,
        lock_timeout_ms: u128,
        #[source]
        source: MigrationFailed,
    },
    /// A statement of a no-transaction migration failed; the ones before it stay applied.
    #[error("{failed}; {done} of {total} statements of this no-transaction migration are applied, a rerun resumes at statement {}{}", .done + 1, invalid_note(.invalid_index))]
    NoTransactionFailed {
        failed: MigrationFailed,
        done: usize,
        total: i32,
        /// The index the failed build left INVALID, if it did.
        invalid_index: Option<String>,
    },
    #[error("migration {version} built index {index} at {file}:{line} but it is INVALID (a failed CONCURRENTLY build); a rerun drops and rebuilds it")]
    InvalidIndex {
        version: i64,
        index: String,
        file: String,
        line: usize,
    },
    #[error("cannot drop the invalid index {index}")]
    DropInvalidIndex {
        index: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot read which tables the migration changed")]
    Touched(#[source] sqlx::Error),
    #[error("cannot prepare the verify guard's catalog read on this session (or rerun with --no-verify)")]
    PrepareGuard(#[source] sqlx::Error),
    #[error("cannot verify what migration {version} changed")]
    VerifyChanged {
        version: i64,
        #[source]
        source: crate::verify::Error,
    },
    #[error("cannot verify the state before migration {version}")]
    VerifyBefore {
        version: i64,
        #[source]
        source: crate::verify::Error,
    },
    #[error("cannot verify the migrated database")]
    VerifyAll(#[source] crate::verify::Error),

    #[error("cannot look for the ledger")]
    LedgerLookup(#[source] sqlx::Error),
    #[error("cannot read the ledger realmguard.migrations")]
    LedgerRead(#[source] sqlx::Error),
    #[error("cannot record migration {version} in the ledger")]
    Record {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot record the progress of migration {version}")]
    Progress {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot read sqlx-cli's _sqlx_migrations")]
    SqlxRead(#[source] sqlx::Error),
    #[error("cannot adopt sqlx-cli's record of version {version}")]
    Adopt {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("baseline stopped at version {version}")]
    Baseline {
        version: i64,
        #[source]
        source: Box<Error>,
    },
}

fn invalid_note(index: &Option<String>) -> String {
    match index {
        Some(ix) => {
            format!(" (the failed build left index {ix} INVALID; the rerun drops and rebuilds it)")
        }
        None => String::new(),
    }
}

impl Error {
    /// The database error at the bottom of this one, if there is one.
    pub fn sqlx_cause(&self) -> Option<&sqlx::Error> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(s) = e.downcast_ref::<sqlx::Error>() {
                return Some(s);
            }
            cur = e.source();
        }
        None
    }

    /// The text of the last error in the chain (the root cause).
    pub fn root_text(&self) -> String {
        let mut cur: &(dyn std::error::Error + 'static) = self;
        while let Some(next) = cur.source() {
            cur = next;
        }
        cur.to_string()
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> MigrationFailed {
        MigrationFailed {
            version: 4,
            file: "migrations/4_ix.sql".into(),
            line: 2,
            cause: "deadlock detected (SQLSTATE 40P01)".into(),
        }
    }

    #[test]
    fn a_failed_no_transaction_statement_says_where_a_rerun_resumes() {
        let plain = Error::NoTransactionFailed {
            failed: failed(),
            done: 1,
            total: 3,
            invalid_index: None,
        };
        assert_eq!(
            plain.to_string(),
            "migration 4 failed at migrations/4_ix.sql:2: deadlock detected (SQLSTATE 40P01); 1 of 3 statements of this no-transaction migration are applied, a rerun resumes at statement 2"
        );
        let invalid = Error::NoTransactionFailed {
            failed: failed(),
            done: 0,
            total: 1,
            invalid_index: Some("app.ix".into()),
        };
        assert!(invalid.to_string().ends_with(
            "a rerun resumes at statement 1 (the failed build left index app.ix INVALID; the rerun drops and rebuilds it)"
        ));
    }

    #[test]
    fn the_lock_conflict_keeps_the_failure_as_its_cause() {
        let err = anyhow::Error::from(Error::LockConflict {
            version: 4,
            attempts: 9,
            lock_timeout_ms: 2000,
            source: failed(),
        });
        assert_eq!(
            crate::output::error_chain(&err),
            "another session kept a conflicting lock through 9 attempts of 2000ms lock_timeout; nothing of migration 4 was applied (find the blocker in pg_stat_activity, or raise --lock-retries): migration 4 failed at migrations/4_ix.sql:2: deadlock detected (SQLSTATE 40P01)"
        );
        // A database error under several layers is still found (the rollback path names it).
        let deep = Error::Baseline {
            version: 1,
            source: Box::new(Error::LedgerRead(sqlx::Error::PoolClosed)),
        };
        assert!(matches!(deep.sqlx_cause(), Some(sqlx::Error::PoolClosed)));
        assert_eq!(deep.root_text(), sqlx::Error::PoolClosed.to_string());
    }
}
