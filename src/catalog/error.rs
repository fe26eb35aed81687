//! Why a catalog read failed: each variant names the read, so the message says which part of
//! `pg_catalog` could not be read (the role's privileges, or a server the queries do not fit).

/// A failed read of `pg_catalog`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query of `what` (tables, constraints, the views, …) failed.
    #[error("cannot read {what} from pg_catalog")]
    Read {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The rows of `what` came back but do not decode.
    #[error("cannot decode the {what} read from pg_catalog")]
    Decode {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    /// A part of the scoped read (the text of an array of rows) does not decode.
    #[error("cannot decode the {what} read from pg_catalog")]
    DecodeText {
        what: String,
        #[source]
        source: super::pgtext::Error,
    },
    /// A JSON column of the Citus profile read does not decode (shown as serde's message alone).
    #[error("{reason}")]
    CitusFacts {
        column: &'static str,
        reason: serde_json::Error,
    },
    #[error("cannot set up the catalog read")]
    SetUp(#[source] sqlx::Error),
    #[error("cannot resolve the realms table from pg_catalog")]
    Realms(#[source] sqlx::Error),
    #[error("cannot read Citus's metadata (pg_dist_partition)")]
    Dist(#[source] sqlx::Error),
    /// A column missing from or mistyped in a row the reads above returned.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}
