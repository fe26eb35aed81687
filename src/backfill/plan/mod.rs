//! The pure planner: catalog model + config → the ordered online steps, each with its SQL and
//! the lock it takes. No I/O here, so every ordering rule is unit-tested without a database.
//!
//! The order follows `docs/online-ddl.md`: per table (parents before children) add the column, install
//! the fill trigger, fill old rows, NOT NULL through a validated check — or, when every old row's
//! realm is certain (the default realm), add the column NOT NULL with that value kept in the
//! catalog and the trigger, in one instant step with nothing rewritten; then the realm foreign
//! keys; then the unique `(id, realm)` indexes, built concurrently only after every fill (an index
//! containing the realm column would make each batch take key locks that stall child inserts);
//! then per foreign key: supporting index, composite key `NOT VALID`, validate, drop the old one;
//! and only once no foreign key depends on an old primary key, the primary-key swaps. Nothing is
//! ever dropped with CASCADE. Steps already done (read from the catalog) are left out, so a
//! converted database plans to nothing.

//!
//! One file per group of phases: `scope` (the realms table, which tables, their keys, parents
//! and order), `column` (column, trigger, fill, NOT NULL), `foreign_keys` (the realm keys, the
//! composite keys, cleanup), `keys` (unique indexes, unique keys, primary keys), `finish`
//! (`backfill finish`'s drops). Each phase appends its steps to the shared [`Ctx`].

mod column;
mod finish;
mod foreign_keys;
mod keys;
mod scope;
#[cfg(test)]
mod tests;

pub use finish::finish_steps;
pub use foreign_keys::on_only_index;

use super::view::{Catalog, Constraint, Table};
use crate::config::Config;
use crate::db::quote_ident;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Realms,
    Column,
    Trigger,
    Fill,
    NotNull,
    RealmFk,
    UniqueIndex,
    ForeignKey,
    UniqueKey,
    PrimaryKey,
    Cleanup,
    /// `backfill finish`: the fill triggers dropped once the application writes the realm itself.
    Finish,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Realms => "realms",
            Phase::Column => "column",
            Phase::Trigger => "trigger",
            Phase::Fill => "fill",
            Phase::NotNull => "not-null",
            Phase::RealmFk => "realm-fk",
            Phase::UniqueIndex => "unique-index",
            Phase::ForeignKey => "foreign-key",
            Phase::UniqueKey => "unique-key",
            Phase::PrimaryKey => "primary-key",
            Phase::Cleanup => "cleanup",
            Phase::Finish => "finish",
        })
    }
}

/// The strongest lock a step takes (`docs/online-ddl.md`, "Locks per step").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lock {
    /// Blocks everything, reads too: taken only for an instant, behind a short lock_timeout.
    AccessExclusive,
    /// Blocks writes: taken only for an instant, behind a short lock_timeout.
    ShareRowExclusive,
    /// Blocks writes (`CREATE INDEX … ON ONLY` a partitioned table): only for an instant, behind
    /// a short lock_timeout.
    Share,
    /// Blocks other DDL and VACUUM, not reads or writes: may be held for a scan.
    ShareUpdateExclusive,
    /// Row locks of one short batch at a time.
    RowLocks,
    /// Touches only the realms table's rows or creates it.
    None,
}

impl Lock {
    pub fn name(self) -> &'static str {
        match self {
            Lock::AccessExclusive => "ACCESS EXCLUSIVE",
            Lock::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            Lock::Share => "SHARE",
            Lock::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Lock::RowLocks => "row locks",
            Lock::None => "none",
        }
    }

    /// Whether waiting for this lock queues the application's reads or writes behind us, so
    /// the wait must be bounded by the short `--lock-timeout`.
    pub fn blocks_traffic(self) -> bool {
        matches!(
            self,
            Lock::AccessExclusive | Lock::ShareRowExclusive | Lock::Share
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// One transaction: `SET LOCAL lock_timeout`, the SQL, the step's ledger row, commit.
    Sql {
        sql: String,
        /// Refuse (never CASCADE) while a foreign key still depends on this index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        no_fk_depends_on: Option<String>,
    },
    /// `CREATE [UNIQUE] INDEX CONCURRENTLY`, outside any transaction; an invalid leftover of
    /// the same name is dropped and rebuilt, a valid one is kept.
    ConcurrentIndex { index: String, sql: String },
    /// `DROP INDEX CONCURRENTLY IF EXISTS`, outside any transaction (idempotent).
    DropIndexConcurrently { index: String, sql: String },
    /// Keyset batches over `key` sized by time; `sql` takes `$1` (exclusive lower) and `$2`
    /// (inclusive upper) bounds.
    Fill { key: String, sql: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub schema: String,
    pub table: String,
    pub phase: Phase,
    pub title: String,
    pub lock: Lock,
    /// How long and on what, for humans: "instant", "scan; reads and writes go on", ….
    pub lock_note: String,
    /// Tables whose lock holders are named when the lock cannot be taken.
    pub relations: Vec<(String, String)>,
    pub action: Action,
    /// A step on one partition (`schema.table`) of this partitioned table, which stands for it
    /// in reports and in the end check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<(String, String)>,
}

impl Step {
    pub fn sql(&self) -> &str {
        match &self.action {
            Action::Sql { sql, .. }
            | Action::ConcurrentIndex { sql, .. }
            | Action::DropIndexConcurrently { sql, .. }
            | Action::Fill { sql, .. } => sql,
        }
    }

    pub fn lock_text(&self) -> String {
        format!("{} ({})", self.lock.name(), self.lock_note)
    }

    pub fn display_table(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// How a table's old rows get their realm.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Derive {
    /// A root table: the configured default realm.
    Default { realm: String },
    /// A child: the parent row's realm, through this foreign key.
    Parent {
        constraint: String,
        schema: String,
        table: String,
    },
    /// The column is already filled and NOT NULL.
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TablePlan {
    pub schema: String,
    pub table: String,
    pub key: String,
    pub derive: Derive,
    /// Whether old rows are written in keyset batches; false when they take the realm from
    /// the column's catalog default (or are already filled).
    pub rewrite: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub realm_column: String,
    pub realm_type: String,
    pub tables: Vec<TablePlan>,
    pub steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("realm_scoped lists `{0}`, but no such table exists in the checked schemas")]
    UnknownTable(String),
    #[error("the realms table {0} has no single-column primary key for {1} to reference")]
    RealmsKey(String, String),
    #[error("{table} is a partitioned table partitioned by ({key}), which is not within its new primary key ({id}, {column}); backfill converts a partitioned table only when it is partitioned by {id}, by {column} or by both: convert it by hand or leave it out with `exclude`")]
    PartitionKey {
        table: String,
        key: String,
        id: String,
        column: String,
    },
    #[error("{table} is a partitioned table partitioned by its realm column {column}, which is not filled and NOT NULL yet (a row cannot be filled into another partition); fill it and set it NOT NULL by hand, or leave the table out with `exclude`")]
    PartitionedByRealm { table: String, column: String },
    #[error("{0} is a partitioned table whose partition {1} is itself partitioned; backfill converts only partitioned tables whose partitions are plain tables: convert it by hand or leave it out with `exclude`")]
    SubPartitioned(String, String),
    #[error("{0} is a partitioned table that a foreign key of itself or of a partitioned table references ({1}); backfill cannot convert such a table yet: convert it by hand or leave it out with `exclude`")]
    PartitionedReferenced(String, String),
    #[error("{0} is a partitioned table with the unique index {1} beside its primary key; backfill converts a partitioned table only when its primary key is its one unique key: convert it by hand or leave it out with `exclude`")]
    PartitionedUnique(String, String),
    #[error("{0} has no single-column integer primary key to walk in keyset batches (found: {1}); backfill cannot convert it")]
    NoIntegerKey(String, String),
    #[error("{table} has {count} foreign keys to realm tables ({names}); name the one to derive {column} through in the config: [backfill.parent] \"{table}\" = \"<constraint>\"")]
    AmbiguousParent {
        table: String,
        count: usize,
        names: String,
        column: String,
    },
    #[error("[backfill.parent] names `{constraint}` for {table}, but {table} has no foreign key of that name to a realm table")]
    UnknownParent { table: String, constraint: String },
    #[error("the tables {0} derive their realms from each other in a cycle; break it with [backfill.parent]")]
    Cycle(String),
    #[error("{table} has the unique index {index} on an expression or with a WHERE clause and its definition could not be read (another session held the table in ACCESS EXCLUSIVE mode) or taken apart; plan again when the table is free, or make the index include {column} by hand")]
    UnsupportedUnique {
        table: String,
        index: String,
        column: String,
    },
}

/// A table to convert: the keyset column and where the realm comes from.
struct Info<'a> {
    t: &'a Table,
    key: String,
    needs_fill: bool,
    parent: Option<&'a Constraint>,
}

/// What the phases share: the catalog and config, what the scope phase decided, and the steps
/// so far.
struct Ctx<'a> {
    cat: &'a Catalog,
    /// The realm column names; each table's is `Table::realm_column` (see `rc_at`).
    cols: &'a crate::config::RealmColumns,
    default_realm: &'a str,
    realm_type: String,
    /// The realms table the realm foreign keys reference: schema, name, key column.
    realms: Option<(String, String, String)>,
    /// Every table that becomes realm-scoped.
    set: BTreeSet<(String, String)>,
    infos: Vec<Info<'a>>,
    /// `infos` in the order they are filled (parents first).
    order: Vec<usize>,
    /// Whether a table's old rows take the realm from the column's catalog default.
    catalog_default: Vec<bool>,
    steps: Vec<Step>,
    /// Index names this plan has given out (keys::free_index_name).
    chosen: BTreeSet<(String, String)>,
    /// Composite foreign keys to a partitioned table, added in its primary-key swap.
    deferred: Vec<Deferred>,
}

/// A composite foreign key that replaces `old` on `child` and references a partitioned table:
/// it needs the parent's valid `(id, realm)` index, which only the parent's primary-key swap
/// makes, and the swap needs `old` gone (docs/backfill-design.md, "Partitioned tables").
struct Deferred {
    child: (String, String),
    old: String,
    name: String,
    columns: Vec<String>,
    target: (String, String),
    ref_columns: Vec<String>,
}

/// The plan for `cat` under `cfg`.
pub fn plan(cat: &Catalog, cfg: &Config) -> Result<Plan, PlanError> {
    let cols = &cfg.realm_column;
    let rc = cols.first();
    let mut steps = Vec::new();
    let (realms, realm_type) = scope::realms(cat, cfg, &mut steps)?;
    let (set, targets) = scope::targets(cat, cfg, realms.as_ref())?;
    let infos = scope::infos(&targets, cfg, &set)?;
    let (parent_at, order) = scope::order(&infos)?;
    let catalog_default = scope::catalog_default(&infos, &order, &parent_at, cols);
    let mut ctx = Ctx {
        cat,
        cols,
        default_realm: cfg.backfill.default_realm.as_str(),
        realm_type,
        realms,
        set,
        infos,
        order,
        catalog_default,
        steps,
        chosen: BTreeSet::new(),
        deferred: Vec::new(),
    };
    let mut tables = column::phase(&mut ctx);
    foreign_keys::realm_fks(&mut ctx);
    let unique = keys::unique_indexes(&mut ctx)?;
    let redundant = foreign_keys::composite_fks(&mut ctx);
    keys::unique_keys(&mut ctx, &unique);
    keys::primary_keys(&mut ctx, &unique);
    foreign_keys::cleanup(&mut ctx, redundant);
    let Ctx {
        steps, realm_type, ..
    } = ctx;
    // Tables that need nothing are no news.
    tables.retain(|tp| {
        steps
            .iter()
            .any(|s| s.schema == tp.schema && s.table == tp.table)
    });
    Ok(Plan {
        realm_column: rc.to_string(),
        realm_type,
        tables,
        steps,
    })
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let a: BTreeSet<&String> = a.iter().collect();
    let b: BTreeSet<&String> = b.iter().collect();
    a == b && a.len() == b.len()
}

fn cols(list: &[String]) -> String {
    list.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_integer(type_name: &str) -> bool {
    matches!(type_name, "smallint" | "integer" | "bigint")
}

fn fk_target(f: &Constraint) -> (String, String) {
    (
        f.ref_schema.clone().unwrap_or_default(),
        f.ref_table.clone().unwrap_or_default(),
    )
}

/// The realm column of the table `target` (schema, name): its own, or the first name for a
/// table that has none yet (it gets that one).
fn rc_at<'n>(
    cat: &Catalog,
    cols: &'n crate::config::RealmColumns,
    target: &(String, String),
) -> &'n str {
    cat.table(&target.0, &target.1)
        .map(|t| t.realm_column(cols))
        .unwrap_or_else(|| cols.first())
}

/// Foreign keys of `t` into realm tables that do not carry the realm column yet.
fn old_fks<'a>(
    t: &'a Table,
    rc: &'a str,
    set: &'a BTreeSet<(String, String)>,
) -> impl Iterator<Item = &'a Constraint> + 'a {
    t.foreign_keys()
        .filter(move |f| set.contains(&fk_target(f)) && !f.columns.iter().any(|c| c == rc))
}

/// The comment every fill trigger's function carries: how `backfill finish` (and the planner,
/// through `catalog::triggers`) tells the triggers a backfill installed from the application's own.
pub const FILL_MARKER: &str = "-- realmguard backfill: rows written without";
