//! What can stop a probe (docs/rls.md). The probe's own findings (a leak, a refused write) are
//! in its report, not here. The variants holding an `anyhow::Error` wrap what catalog returns
//! today.

/// The error of [`super::probe`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot begin the probe's transaction")]
    Begin {
        #[source]
        source: sqlx::Error,
    },
    #[error("interrupted; the probe's transaction is rolled back, nothing was committed")]
    Interrupted,
    #[error("cannot roll the probe's transaction back")]
    Rollback {
        #[source]
        source: sqlx::Error,
    },
    /// `SET LOCAL lock_timeout`.
    #[error(transparent)]
    SetLockTimeout { source: sqlx::Error },
    /// Whether `--role` exists.
    #[error(transparent)]
    FindRole { source: sqlx::Error },
    #[error("role {role} does not exist; give the application's role with --role")]
    NoSuchRole { role: String },
    /// Reading the catalog model (catalog's error).
    #[error(transparent)]
    Catalog { source: crate::catalog::Error },
    /// Reading the policies and grants (catalog's error).
    #[error(transparent)]
    RlsCatalog { source: crate::catalog::Error },
    /// Picking the other realm from the realms table.
    #[error(transparent)]
    PickOther { source: sqlx::Error },
    #[error("--other must name another realm than --realm ({other})")]
    SameRealm { other: String },
    #[error("cannot read {table}")]
    ReadTable {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    /// Reading a row of the other realm for the INSERT to try.
    #[error(transparent)]
    ReadTemplate { source: sqlx::Error },
    #[error("cannot read the tables' columns")]
    ReadColumns {
        #[source]
        source: sqlx::Error,
    },
    /// A row of the columns query without the expected column.
    #[error(transparent)]
    ColumnRow { source: sqlx::Error },
    #[error("cannot SET ROLE {role}: the connecting role must be a member of it (or a superuser)")]
    SetRole {
        role: String,
        #[source]
        source: sqlx::Error,
    },
    /// `set_config` of the realm setting.
    #[error(transparent)]
    SetRealm { source: sqlx::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
