//! What can go wrong reading the application's queries, the baseline or the schema the audit
//! checks them against (docs/audit.md). The variants holding an `anyhow::Error` wrap what other
//! modules (catalog, lint) return today.

use std::io;

/// The error of the audit's readers (the analysis itself cannot fail).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot audit {path}")]
    Audit {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}")]
    ReadDir {
        path: String,
        #[source]
        source: io::Error,
    },
    /// An entry of a directory being walked.
    #[error(transparent)]
    DirEntry { source: io::Error },
    #[error("cannot read {path}")]
    ReadFile {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a JSON document: {error}")]
    NotJson {
        path: String,
        error: serde_json::Error,
    },
    #[error("{path}: no \"query\" field (is it sqlx offline data?)")]
    NoQueryField { path: String },
    #[error("{path}:{line}: not a JSON object: {error}")]
    NotJsonLine {
        path: String,
        line: usize,
        error: serde_json::Error,
    },

    #[error("cannot read the audit baseline {path}")]
    ReadBaseline {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the audit baseline {path} is not valid: {error}")]
    InvalidBaseline {
        path: String,
        error: serde_json::Error,
    },

    #[error("--schema-from {path}: not a directory of migration files")]
    NotADirectory { path: String },
    /// Listing the migration files (lint's error).
    #[error("cannot read the schema from {path}")]
    ReadSchema {
        path: String,
        #[source]
        source: crate::lint::Error,
    },
    /// Reading one migration file (lint's error, which names it).
    #[error(transparent)]
    ReadMigration { source: crate::lint::Error },
    /// Reading the catalog model (catalog's error).
    #[error(transparent)]
    Catalog { source: crate::catalog::Error },
    /// Whether pg_stat_statements exists.
    #[error(transparent)]
    FindPgStatStatements { source: sqlx::Error },
    #[error("pg_stat_statements is not installed in this database: CREATE EXTENSION pg_stat_statements (with shared_preload_libraries = 'pg_stat_statements')")]
    NoPgStatStatements,
    /// `message`: the server's error, described by `db::describe_pg_error`.
    #[error("cannot read pg_stat_statements: {message}")]
    ReadPgStatStatements { message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
