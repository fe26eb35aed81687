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
//! spliced in as parts, each answering a JSON array): the migrate guard runs it before every
//! migration's COMMIT, where each round trip counts, and as a prepared statement cached on the
//! connection it soon runs on a generic plan with no parsing or planning.

pub mod citus;
mod details;
mod error;
pub mod rls;

pub use details::{needs_definition, triggers, Details, Trigger};
pub use error::Error;

use serde::Deserialize;
use sqlx::postgres::types::Oid;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::collections::{HashMap, HashSet};

type Result<T, E = Error> = std::result::Result<T, E>;

const TABLES_SQL: &str = include_str!("sql/tables.sql");
const CONSTRAINTS_SQL: &str = include_str!("sql/constraints.sql");
const INDEXES_SQL: &str = include_str!("sql/indexes.sql");
const REALMS_SQL: &str = include_str!("sql/realms.sql");
const INDEX_DEFS_SQL: &str = concat!(
    include_str!("sql/busy.sql"),
    include_str!("sql/index_defs.sql")
);
const SCOPED_SQL: &str = include_str!("sql/scoped.sql");
/// Tables the current transaction changed, read from its locks (also a part of the scoped read).
pub const TOUCHED_SQL: &str = include_str!("sql/touched.sql");

/// The scoped read: `scoped.sql` with each line that holds only `{part}` replaced by that file,
/// its `= ANY($1::oid[])` filter turned into a lookup of the oids the statement has already
/// gathered (an array from an earlier part, so that every step stays an index lookup whatever
/// the plan's estimates).
fn scoped_statement() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let part = |name: &str| -> String {
            let (sql, from) = match name {
                "realms" => (REALMS_SQL, ""),
                "touched" => (TOUCHED_SQL, ""),
                "tables" => (TABLES_SQL, "scope"),
                "constraints" => (CONSTRAINTS_SQL, "scope"),
                "indexes" => (INDEXES_SQL, "scope"),
                "index_defs" => (INDEX_DEFS_SQL, "wanted"),
                other => panic!("scoped.sql names an unknown part {{{other}}}"),
            };
            let lookup = format!("= ANY ((SELECT array_agg(oid) FROM {from})::oid[])");
            sql.trim_end()
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
    })
}

/// The every-table form of a scoped query: each line marked `-- scope` becomes `AND $1 IS NULL`
/// (still a typed parameter, so the same binds fit both forms).
fn full_form(sql: &str) -> String {
    sql.lines()
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
        seqscan_was: Option<String>,
    ) -> Result<(Vec<(String, String)>, Catalog)> {
        // The scoped read's plan wants index scans whatever the statistics say (a fresh cluster's
        // catalog looks tiny to the planner). `seqscan_was` is the enable_seqscan value a caller
        // already saved while turning it off in an earlier round trip of its own (the migrate
        // runner does it in the batch that runs the migration); otherwise it is done here.
        let was = match seqscan_was {
            Some(was) => was,
            None => sqlx::query_scalar(SEQSCAN_OFF_SQL)
                .fetch_one(&mut *conn)
                .await
                .map_err(Error::SetUp)?,
        };
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

/// [`SEQSCAN_OFF_SQL`] for the migrate runner's batch, plus whether the scoped read would find
/// any table at all: `sql/touched.sql` itself, under EXISTS. When it finds none the guard skips
/// the read, so a migration of functions, data or DO blocks costs no more round trips than
/// without the guard.
pub const GUARD_SETUP_SQL: &str = concat!(
    "WITH was AS MATERIALIZED (SELECT current_setting('enable_seqscan') AS v)\n",
    "SELECT v, EXISTS (\n",
    include_str!("sql/touched.sql"),
    "\n) AS changed\n",
    "FROM was WHERE set_config('enable_seqscan', 'off', true) IS NOT NULL"
);

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

async fn resolve_realms(
    conn: &mut PgConnection,
    realms_table: &str,
    queries: &mut usize,
) -> Result<(RealmsTable, Option<String>)> {
    if realms_table.is_empty() {
        return Ok((RealmsTable::Disabled, None));
    }
    let (schema, name) = split_qualified(realms_table);
    let row = sqlx::query(REALMS_SQL)
        .bind(schema)
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::Realms)?;
    *queries += 1;
    let oid: Option<Oid> = row.try_get("oid")?;
    Ok(realms_from(
        realms_table,
        oid.map(|o| o.0),
        row.try_get("key_type")?,
        row.try_get("default_schema")?,
    ))
}

/// Where the configured realms table stands, from what `realms.sql` answered.
fn realms_from(
    realms_table: &str,
    oid: Option<u32>,
    key_type: Option<String>,
    default_schema: Option<String>,
) -> (RealmsTable, Option<String>) {
    if realms_table.is_empty() {
        return (RealmsTable::Disabled, None);
    }
    let (schema, name) = split_qualified(realms_table);
    let realms = match oid {
        Some(oid) => RealmsTable::Found(oid),
        None => RealmsTable::Missing {
            schema: schema
                .map(str::to_string)
                .or(default_schema)
                .unwrap_or_else(|| "public".into()),
            name: name.to_string(),
        },
    };
    (realms, key_type)
}

// One row of each catalog query, as the full read decodes it from rows and the scoped read from
// the JSON arrays of its single row (same column names, so `json_agg` of the part gives these).

/// An `oid` in JSON: `to_json` writes it as a string.
fn json_oid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Num(u32),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Num(n) => Ok(n),
        Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(serde::Deserialize)]
struct TableRow {
    #[serde(deserialize_with = "json_oid")]
    oid: u32,
    schema: String,
    name: String,
    kind: String,
    relispartition: bool,
    relrowsecurity: bool,
    partition_key: Option<String>,
    nums: Option<Vec<i16>>,
    names: Option<Vec<String>>,
    not_null: Option<Vec<bool>>,
}

impl TableRow {
    fn decode(r: &PgRow) -> Result<TableRow, sqlx::Error> {
        Ok(TableRow {
            oid: r.try_get::<Oid, _>("oid")?.0,
            schema: r.try_get("schema")?,
            name: r.try_get("name")?,
            kind: r.try_get("kind")?,
            relispartition: r.try_get("relispartition")?,
            relrowsecurity: r.try_get("relrowsecurity")?,
            partition_key: r.try_get("partition_key")?,
            nums: r.try_get("nums")?,
            names: r.try_get("names")?,
            not_null: r.try_get("not_null")?,
        })
    }

    fn table(self) -> Table {
        let mut columns: Vec<Column> = self
            .nums
            .unwrap_or_default()
            .into_iter()
            .zip(self.names.unwrap_or_default())
            .zip(self.not_null.unwrap_or_default())
            .map(|((num, name), not_null)| Column {
                num,
                name,
                not_null,
            })
            .collect();
        // The query does not sort (cheaper here than a sort per table on the server).
        columns.sort_by_key(|c| c.num);
        Table {
            oid: self.oid,
            schema: self.schema,
            name: self.name,
            kind: if self.kind == "p" {
                TableKind::Partitioned
            } else {
                TableKind::Ordinary
            },
            is_partition: self.relispartition,
            rls_enabled: self.relrowsecurity,
            partition_key: self
                .partition_key
                .as_deref()
                .map(int2vector)
                .unwrap_or_default(),
            columns,
        }
    }
}

#[derive(serde::Deserialize)]
struct ConstraintRow {
    #[serde(deserialize_with = "json_oid")]
    oid: u32,
    #[serde(deserialize_with = "json_oid")]
    conrelid: u32,
    name: String,
    kind: String,
    conkey: Option<Vec<i16>>,
    #[serde(deserialize_with = "json_oid")]
    confrelid: u32,
    #[serde(deserialize_with = "json_oid")]
    conindid: u32,
    confkey: Option<Vec<i16>>,
    on_delete: String,
    on_update: String,
    match_type: String,
    condeferrable: bool,
    condeferred: bool,
    convalidated: bool,
}

impl ConstraintRow {
    fn decode(r: &PgRow) -> Result<ConstraintRow, sqlx::Error> {
        Ok(ConstraintRow {
            oid: r.try_get::<Oid, _>("oid")?.0,
            conrelid: r.try_get::<Oid, _>("conrelid")?.0,
            name: r.try_get("name")?,
            kind: r.try_get("kind")?,
            conkey: r.try_get("conkey")?,
            confrelid: r.try_get::<Oid, _>("confrelid")?.0,
            conindid: r.try_get::<Oid, _>("conindid")?.0,
            confkey: r.try_get("confkey")?,
            on_delete: r.try_get("on_delete")?,
            on_update: r.try_get("on_update")?,
            match_type: r.try_get("match_type")?,
            condeferrable: r.try_get("condeferrable")?,
            condeferred: r.try_get("condeferred")?,
            convalidated: r.try_get("convalidated")?,
        })
    }

    fn constraint(self) -> Constraint {
        let kind = match self.kind.as_str() {
            "p" => ConstraintKind::PrimaryKey,
            "u" => ConstraintKind::Unique,
            "f" => ConstraintKind::ForeignKey,
            "x" => ConstraintKind::Exclusion,
            _ => ConstraintKind::Check,
        };
        let foreign = (kind == ConstraintKind::ForeignKey).then(|| ForeignKey {
            ref_table: self.confrelid,
            ref_columns: self.confkey.unwrap_or_default(),
            on_delete: FkAction::from_code(&self.on_delete),
            on_update: FkAction::from_code(&self.on_update),
            match_full: self.match_type == "f",
            deferrable: self.condeferrable,
            deferred: self.condeferred,
            index: self.conindid,
        });
        Constraint {
            oid: self.oid,
            table: self.conrelid,
            name: self.name,
            kind,
            columns: self.conkey.unwrap_or_default(),
            foreign,
            validated: self.convalidated,
            deferrable: self.condeferrable,
            deferred: self.condeferred,
            index: self.conindid,
        }
    }
}

#[derive(serde::Deserialize)]
struct IndexRow {
    #[serde(deserialize_with = "json_oid")]
    indexrelid: u32,
    #[serde(deserialize_with = "json_oid")]
    indrelid: u32,
    name: String,
    indisunique: bool,
    indisprimary: bool,
    indisvalid: bool,
    partial: bool,
    indnkeyatts: i16,
    keys: String,
}

impl IndexRow {
    fn decode(r: &PgRow) -> Result<IndexRow, sqlx::Error> {
        Ok(IndexRow {
            indexrelid: r.try_get::<Oid, _>("indexrelid")?.0,
            indrelid: r.try_get::<Oid, _>("indrelid")?.0,
            name: r.try_get("name")?,
            indisunique: r.try_get("indisunique")?,
            indisprimary: r.try_get("indisprimary")?,
            indisvalid: r.try_get("indisvalid")?,
            partial: r.try_get("partial")?,
            indnkeyatts: r.try_get("indnkeyatts")?,
            keys: r.try_get("keys")?,
        })
    }

    fn index(self) -> Index {
        let mut keys = int2vector(&self.keys);
        keys.truncate(self.indnkeyatts.max(0) as usize);
        Index {
            oid: self.indexrelid,
            table: self.indrelid,
            name: self.name,
            unique: self.indisunique,
            primary: self.indisprimary,
            valid: self.indisvalid,
            partial: self.partial,
            key_columns: keys,
            constraint: None,
            key_defs: Vec::new(),
            predicate: None,
        }
    }
}

#[derive(serde::Deserialize)]
struct IndexDefRow {
    #[serde(deserialize_with = "json_oid")]
    indexrelid: u32,
    key_defs: Option<Vec<String>>,
    predicate: Option<String>,
}

impl IndexDefRow {
    fn decode(r: &PgRow) -> Result<IndexDefRow, sqlx::Error> {
        Ok(IndexDefRow {
            indexrelid: r.try_get::<Oid, _>("indexrelid")?.0,
            key_defs: r.try_get("key_defs")?,
            predicate: r.try_get("predicate")?,
        })
    }
}

/// The unique indexes whose definition texts the unique-without-realm fix needs: partial or
/// expression ones whose key lacks the realm column (plain-column keys are written from the
/// column names).
fn wanted_defs(
    tables: &[Table],
    indexes: &[Index],
    realm_column: &crate::config::RealmColumns,
) -> HashSet<u32> {
    let realm_num: HashMap<u32, AttNum> = tables
        .iter()
        .filter_map(|t| {
            t.column(t.realm_column(realm_column))
                .map(|c| (t.oid, c.num))
        })
        .collect();
    indexes
        .iter()
        .filter(|i| i.unique && !i.primary && (i.partial || i.key_columns.contains(&0)))
        .filter(|i| {
            realm_num
                .get(&i.table)
                .is_some_and(|n| !i.key_columns.contains(n))
        })
        .map(|i| i.oid)
        .collect()
}

/// The catalog from the rows of each query (definition texts come after, `attach_defs`).
/// Constraints of tables not read are dropped: system tables', which the query does not join to
/// filter out (cheaper).
fn assemble(
    tables: Vec<TableRow>,
    constraints: Vec<ConstraintRow>,
    indexes: Vec<IndexRow>,
) -> Catalog {
    let mut tables: Vec<Table> = tables.into_iter().map(TableRow::table).collect();
    let loaded: HashSet<u32> = tables.iter().map(|t| t.oid).collect();
    let (not_valid_not_null, constraints): (Vec<ConstraintRow>, Vec<ConstraintRow>) = constraints
        .into_iter()
        .filter(|c| loaded.contains(&c.conrelid))
        .partition(|c| c.kind == "n");
    // A NOT VALID not-null constraint (PostgreSQL 18+) sets attnotnull, but old rows may be NULL:
    // the column counts as nullable, and the constraint's name is kept for the backfill, which
    // validates it.
    let mut details = Details::default();
    for nn in &not_valid_not_null {
        if let Some(t) = tables.iter_mut().find(|t| t.oid == nn.conrelid) {
            for c in &mut t.columns {
                if nn.conkey.as_deref().unwrap_or_default().contains(&c.num) {
                    c.not_null = false;
                    details
                        .not_valid_not_null
                        .insert((t.oid, c.num), nn.name.clone());
                }
            }
        }
    }
    let constraints: Vec<Constraint> = constraints
        .into_iter()
        .map(ConstraintRow::constraint)
        .collect();
    let mut indexes: Vec<Index> = indexes.into_iter().map(IndexRow::index).collect();
    // The constraint each index implements (primary key, unique, exclusion).
    let owner: HashMap<u32, &str> = constraints
        .iter()
        .filter(|c| c.kind != ConstraintKind::ForeignKey && c.index != 0)
        .map(|c| (c.index, c.name.as_str()))
        .collect();
    for i in &mut indexes {
        i.constraint = owner.get(&i.oid).map(|s| s.to_string());
    }
    Catalog {
        tables,
        constraints,
        indexes,
        realms: RealmsTable::Disabled,
        realms_key_type: None,
        scope: None,
        queries: 0,
        details,
    }
}

/// Give the `wanted` indexes (see `wanted_defs`) their definition texts; others are ignored.
fn attach_defs(cat: &mut Catalog, defs: Vec<IndexDefRow>, wanted: &HashSet<u32>) {
    let mut defs: HashMap<u32, IndexDefRow> = defs
        .into_iter()
        .filter(|d| wanted.contains(&d.indexrelid))
        .map(|d| (d.indexrelid, d))
        .collect();
    for i in &mut cat.indexes {
        if let Some(d) = defs.remove(&i.oid) {
            i.key_defs = d.key_defs.unwrap_or_default();
            i.predicate = d.predicate;
        }
    }
}

/// The error of a failed query of `what`.
pub(crate) fn read(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Read { what, source }
}

/// The whole catalog, one query per file.
async fn read_all(
    conn: &mut PgConnection,
    realm_column: &crate::config::RealmColumns,
    queries: &mut usize,
) -> Result<Catalog> {
    let f = full_forms();
    let all: Option<Vec<Oid>> = None;
    let tables = sqlx::query(&f.tables)
        .persistent(false)
        .bind(&all)
        .fetch_all(&mut *conn)
        .await
        .map_err(read("tables"))?
        .iter()
        .map(TableRow::decode)
        .collect::<Result<Vec<_>, _>>()?;
    *queries += 1;
    let constraints = sqlx::query(&f.constraints)
        .persistent(false)
        .bind(&all)
        .fetch_all(&mut *conn)
        .await
        .map_err(read("constraints"))?
        .iter()
        .map(ConstraintRow::decode)
        .collect::<Result<Vec<_>, _>>()?;
    *queries += 1;
    let indexes = sqlx::query(&f.indexes)
        .persistent(false)
        .bind(&all)
        .fetch_all(&mut *conn)
        .await
        .map_err(read("indexes"))?
        .iter()
        .map(IndexRow::decode)
        .collect::<Result<Vec<_>, _>>()?;
    *queries += 1;
    let mut cat = assemble(tables, constraints, indexes);
    // Definition texts, only for the indexes that need them (see `wanted_defs`). Sent even when
    // there are none, so that the number of queries never depends on the catalog.
    let wanted = wanted_defs(&cat.tables, &cat.indexes, realm_column);
    let oids: Vec<Oid> = wanted.iter().copied().map(Oid).collect();
    let defs = sqlx::query(INDEX_DEFS_SQL)
        .bind(&oids)
        .fetch_all(&mut *conn)
        .await
        .map_err(read("index definitions"))?
        .iter()
        .map(IndexDefRow::decode)
        .collect::<Result<Vec<_>, _>>()?;
    *queries += 1;
    attach_defs(&mut cat, defs, &wanted);
    Ok(cat)
}

/// The scoped read in one statement (`scoped.sql`): the given tables, or, for the guard (`Some`
/// with the `enable_seqscan` value to set back), the tables the current transaction changed,
/// which it also returns (raw schema, name).
async fn scoped(
    conn: &mut PgConnection,
    realms_table: &str,
    realm_column: &crate::config::RealmColumns,
    tables: &[(String, String)],
    changed: Option<&str>,
) -> Result<(Vec<(String, String)>, Catalog)> {
    let (realms_schema, realms_name) = match realms_table {
        "" => (None, None),
        t => {
            let (s, n) = split_qualified(t);
            (s, Some(n))
        }
    };
    let schemas: Vec<&str> = tables.iter().map(|(s, _)| s.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|(_, t)| t.as_str()).collect();
    let row = sqlx::query(scoped_statement())
        .bind(realms_schema)
        .bind(realms_name)
        .bind(&schemas)
        .bind(&names)
        .bind(changed.is_some())
        .bind(changed)
        .fetch_one(&mut *conn)
        .await
        .map_err(read("the tables to verify"))?;
    fn part<T: serde::de::DeserializeOwned>(row: &PgRow, col: &str) -> Result<Vec<T>> {
        let text: Option<String> = row.try_get(col)?;
        match text {
            None => Ok(Vec::new()), // json_agg of no rows
            Some(t) => serde_json::from_str(&t).map_err(|source| Error::DecodeJson {
                what: col.to_string(),
                source,
            }),
        }
    }
    let touched: Vec<(String, String)> = part(&row, "touched")?;
    let scope: Vec<(u32, bool)> = part(&row, "scope")?;
    let mut cat = assemble(
        part(&row, "tables")?,
        part(&row, "constraints")?,
        part(&row, "indexes")?,
    );
    let wanted = wanted_defs(&cat.tables, &cat.indexes, realm_column);
    attach_defs(&mut cat, part(&row, "index_defs")?, &wanted);
    let oid: Option<Oid> = row.try_get("realms_oid")?;
    let (realms, key_type) = realms_from(
        realms_table,
        oid.map(|o| o.0),
        row.try_get("key_type")?,
        row.try_get("default_schema")?,
    );
    cat.realms = realms;
    cat.realms_key_type = key_type;
    cat.scope = Some(scope.into_iter().filter(|s| s.1).map(|s| s.0).collect());
    cat.queries = 1;
    Ok((touched, cat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_form_drops_only_the_scope_filter() {
        for sql in [TABLES_SQL, CONSTRAINTS_SQL, INDEXES_SQL] {
            assert_eq!(sql.matches("-- scope").count(), 1);
            let full = full_form(sql);
            assert!(!full.contains("-- scope") && full.contains("$1::oid[] IS NULL"));
            assert_eq!(full.lines().count(), sql.lines().count());
        }
    }

    #[test]
    fn the_scoped_statement_splices_every_part_and_keeps_no_oid_array_parameter() {
        let sql = scoped_statement();
        for part in [
            "{realms}",
            "{touched}",
            "{tables}",
            "{constraints}",
            "{indexes}",
            "{index_defs}",
        ] {
            assert!(SCOPED_SQL.contains(part), "{part}");
            assert!(!sql.contains(part), "{part}");
        }
        assert!(!sql.contains("$1::oid[]"));
        // Each file's filter now reads an earlier part: four on the scope, one on `wanted`.
        assert_eq!(sql.matches("FROM scope)::oid[])").count(), 4);
        assert_eq!(sql.matches("FROM wanted)::oid[])").count(), 1);
        assert!(sql.contains("FROM pg_lock_status") || sql.contains("FROM pg_locks l"));
    }

    #[test]
    fn realms_resolve_to_found_missing_or_disabled() {
        assert_eq!(
            realms_from("", Some(1), None, None).0,
            RealmsTable::Disabled
        );
        assert_eq!(
            realms_from("app.realms", Some(7), Some("text".into()), None),
            (RealmsTable::Found(7), Some("text".into()))
        );
        assert_eq!(
            realms_from("realms", None, None, Some("app".into())).0,
            RealmsTable::Missing {
                schema: "app".into(),
                name: "realms".into()
            }
        );
    }

    #[test]
    fn json_oids_decode_from_text_or_number() {
        #[derive(Deserialize)]
        struct O {
            #[serde(deserialize_with = "json_oid")]
            oid: u32,
        }
        let a: O = serde_json::from_str(r#"{"oid":"4294967295"}"#).unwrap();
        let b: O = serde_json::from_str(r#"{"oid":16384}"#).unwrap();
        assert_eq!((a.oid, b.oid), (u32::MAX, 16384));
        assert!(serde_json::from_str::<O>(r#"{"oid":"x"}"#).is_err());
    }

    #[test]
    fn int2vector_text_parses() {
        assert_eq!(int2vector("1 0 3"), vec![1, 0, 3]);
        assert_eq!(int2vector(""), Vec::<AttNum>::new());
    }

    #[test]
    fn qualified_names_split_at_the_first_dot() {
        assert_eq!(split_qualified("realms"), (None, "realms"));
        assert_eq!(split_qualified("app.realms"), (Some("app"), "realms"));
        assert_eq!(split_qualified("app.my.realms"), (Some("app"), "my.realms"));
    }
}
