//! Typed reads of `pg_catalog`: the tables, columns, constraints and indexes the realm rules
//! judge, read in a constant number of queries whatever the size of the catalog (one query per
//! file under `sql/`, always with bind parameters).
//!
//! `pg_catalog` rather than `information_schema`: the latter only shows objects the current role
//! owns or has a privilege on, and a role that can read no table data must still be able to verify.
//!
//! The table, constraint and index queries come in two forms built from one file. The full form
//! (the `-- scope` line replaced by `$1 IS NULL`) is sent unprepared, one query per file, as a full
//! read happens once per connection. The scoped form is ONE statement (`sql/scoped.sql`, the files
//! spliced in as parts, each answering the text of an array of its rows, see `pgtext`): the
//! migrate guard runs it before every migration's COMMIT, where each round trip counts, and as a
//! prepared statement cached on the connection it soon runs on a generic plan with no parsing or
//! planning.

pub mod citus;
mod details;
mod error;
mod pgtext;
mod read;
pub mod rls;
mod rows;

pub use details::{needs_definition, triggers, Details, Trigger};
pub use error::Error;

use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};

type Result<T, E = Error> = std::result::Result<T, E>;

use read::{read_all, resolve_realms, scoped};

const TABLES_SQL: &str = include_str!("sql/tables.sql");
const CONSTRAINTS_SQL: &str = include_str!("sql/constraints.sql");
const INDEXES_SQL: &str = include_str!("sql/indexes.sql");
const REALMS_SQL: &str = include_str!("sql/realms.sql");
const INDEX_DEFS_SQL: &str = concat!(
    include_str!("sql/busy.sql"),
    include_str!("sql/index_defs.sql")
);
const SCOPED_SQL: &str = include_str!("sql/scoped.sql");
const NAMED_SQL: &str = include_str!("sql/named.sql");
/// Tables the current transaction changed, read from its locks (also a part of the scoped read).
pub const TOUCHED_SQL: &str = include_str!("sql/touched.sql");

/// The scoped read: `scoped.sql` with each line that holds only `{part}` replaced by that file,
/// its `= ANY($1::oid[])` filter turned into a lookup of the oids the statement has already
/// gathered (an array from an earlier part, so that every step stays an index lookup whatever
/// the plan's estimates).
fn scoped_statement() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| scoped_with(TOUCHED_SQL, NAMED_SQL, true))
}

/// `scoped.sql` with its parts spliced in, the changed tables read by `touched`, the tables
/// given by name by `named` (empty: none, the guard's read), and the index definition texts
/// read in the statement (`defs`) or left for the guard's function to read when some are wanted
/// (an empty part: the statement's `index_defs` is then `{}`).
fn scoped_with(touched: &str, named: &str, defs: bool) -> String {
    let part = |name: &str| -> String {
        let (sql, from) = match name {
            "realms" => (REALMS_SQL, ""),
            "touched" => (touched, ""),
            "named" => (named, ""),
            "tables" => (TABLES_SQL, "scope"),
            "constraints" => (CONSTRAINTS_SQL, "scope"),
            "indexes" => (INDEXES_SQL, "scope"),
            "index_defs" if defs => (INDEX_DEFS_SQL, "wanted"),
            "index_defs" => (NO_DEFS_SQL, ""),
            other => panic!("scoped.sql names an unknown part {{{other}}}"),
        };
        // ARRAY(...) rather than array_agg: a sublink, not an aggregate, so no Agg node to set up
        // at each execution (docs/architecture.md, "The guard").
        let lookup = format!("= ANY (ARRAY(SELECT oid FROM {from}))");
        sql.trim_end()
            .lines()
            .filter(|l| !l.trim_end().ends_with(FULL_READ_ONLY))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("= ANY($1::oid[]) -- scope", &lookup)
            .replace("= ANY($1::oid[])", &lookup)
    };
    SCOPED_SQL
        .lines()
        .map(|l| {
            let t = l.trim();
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) => part(name),
                None => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The mark of a line of a part that only the full read needs (a filter the scoped read's
/// tables pass already); the scoped read leaves such lines out.
const FULL_READ_ONLY: &str = "-- full read only";
/// The mark of a line only the scoped read has (the full read leaves it out).
const SCOPED_READ_ONLY: &str = "-- scoped read only";

/// The index definitions' part when the statement does not read them: no rows, same columns.
const NO_DEFS_SQL: &str =
    "SELECT NULL::oid AS indexrelid, NULL::text[] AS key_defs, NULL::text AS predicate WHERE false";

/// The every-table form of a scoped query: each line marked `-- scope` becomes `AND $1 IS NULL`
/// (still a typed parameter, so the same binds fit both forms).
fn full_form(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_end().ends_with(SCOPED_READ_ONLY))
        .map(|l| {
            if l.trim_end().ends_with("-- scope") {
                "  AND $1::oid[] IS NULL"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Forms {
    tables: String,
    constraints: String,
    indexes: String,
}

fn full_forms() -> &'static Forms {
    static FORMS: std::sync::OnceLock<Forms> = std::sync::OnceLock::new();
    FORMS.get_or_init(|| Forms {
        tables: full_form(TABLES_SQL),
        constraints: full_form(CONSTRAINTS_SQL),
        indexes: full_form(INDEXES_SQL),
    })
}

/// A column number (`pg_attribute.attnum`); 0 in an index key means an expression.
pub type AttNum = i16;

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub num: AttNum,
    pub name: String,
    pub not_null: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Ordinary,
    Partitioned,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub kind: TableKind,
    /// A partition: judged through its partitioned root, never on its own.
    pub is_partition: bool,
    pub rls_enabled: bool,
    /// Partition key columns of a partitioned table (0 for an expression).
    pub partition_key: Vec<AttNum>,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// This table's realm column name: the first of `names` it has, else the first of `names`
    /// (the one a backfill would add).
    pub fn realm_column<'n>(&self, names: &'n crate::config::RealmColumns) -> &'n str {
        names.of(|n| self.column(n).is_some())
    }

    pub fn column_by_num(&self, num: AttNum) -> Option<&Column> {
        self.columns.iter().find(|c| c.num == num)
    }

    /// Names of the given columns, `?` for one that does not exist (an expression).
    pub fn column_names(&self, nums: &[AttNum]) -> Vec<String> {
        nums.iter()
            .map(|n| {
                self.column_by_num(*n)
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| "?".into())
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    ForeignKey,
    Check,
    Exclusion,
}

/// `ON DELETE` / `ON UPDATE` action of a foreign key (`pg_constraint.confdeltype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FkAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl FkAction {
    fn from_code(c: &str) -> FkAction {
        match c {
            "r" => FkAction::Restrict,
            "c" => FkAction::Cascade,
            "n" => FkAction::SetNull,
            "d" => FkAction::SetDefault,
            _ => FkAction::NoAction,
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub ref_table: u32,
    /// Referenced columns, pairwise with the constraint's `columns`.
    pub ref_columns: Vec<AttNum>,
    pub on_delete: FkAction,
    pub on_update: FkAction,
    /// `MATCH FULL` (otherwise SIMPLE; PARTIAL is not implemented by PostgreSQL).
    pub match_full: bool,
    pub deferrable: bool,
    pub deferred: bool,
    /// The unique index on the referenced table this key depends on (`conindid`): that index
    /// cannot be dropped while the key exists.
    pub index: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub oid: u32,
    pub table: u32,
    pub name: String,
    pub kind: ConstraintKind,
    /// Constrained columns in declaration order (empty for a check on no column).
    pub columns: Vec<AttNum>,
    pub foreign: Option<ForeignKey>,
    pub validated: bool,
    /// `DEFERRABLE` / `INITIALLY DEFERRED` (foreign keys also carry it in `foreign`).
    pub deferrable: bool,
    pub deferred: bool,
    /// `conindid`: for a primary key, unique or exclusion constraint its own index; for a foreign
    /// key the referenced unique index (also in `foreign.index`); 0 for a check.
    pub index: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub oid: u32,
    pub table: u32,
    pub name: String,
    pub unique: bool,
    pub primary: bool,
    pub valid: bool,
    pub partial: bool,
    /// Key columns (INCLUDE columns left out); 0 marks an expression.
    pub key_columns: Vec<AttNum>,
    /// The constraint this index implements (primary key, unique, exclusion), if any.
    pub constraint: Option<String>,
    /// Key column/expression texts and predicate, read only for partial or expression unique
    /// indexes whose key lacks the realm column (the ones unique-without-realm rebuilds), and not
    /// when another session holds or awaits ACCESS EXCLUSIVE on them (deparsing takes a lock).
    pub key_defs: Vec<String>,
    pub predicate: Option<String>,
}

/// Where the configured realms table stands.
#[derive(Debug, Clone, PartialEq)]
pub enum RealmsTable {
    /// `realms_table = ""`: the realm-fk rule is off.
    Disabled,
    Found(u32),
    /// Configured but absent; the name it would have.
    Missing {
        schema: String,
        name: String,
    },
}

/// The part of the catalog the rules read.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub tables: Vec<Table>,
    pub constraints: Vec<Constraint>,
    pub indexes: Vec<Index>,
    pub realms: RealmsTable,
    /// The type of the realms table's single-column primary key (`format_type` text), the type a
    /// realm column must have.
    pub realms_key_type: Option<String>,
    /// For a scoped read: the tables to report on (the others are only context). `None`: all.
    pub scope: Option<HashSet<u32>>,
    /// Round trips this read took (the benchmark checks it does not grow with the catalog).
    pub queries: usize,
    /// NOT VALID not-null names (every read), and what only the backfill reads.
    pub details: Details,
}

impl Catalog {
    /// An empty catalog, for building one by hand in tests.
    pub fn empty() -> Catalog {
        Catalog {
            tables: Vec::new(),
            constraints: Vec::new(),
            indexes: Vec::new(),
            realms: RealmsTable::Disabled,
            realms_key_type: None,
            scope: None,
            queries: 0,
            details: Details::default(),
        }
    }

    pub fn table_map(&self) -> HashMap<u32, &Table> {
        self.tables.iter().map(|t| (t.oid, t)).collect()
    }

    /// Read every user table.
    /// `realm_column` only decides which unique indexes get their definition text read.
    pub async fn load(
        conn: &mut PgConnection,
        realms_table: &str,
        realm_column: &crate::config::RealmColumns,
    ) -> Result<Catalog> {
        let mut queries = 0;
        let (realms, key_type) = resolve_realms(conn, realms_table, &mut queries).await?;
        let mut cat = read_all(conn, realm_column, &mut queries).await?;
        cat.realms = realms;
        cat.realms_key_type = key_type;
        cat.queries = queries;
        Ok(cat)
    }

    /// Read the given tables (raw schema, name), the tables linked to them by a foreign key in
    /// either direction (reported on too), and as context the tables those reference and the
    /// realms table. Tables that do not exist are ignored. One round trip.
    pub async fn load_scoped(
        conn: &mut PgConnection,
        realms_table: &str,
        realm_column: &crate::config::RealmColumns,
        tables: &[(String, String)],
    ) -> Result<Catalog> {
        let (_, cat) = scoped(conn, realms_table, realm_column, tables, None).await?;
        Ok(cat)
    }

    /// [`Catalog::load_scoped`] of the tables the current transaction changed (see
    /// `sql/touched.sql`), with those tables (raw schema, name): the migrate guard's read, in one
    /// round trip.
    /// Runs inside that transaction, and plans the statement without sequential scans: the
    /// guard's prepared statement gets its generic plan after a few migrations, when a fresh
    /// database's catalog is a few pages that a sequential scan reads fastest, and keeps it while
    /// the migrations grow the catalog to thousands of rows; index lookups are what this read
    /// needs at any size. The setting is turned off transaction-locally in the round trip before
    /// and set back by the statement itself once planned, so that what follows in the migration's
    /// transaction (deferred triggers at COMMIT) is planned as usual.
    pub async fn load_changed(
        conn: &mut PgConnection,
        realms_table: &str,
        realm_column: &crate::config::RealmColumns,
    ) -> Result<(Vec<(String, String)>, Catalog)> {
        // The scoped read's plan wants index scans whatever the statistics say (a fresh cluster's
        // catalog looks tiny to the planner).
        let was: String = sqlx::query_scalar(SEQSCAN_OFF_SQL)
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::SetUp)?;
        let (touched, mut cat) = scoped(conn, realms_table, realm_column, &[], Some(&was)).await?;
        cat.queries += 1;
        Ok((touched, cat))
    }
}

/// Turns enable_seqscan off for the rest of the transaction and returns the value it had, for
/// the scoped read to set back (see `sql/scoped.sql`, parameter $6).
pub const SEQSCAN_OFF_SQL: &str =
    "WITH was AS MATERIALIZED (SELECT current_setting('enable_seqscan') AS v)
 SELECT v FROM was WHERE set_config('enable_seqscan', 'off', true) IS NOT NULL";

/// The name the migrate runner prepares the guard's read under, once per session
/// ([`guard_prepare_sql`]), so that a migration's batch can `EXECUTE` it: the read then costs no
/// round trip of its own, and keeps its plans for the session (docs/architecture.md, "The guard").
/// It is also the name of the session's temporary function behind it.
pub const GUARD_STATEMENT: &str = "realmguard_guard";

/// The guard's end of a migration's batch: the prepared read of the tables the transaction
/// changed. One statement, no arguments. Its one row is read by [`Catalog::from_guard_row`].
pub const GUARD_EXECUTE_SQL: &str = "EXECUTE realmguard_guard";

/// The guard's read, prepared and run once, in one transaction: a temporary PL/pgSQL function
/// (`pg_temp.realmguard_guard()`) that reads the changed tables from the locks and, only when
/// there are any, runs the scoped read of them, and the `PREPARE` of its call.
///
/// Half the migrations of a real project change no table (functions, views, data): for those
/// the function stops after the lock read, so they never start the scoped read's plan of some
/// 150 nodes (its executor start-up alone cost more than the lock read). PL/pgSQL keeps each
/// statement's plan for the session; `plan_cache_mode = force_generic_plan` makes it plan the
/// scoped read once (its one parameter, the changed tables, would otherwise get five custom
/// plans, planned inside the migrations), and `enable_seqscan = off`, set on the function, makes
/// every plan, and every replan after an invalidation, one of index lookups whatever the
/// statistics say (a fresh database's catalog looks tiny to the planner, and the plan is kept
/// while the migrations grow it to thousands of rows).
///
/// The index definition texts (wanted only for a unique index with an expression or a predicate
/// whose key lacks the realm column) are read by a statement of their own, only when some are
/// wanted: in the scoped read, setting up their part's plan cost 6% of each call.
///
/// A role without the TEMPORARY privilege cannot create the function; the runner then prepares
/// [`guard_prepare_plain_sql`] instead.
pub fn guard_prepare_sql(realms_table: &str) -> String {
    let touched = bind_literals(TOUCHED_SQL, &[]);
    let scoped = bind_literals(
        &scoped_with(GUARD_TOUCHED, "", false),
        &guard_arguments(realms_table).each_ref().map(String::as_str),
    );
    let defs = bind_literals(INDEX_DEFS_SQL, &["rg_wanted"]);
    format!(
        "BEGIN;\n\
         CREATE OR REPLACE FUNCTION pg_temp.{GUARD_STATEMENT}()\n\
         RETURNS TABLE (default_schema text, realms_oid oid, key_type text, touched text,\n\
         scope text, tables text, constraints text, indexes text, index_defs text, restored text)\n\
         LANGUAGE plpgsql VOLATILE\n\
         SET enable_seqscan = off SET plan_cache_mode = force_generic_plan\n\
         AS $realmguard$\n\
         #variable_conflict use_column\n\
         DECLARE rg_oids oid[]; rg_schemas text[]; rg_names text[]; rg_wanted oid[];\n\
         BEGIN\n\
         SELECT array_agg(t.oid), array_agg(t.schema), array_agg(t.name)\n\
         INTO rg_oids, rg_schemas, rg_names FROM (\n{touched}) AS t;\n\
         IF rg_oids IS NULL THEN RETURN NEXT; RETURN; END IF;\n\
         SELECT s.default_schema, s.realms_oid, s.key_type, s.touched, s.scope, s.tables,\n\
         s.constraints, s.indexes, s.wanted\n\
         INTO default_schema, realms_oid, key_type, touched, scope, tables,\n\
         constraints, indexes, rg_wanted FROM (\n{scoped}) AS s;\n\
         IF cardinality(rg_wanted) > 0 THEN\n\
         index_defs := ARRAY(SELECT def FROM (\n{defs}) AS def)::text;\n\
         END IF;\n\
         RETURN NEXT;\n\
         END\n\
         $realmguard$;\n\
         PREPARE {GUARD_STATEMENT} AS SELECT * FROM pg_temp.{GUARD_STATEMENT}();\n\
         {GUARD_EXECUTE_SQL};\n\
         COMMIT"
    )
}

/// Where the function's scoped read takes the changed tables from: the lock read's answer.
const GUARD_TOUCHED: &str =
    "SELECT * FROM unnest(rg_oids, rg_schemas, rg_names) AS g(oid, schema, name)";

/// The guard's read without the function, for a role that may not create temporary objects:
/// `PREPARE` of the scoped read with the guard's arguments written in (no parameters, so it
/// runs on the one generic plan made at its first execution, here, with `enable_seqscan` off).
/// Every migration then pays the whole plan's start-up, tables changed or not.
pub fn guard_prepare_plain_sql(realms_table: &str) -> String {
    let sql = bind_literals(
        &scoped_with(TOUCHED_SQL, "", true),
        &guard_arguments(realms_table).each_ref().map(String::as_str),
    );
    format!(
        "BEGIN;\n\
         SET LOCAL enable_seqscan = off;\n\
         PREPARE {GUARD_STATEMENT} AS\n{sql};\n\
         {GUARD_EXECUTE_SQL};\n\
         COMMIT"
    )
}

/// The guard's arguments to the scoped read, as literals: the realms table, no tables by name,
/// the changed tables, nothing to set back.
fn guard_arguments(realms_table: &str) -> [String; 6] {
    let (schema, name) = match realms_table {
        "" => (None, None),
        t => {
            let (s, n) = split_qualified(t);
            (s, Some(n))
        }
    };
    let lit = |v: Option<&str>| v.map_or("NULL".to_string(), crate::db::quote_literal);
    [
        lit(schema),
        lit(name),
        "'{}'".into(),
        "'{}'".into(),
        "true".into(),
        "NULL".into(),
    ]
}

/// `sql` with each parameter `$n` replaced by `values[n - 1]`, in one pass (a value is never
/// scanned again). Comment lines are dropped first, as they mention parameters too; the
/// statements of `sql/` hold no string or dollar quote with a `$` in it.
fn bind_literals(sql: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len());
    for line in sql.lines().filter(|l| !l.trim_start().starts_with("--")) {
        let mut rest = line;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let digits = rest[at + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - at - 1);
            let value = rest[at + 1..at + 1 + digits]
                .parse::<usize>()
                .ok()
                .and_then(|n| values.get(n.checked_sub(1)?));
            match value {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[at..at + 1 + digits]),
            }
            rest = &rest[at + 1 + digits..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

impl Catalog {
    /// [`Catalog::load_changed`] from the row of [`GUARD_EXECUTE_SQL`].
    pub fn from_guard_row(
        row: &sqlx::postgres::PgRow,
        realms_table: &str,
        realm_column: &crate::config::RealmColumns,
    ) -> Result<(Vec<(String, String)>, Catalog)> {
        read::decode_scoped(row, realms_table, realm_column)
    }
}

/// The text form of an `int2vector` ("1 2"); an unparsable element becomes 0 (an expression).
fn int2vector(text: &str) -> Vec<AttNum> {
    text.split_whitespace()
        .map(|n| n.parse().unwrap_or(0))
        .collect()
}

/// `"schema.table"` (split at the first dot, raw names) or a bare name.
fn split_qualified(name: &str) -> (Option<&str>, &str) {
    match name.split_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, name),
    }
}

/// The error of a failed query of `what`.
pub(crate) fn read(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Read { what, source }
}

#[cfg(test)]
mod tests;
