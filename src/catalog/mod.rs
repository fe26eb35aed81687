//! Typed reads of `pg_catalog`: the tables, columns, constraints and indexes the realm rules
//! judge, read in a constant number of queries whatever the size of the catalog (one query per
//! file under `sql/`, always with bind parameters).
//!
//! `pg_catalog` rather than `information_schema`: the latter only shows objects the current role
//! owns or has a privilege on, and a role that can read no table data must still be able to verify.
//!
//! The table, constraint and index queries come in two forms built from one file: the scoped form
//! (`oid = ANY($1)`, index lookups) is a prepared statement cached on the connection, so the migrate
//! guard, which calls it around every migration, soon runs it on a generic plan with no parsing or
//! planning; the full form (the `-- scope` line replaced by `$1 IS NULL`) is sent unprepared, as a
//! full read happens once per connection.

use anyhow::Context;
use sqlx::postgres::types::Oid;
use sqlx::{PgConnection, Row};
use std::collections::{HashMap, HashSet};

const TABLES_SQL: &str = include_str!("sql/tables.sql");
const CONSTRAINTS_SQL: &str = include_str!("sql/constraints.sql");
const INDEXES_SQL: &str = include_str!("sql/indexes.sql");
const REALMS_SQL: &str = include_str!("sql/realms.sql");
const SCOPE_SQL: &str = include_str!("sql/scope.sql");
const INDEX_DEFS_SQL: &str = include_str!("sql/index_defs.sql");

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
        realm_column: &str,
    ) -> anyhow::Result<Catalog> {
        let mut queries = 0;
        let (realms, key_type) = resolve_realms(conn, realms_table, &mut queries).await?;
        let mut cat = read(conn, None, realm_column, &mut queries).await?;
        cat.realms = realms;
        cat.realms_key_type = key_type;
        cat.queries = queries;
        Ok(cat)
    }

    /// Read the given tables (raw schema, name), the tables linked to them by a foreign key in
    /// either direction (reported on too), and as context the tables those reference and the
    /// realms table. Tables that do not exist are ignored.
    pub async fn load_scoped(
        conn: &mut PgConnection,
        realms_table: &str,
        realm_column: &str,
        tables: &[(String, String)],
    ) -> anyhow::Result<Catalog> {
        let mut queries = 0;
        let (realms, key_type) = resolve_realms(conn, realms_table, &mut queries).await?;
        let realms_oid = match realms {
            RealmsTable::Found(oid) => Some(Oid(oid)),
            _ => None,
        };
        let schemas: Vec<String> = tables.iter().map(|(s, _)| s.clone()).collect();
        let names: Vec<String> = tables.iter().map(|(_, t)| t.clone()).collect();
        let rows = sqlx::query(SCOPE_SQL)
            .bind(&schemas)
            .bind(&names)
            .bind(realms_oid)
            .fetch_all(&mut *conn)
            .await
            .context("cannot read the foreign-key neighbourhood from pg_catalog")?;
        queries += 1;
        let mut oids = Vec::with_capacity(rows.len());
        let mut scope = HashSet::new();
        for r in rows {
            let oid: Oid = r.try_get(0)?;
            let in_scope: bool = r.try_get(1)?;
            oids.push(oid);
            if in_scope {
                scope.insert(oid.0);
            }
        }
        let mut cat = read(conn, Some(&oids), realm_column, &mut queries).await?;
        cat.realms = realms;
        cat.realms_key_type = key_type;
        cat.scope = Some(scope);
        cat.queries = queries;
        Ok(cat)
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

async fn resolve_realms(
    conn: &mut PgConnection,
    realms_table: &str,
    queries: &mut usize,
) -> anyhow::Result<(RealmsTable, Option<String>)> {
    if realms_table.is_empty() {
        return Ok((RealmsTable::Disabled, None));
    }
    let (schema, name) = split_qualified(realms_table);
    let row = sqlx::query(REALMS_SQL)
        .bind(schema)
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .context("cannot resolve the realms table from pg_catalog")?;
    *queries += 1;
    let oid: Option<Oid> = row.try_get("oid")?;
    let key_type: Option<String> = row.try_get("key_type")?;
    let realms = match oid {
        Some(oid) => RealmsTable::Found(oid.0),
        None => {
            let default_schema: Option<String> = row.try_get("default_schema")?;
            RealmsTable::Missing {
                schema: schema
                    .map(str::to_string)
                    .or(default_schema)
                    .unwrap_or_else(|| "public".into()),
                name: name.to_string(),
            }
        }
    };
    Ok((realms, key_type))
}

async fn read(
    conn: &mut PgConnection,
    oids: Option<&[Oid]>,
    realm_column: &str,
    queries: &mut usize,
) -> anyhow::Result<Catalog> {
    let scoped = oids.is_some();
    let oids: Option<Vec<Oid>> = oids.map(<[Oid]>::to_vec);
    let (tables_sql, constraints_sql, indexes_sql): (&str, &str, &str) = if scoped {
        (TABLES_SQL, CONSTRAINTS_SQL, INDEXES_SQL)
    } else {
        let f = full_forms();
        (&f.tables, &f.constraints, &f.indexes)
    };
    let rows = sqlx::query(tables_sql)
        .persistent(scoped)
        .bind(&oids)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read tables from pg_catalog")?;
    *queries += 1;
    let mut tables = Vec::with_capacity(rows.len());
    for r in rows {
        let nums: Option<Vec<i16>> = r.try_get("nums")?;
        let names: Option<Vec<String>> = r.try_get("names")?;
        let not_null: Option<Vec<bool>> = r.try_get("not_null")?;
        let mut columns: Vec<Column> = nums
            .unwrap_or_default()
            .into_iter()
            .zip(names.unwrap_or_default())
            .zip(not_null.unwrap_or_default())
            .map(|((num, name), not_null)| Column {
                num,
                name,
                not_null,
            })
            .collect();
        // The query does not sort (cheaper here than a sort per table on the server).
        columns.sort_by_key(|c| c.num);
        let kind: String = r.try_get("kind")?;
        let oid: Oid = r.try_get("oid")?;
        let partition_key: Option<String> = r.try_get("partition_key")?;
        tables.push(Table {
            oid: oid.0,
            schema: r.try_get("schema")?,
            name: r.try_get("name")?,
            kind: if kind == "p" {
                TableKind::Partitioned
            } else {
                TableKind::Ordinary
            },
            is_partition: r.try_get("relispartition")?,
            rls_enabled: r.try_get("relrowsecurity")?,
            partition_key: partition_key.as_deref().map(int2vector).unwrap_or_default(),
            columns,
        });
    }

    let loaded: HashSet<u32> = tables.iter().map(|t| t.oid).collect();
    let rows = sqlx::query(constraints_sql)
        .persistent(scoped)
        .bind(&oids)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read constraints from pg_catalog")?;
    *queries += 1;
    let mut constraints = Vec::with_capacity(rows.len());
    for r in rows {
        let kind = match r.try_get::<String, _>("kind")?.as_str() {
            "p" => ConstraintKind::PrimaryKey,
            "u" => ConstraintKind::Unique,
            "f" => ConstraintKind::ForeignKey,
            "x" => ConstraintKind::Exclusion,
            _ => ConstraintKind::Check,
        };
        let oid: Oid = r.try_get("oid")?;
        let table: Oid = r.try_get("conrelid")?;
        let foreign = if kind == ConstraintKind::ForeignKey {
            let ref_table: Oid = r.try_get("confrelid")?;
            let ref_columns: Option<Vec<i16>> = r.try_get("confkey")?;
            Some(ForeignKey {
                ref_table: ref_table.0,
                ref_columns: ref_columns.unwrap_or_default(),
                on_delete: FkAction::from_code(&r.try_get::<String, _>("on_delete")?),
                on_update: FkAction::from_code(&r.try_get::<String, _>("on_update")?),
                match_full: r.try_get::<String, _>("match_type")? == "f",
                deferrable: r.try_get("condeferrable")?,
                deferred: r.try_get("condeferred")?,
                index: r.try_get::<Oid, _>("conindid")?.0,
            })
        } else {
            None
        };
        if !loaded.contains(&table.0) {
            continue; // a system table's: the query does not join to filter them (cheaper)
        }
        let columns: Option<Vec<i16>> = r.try_get("conkey")?;
        let index: Oid = r.try_get("conindid")?;
        constraints.push(Constraint {
            oid: oid.0,
            table: table.0,
            name: r.try_get("name")?,
            kind,
            columns: columns.unwrap_or_default(),
            foreign,
            validated: r.try_get("convalidated")?,
            deferrable: r.try_get("condeferrable")?,
            deferred: r.try_get("condeferred")?,
            index: index.0,
        });
    }

    let rows = sqlx::query(indexes_sql)
        .persistent(scoped)
        .bind(&oids)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read indexes from pg_catalog")?;
    *queries += 1;
    let mut indexes = Vec::with_capacity(rows.len());
    for r in rows {
        let oid: Oid = r.try_get("indexrelid")?;
        let table: Oid = r.try_get("indrelid")?;
        let nkey: i16 = r.try_get("indnkeyatts")?;
        let mut keys = int2vector(&r.try_get::<String, _>("keys")?);
        keys.truncate(nkey.max(0) as usize);
        indexes.push(Index {
            oid: oid.0,
            table: table.0,
            name: r.try_get("name")?,
            unique: r.try_get("indisunique")?,
            primary: r.try_get("indisprimary")?,
            valid: r.try_get("indisvalid")?,
            partial: r.try_get("partial")?,
            key_columns: keys,
            constraint: None,
            key_defs: Vec::new(),
            predicate: None,
        });
    }

    // Definition texts, only for the partial or expression unique indexes whose key lacks the
    // realm column: the ones the unique-without-realm fix rebuilds and cannot write from column
    // names. Sent even when there are none, so that the number of queries never depends on the
    // catalog.
    let realm_num: HashMap<u32, AttNum> = tables
        .iter()
        .filter_map(|t| t.column(realm_column).map(|c| (t.oid, c.num)))
        .collect();
    let wanted: Vec<Oid> = indexes
        .iter()
        .filter(|i| i.unique && !i.primary && (i.partial || i.key_columns.contains(&0)))
        .filter(|i| {
            realm_num
                .get(&i.table)
                .is_some_and(|n| !i.key_columns.contains(n))
        })
        .map(|i| Oid(i.oid))
        .collect();
    let rows = sqlx::query(INDEX_DEFS_SQL)
        .bind(&wanted)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read index definitions from pg_catalog")?;
    *queries += 1;
    let mut defs: HashMap<u32, (Vec<String>, Option<String>)> = HashMap::new();
    for r in rows {
        let oid: Oid = r.try_get("indexrelid")?;
        let key_defs: Option<Vec<String>> = r.try_get("key_defs")?;
        defs.insert(
            oid.0,
            (key_defs.unwrap_or_default(), r.try_get("predicate")?),
        );
    }
    for i in &mut indexes {
        if let Some((k, p)) = defs.remove(&i.oid) {
            i.key_defs = k;
            i.predicate = p;
        }
    }

    // The constraint each index implements (primary key, unique, exclusion).
    let owner: HashMap<u32, &str> = constraints
        .iter()
        .filter(|c| c.kind != ConstraintKind::ForeignKey && c.index != 0)
        .map(|c| (c.index, c.name.as_str()))
        .collect();
    for i in &mut indexes {
        i.constraint = owner.get(&i.oid).map(|s| s.to_string());
    }

    Ok(Catalog {
        tables,
        constraints,
        indexes,
        realms: RealmsTable::Disabled,
        realms_key_type: None,
        scope: None,
        queries: 0,
    })
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
