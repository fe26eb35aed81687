//! What can go wrong resolving the fleet's targets, initialising a local fleet or working on one
//! target. A target's error is recorded in the report as its cause chain, passwords redacted
//! (docs/fleet.md); the variants holding an `anyhow::Error` wrap what other modules (db,
//! embedded, migrate, verify) return today and are transparent, so their message is unchanged.

/// The error of the fleet's functions (the fleet file's own is [`super::config::FleetFileError`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path} exists; pass --force to overwrite it")]
    FileExists { path: String },
    /// Finding or starting the embedded cluster (embedded's error).
    #[error(transparent)]
    Embedded { source: crate::embedded::Error },
    /// A URL that is not a database URL (db's error).
    #[error(transparent)]
    Url { source: crate::db::Error },
    /// Connecting to a database (db's error, which names it).
    #[error(transparent)]
    Connect { source: crate::db::Error },
    #[error("cannot list the embedded cluster's databases")]
    ListDatabases {
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create database {name}")]
    CreateDatabase {
        name: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create {path}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    WriteFile {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A target's URL (or where it comes from) is wrong.
    #[error("target `{name}`")]
    Target {
        name: String,
        #[source]
        source: Box<Error>,
    },
    /// A target names both or neither of `url` and `url_env`.
    #[error("target `{name}`: {message}")]
    TargetUrlSource { name: String, message: String },
    #[error("[targets_from]")]
    TargetsFrom {
        #[source]
        source: Box<Error>,
    },
    #[error("[targets_from]: {message}")]
    TargetsFromUrlSource { message: String },
    /// What went wrong listing the targets from the query, its cause chain on one line with the
    /// listing database's password redacted.
    #[error("{message}")]
    ListTargets { message: String },
    #[error("[targets_from]: the query failed")]
    TargetsQuery {
        #[source]
        source: Box<Error>,
    },
    /// A statement the server refused, described by `db::describe_pg_error`.
    #[error("{message}")]
    Statement { message: String },
    #[error("[targets_from]: row {row}: column `{column}`: {error}; the query must return text columns `name` and `url` (and optionally `group`)")]
    TargetsColumn {
        row: usize,
        column: String,
        error: sqlx::Error,
    },
    #[error("[targets_from]: row {row} has a NULL name or url")]
    TargetsNull { row: usize },
    #[error("[targets_from]: target `{name}` is listed twice")]
    ListedTwiceByQuery { name: String },
    #[error("target `{name}` is listed twice (in the file and by [targets_from])")]
    ListedTwice { name: String },
    #[error("environment variable {var} (url_env) is empty")]
    EnvEmpty { var: String },
    #[error("environment variable {var} (url_env) is not set")]
    EnvUnset { var: String },
    #[error("--only names `{name}`, which is not a target of the fleet (targets: {known})")]
    NotInFleet { name: String, known: String },

    /// Reading a target's migration ledger (migrate's error).
    #[error(transparent)]
    Ledger { source: crate::migrate::Error },
    /// Verifying a target (verify's error).
    #[error(transparent)]
    Verify { source: crate::verify::Error },
    /// Migrating a target (migrate's error).
    #[error(transparent)]
    Migrate { source: crate::migrate::Error },
    #[error("migration {version} was rolled back by the verify guard: it introduces {count} error-severity violation(s){first}; fix it or pass --allow-violations")]
    GuardRejected {
        version: i64,
        count: usize,
        /// `: rule on schema.table` of the first violation, or empty.
        first: String,
    },
    #[error("stopped before migration {version} ({why}): {applied} applied, {pending} pending; a rerun resumes")]
    Stopped {
        version: i64,
        why: &'static str,
        applied: usize,
        pending: usize,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::cause_chain;

    #[test]
    fn a_target_error_names_the_target_then_the_cause() {
        let err = Error::Target {
            name: "w1".into(),
            source: Box::new(Error::EnvUnset {
                var: "W1_URL".into(),
            }),
        };
        assert_eq!(
            cause_chain(&err),
            "target `w1`: environment variable W1_URL (url_env) is not set"
        );
    }

    #[test]
    fn an_io_error_stays_reachable_in_the_chain() {
        let err = anyhow::Error::new(Error::WriteFile {
            path: "schema/fleet.toml".into(),
            source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, "Broken pipe"),
        });
        assert!(err
            .chain()
            .any(|c| c.downcast_ref::<std::io::Error>().is_some()));
        assert_eq!(
            crate::output::error_chain(&err),
            "cannot write schema/fleet.toml: Broken pipe"
        );
    }
}
