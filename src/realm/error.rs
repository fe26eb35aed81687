//! What can go wrong carrying, diffing or deleting a realm. Each refusal names the object and
//! the next step (docs/realm.md); each failure of a statement names what it was doing and keeps
//! the server's error as its source, so the `error:` line reads `what failed: why`.
//!
//! The variants holding an `anyhow::Error` wrap what other modules (db, catalog, verify, migrate,
//! ) return today; they are transparent, so the message is
//! theirs unchanged.

/// The error of every `realm` function.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--realm must be a non-empty realm id on one line")]
    InvalidRealm,
    #[error("the target is the source database; give --to the worker instance's URL")]
    SameDatabase,
    /// Connecting to one of the databases (db's error, which names the target).
    #[error(transparent)]
    Connect { source: crate::db::Error },
    /// Reading the catalog model (catalog's error).
    #[error(transparent)]
    Catalog { source: crate::catalog::Error },
    /// Running verify on one side (verify's error).
    #[error(transparent)]
    Verify { source: crate::verify::Error },
    /// Reading a side's migration ledger (migrate's error).
    #[error(transparent)]
    MigrationLedger { source: crate::migrate::Error },
    /// Creating `realmguard.realm_moves` (db's error).
    #[error(transparent)]
    CreateMoveLedger { source: crate::db::Error },
    #[error("cannot pin the session settings the hashes depend on")]
    PinSession {
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot hash {table}")]
    HashTable {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    /// A hash row without the expected column.
    #[error(transparent)]
    HashRow { source: sqlx::Error },
    #[error("cancelled before {table}; the target was rolled back")]
    CancelledBefore { table: String },
    #[error("cancelled while copying {table}; the target was rolled back")]
    CancelledCopying { table: String },
    #[error("cannot start the copy into the target's {table}")]
    StartCopyIn {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot start reading the source's {table}")]
    StartCopyOut {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("reading the source's {table} failed")]
    ReadSource {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("writing the target's {table} failed")]
    WriteTarget {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the target refused the rows of {table}")]
    TargetRefused {
        table: String,
        #[source]
        source: Box<Error>,
    },
    /// A table's hashes differ after the copy.
    #[error(transparent)]
    Mismatch(#[from] super::copy::Mismatch),
    #[error("cannot move {sequence} past {table}.{column}")]
    AdvanceSequence {
        sequence: String,
        table: String,
        column: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot read the target's triggers")]
    ReadTargetTriggers {
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot set session_replication_role on the target")]
    SetReplicationRole {
        #[source]
        source: sqlx::Error,
    },
    #[error("{table} is not a table of the realm")]
    NotRealmTable { table: String },
    #[error("cannot lock the rows {constraint} references")]
    LockReferenced {
        constraint: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot check foreign key {constraint} on the target")]
    CheckForeignKey {
        constraint: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{table}: {missing} of the realm's rows break foreign key {constraint} on the target (no matching row in {parent}); the target was rolled back: copy the referenced rows there first, or compare the two schemas")]
    BrokenForeignKey {
        table: String,
        missing: i64,
        constraint: String,
        parent: String,
    },
    /// A statement the server refused, described by `db::describe_pg_error` (which already
    /// says the server's message, code and hint, so it has no source of its own).
    #[error("{message}")]
    Statement { message: String },

    #[error("cannot plan the {side}")]
    Plan {
        side: &'static str,
        #[source]
        source: Box<Error>,
    },
    #[error("realms_table is \"\" in the config: realm commands need the realms table")]
    RealmsTableDisabled,
    #[error("the realms table {schema}.{name} does not exist here; migrate this database first")]
    RealmsTableMissing { schema: String, name: String },
    #[error("the realms table {table} has no single-column primary key to name a realm by")]
    NoRealmKey { table: String },
    #[error("the realms table's primary key column is not readable")]
    RealmKeyUnreadable,
    #[error("cannot read the tables' columns from pg_catalog")]
    ReadColumns {
        #[source]
        source: sqlx::Error,
    },
    /// A row of the columns query without the expected column.
    #[error(transparent)]
    ColumnRow { source: sqlx::Error },

    #[error("{table} is realm-scoped but has no {column} column on the source, so its rows cannot be told apart by realm; backfill it first (realmguard backfill run)")]
    WithoutRealmColumn { table: String, column: String },
    #[error("the {side} fails verify on {schema}.{table} ({rule}: {message}); fix it first (realmguard verify)")]
    FailsVerify {
        side: &'static str,
        schema: String,
        table: String,
        rule: String,
        message: String,
    },
    #[error("the ledgers differ: version {version} is applied on the {side} only; migrate both to the same version first")]
    LedgerVersionOnOneSide { version: i64, side: &'static str },
    #[error("the ledgers differ: version {version} has another checksum (or state) on the target than on the source; the two databases were migrated from different files")]
    LedgerChecksum { version: i64 },
    #[error("the target has no realm-scoped table {table}; migrate the target first")]
    TargetLacksTable { table: String },
    #[error("the target's {table} has no column {column}; migrate the target first")]
    TargetLacksColumn { table: String, column: String },
    #[error("{table}.{column} is {on_source} on the source but {on_target} on the target; make the two schemas agree first")]
    ColumnTypeDiffers {
        table: String,
        column: String,
        on_source: String,
        on_target: String,
    },

    #[error("realm {realm} does not exist on the source ({table} has no such row); see realmguard realm list")]
    NotOnSource { realm: String, table: String },
    #[error(
        "realm {realm} does not exist here ({table} has no such row); see realmguard realm list"
    )]
    NotHere { realm: String, table: String },
    #[error("realm {realm} already has rows on the target (in {table}); delete them there first (realmguard realm delete --realm {realm}) or pick another target")]
    AlreadyOnTarget { realm: String, table: String },
    #[error("a global reference names a table outside the plan")]
    GlobalRefOutsidePlan,
    #[error("cannot read the keys {table} references")]
    ReadGlobalKeys {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    /// The referenced keys as a JSON parameter.
    #[error(transparent)]
    EncodeKeys { source: serde_json::Error },
    #[error("cannot look for {table} rows on the target")]
    LookForGlobalRows {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the target lacks the {table} row {columns} = {key} that the realm's {referencing} rows reference ({constraint}); copy that global row to the target first")]
    TargetLacksGlobalRow {
        table: String,
        columns: String,
        key: String,
        referencing: String,
        constraint: String,
    },
    #[error("cannot read {table}")]
    ReadTable {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot count the rows of {table}")]
    CountRows {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot estimate the rows of {table}")]
    Estimate {
        table: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot export the source's snapshot")]
    ExportSnapshot {
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot share the source's snapshot")]
    ShareSnapshot {
        #[source]
        source: Box<Error>,
    },
    #[error("cancelled before the commit; the target was rolled back")]
    CancelledBeforeCommit,
    #[error("the target's commit failed; nothing of the realm was kept there")]
    Commit {
        #[source]
        source: Box<Error>,
    },

    #[error("cancelled while deleting from {table}; rerun to finish")]
    CancelledDeleting { table: String },
    #[error("cannot delete from {table}")]
    Delete {
        table: String,
        #[source]
        source: Box<Error>,
    },
    #[error("realm {realm} is being moved to {target} (phase {phase}); rerun realmguard realm move to finish it instead")]
    BeingMoved {
        realm: String,
        target: String,
        phase: &'static str,
    },

    #[error("cannot create the fence function realmguard.realm_fence()")]
    FenceFunction {
        #[source]
        source: Box<Error>,
    },
    #[error("cannot fence {table}")]
    Fence {
        table: String,
        #[source]
        source: Box<Error>,
    },
    #[error("cannot drop the fence from {table}")]
    Unfence {
        table: String,
        #[source]
        source: Box<Error>,
    },

    /// Whether `realmguard.realm_moves` exists.
    #[error(transparent)]
    FindMoveLedger { source: sqlx::Error },
    #[error("cannot read realmguard.realm_moves")]
    ReadMoves {
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot record the move in realmguard.realm_moves")]
    RecordMove {
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot record phase {phase} in realmguard.realm_moves")]
    RecordPhase {
        phase: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// How long the fence has been up.
    #[error(transparent)]
    ReadFencedAt { source: sqlx::Error },
    #[error("realm {realm} is being moved to {target}, not to {to}; finish that move first (rerun it with --to that URL)")]
    OtherTarget {
        realm: String,
        target: String,
        to: String,
    },
    #[error("realm {realm} is on the target but differs from the source in {tables}; compare with realmguard realm diff before going on")]
    DiffersOnTarget { realm: String, tables: String },

    /// The settings and roles `--online` checks.
    #[error(transparent)]
    ReadRights { source: sqlx::Error },
    #[error("--online needs wal_level = logical on the source (it is {wal_level}): set it in postgresql.conf and restart, or move without --online")]
    WalLevel { wal_level: String },
    #[error("--online needs the source role {role} to have REPLICATION and CREATE on the database (to publish the realm's tables): ALTER ROLE {quoted} REPLICATION, or move without --online")]
    SourceRole { role: String, quoted: String },
    #[error("--online needs the target role {role} to be allowed to CREATE SUBSCRIPTION (superuser, or pg_create_subscription on 16+), or move without --online")]
    TargetRole { role: String },
    #[error("cannot create the publication on the source")]
    Publish {
        #[source]
        source: Box<Error>,
    },
    #[error("cannot create the subscription on the target")]
    Subscribe {
        #[source]
        source: Box<Error>,
    },
    /// The subscription's table states or the slot's position.
    #[error(transparent)]
    ReadReplication { source: sqlx::Error },
    #[error("the target has no table {table}")]
    NoTargetTable { table: String },
    #[error("{table}: {secs}s after the fence the target still does not hold what the source holds ({source_rows} rows against {target_rows}); the realm stays on the source, fenced (see docs/realm.md)")]
    NotDrained {
        table: String,
        secs: u64,
        source_rows: i64,
        target_rows: i64,
    },
    #[error("cancelled during {what}")]
    CancelledDuring { what: &'static str },
    #[error("{what} did not finish within {secs}s")]
    TimedOut { what: &'static str, secs: u64 },
}

impl Error {
    /// A statement's failure as the server describes it.
    pub(crate) fn statement(e: &sqlx::Error) -> Error {
        Error::Statement {
            message: crate::db::describe_pg_error(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{cause_chain, error_chain};

    #[test]
    fn a_wrapped_error_of_another_module_keeps_its_whole_chain() {
        // What `.context("cannot plan the source")` on the catalog's error printed.
        let catalog = || crate::catalog::Error::Read {
            what: "tables",
            source: sqlx::Error::Protocol("permission denied for table pg_class".into()),
        };
        let before = error_chain(&anyhow::Error::new(catalog()).context("cannot plan the source"));
        let err = Error::Plan {
            side: "source",
            source: Box::new(Error::Catalog { source: catalog() }),
        };
        assert_eq!(cause_chain(&err), before);
        assert_eq!(error_chain(&anyhow::Error::new(err)), before);
        assert!(
            before.starts_with("cannot plan the source: cannot read tables from pg_catalog: "),
            "{before}"
        );
        assert!(
            before.contains("permission denied for table pg_class"),
            "{before}"
        );
    }

    #[test]
    fn a_statement_under_a_variant_reads_what_failed_then_why() {
        let err = Error::Fence {
            table: "public.users".into(),
            source: Box::new(Error::Statement {
                message: "canceling statement due to lock timeout".into(),
            }),
        };
        assert_eq!(
            cause_chain(&err),
            "cannot fence public.users: canceling statement due to lock timeout"
        );
    }
}
