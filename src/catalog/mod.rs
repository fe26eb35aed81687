//! Typed reads of `pg_catalog`: the tables, columns, constraints and indexes the realm rules
//! judge, read in a constant number of queries whatever the size of the catalog (one query per
//! file under `sql/`, always with bind parameters).
//!
//! `pg_catalog` rather than `information_schema`: the latter only shows objects the current role
//! owns or has a privilege on, and a role that can read no table data must still be able to verify.
//!
//! Every query is sent unprepared (`persistent(false)`), so PostgreSQL plans it with the actual
//! parameters: the `$1 IS NULL OR oid = ANY($1)` filters then fold to an index lookup for a scoped
//! read and to nothing for a full one, instead of one generic plan for both.

use anyhow::Context;
use sqlx::postgres::types::Oid;
use sqlx::{PgConnection, Row};
use std::collections::{HashMap, HashSet};

const TABLES_SQL: &str = include_str!("sql/tables.sql");
const CONSTRAINTS_SQL: &str = include_str!("sql/constraints.sql");
const INDEXES_SQL: &str = include_str!("sql/indexes.sql");
const REALMS_SQL: &str = include_str!("sql/realms.sql");
const SCOPE_SQL: &str = include_str!("sql/scope.sql");

/// A column number (`pg_attribute.attnum`); 0 in an index key means an expression.
pub type AttNum = i16;

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub num: AttNum,
    pub name: String,
    /// `format_type` text, e.g. `bigint`, `character varying(20)`.
    pub type_name: String,
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
    /// Key column/expression texts and predicate, read for unique non-primary indexes only.
    pub key_defs: Vec<String>,
    pub predicate: Option<String>,
    pub method: String,
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
            scope: None,
            queries: 0,
        }
    }

    pub fn table_map(&self) -> HashMap<u32, &Table> {
        self.tables.iter().map(|t| (t.oid, t)).collect()
    }

    /// Read every user table.
    pub async fn load(conn: &mut PgConnection, realms_table: &str) -> anyhow::Result<Catalog> {
        let mut queries = 0;
        let realms = resolve_realms(conn, realms_table, &mut queries).await?;
        let mut cat = read(conn, None, &mut queries).await?;
        cat.realms = realms;
        cat.queries = queries;
        Ok(cat)
    }

    /// Read the given tables (raw schema, name), the tables linked to them by a foreign key in
    /// either direction (reported on too), and as context the tables those reference and the
    /// realms table. Tables that do not exist are ignored.
    pub async fn load_scoped(
        conn: &mut PgConnection,
        realms_table: &str,
        tables: &[(String, String)],
    ) -> anyhow::Result<Catalog> {
        let mut queries = 0;
        let realms = resolve_realms(conn, realms_table, &mut queries).await?;
        let realms_oid = match realms {
            RealmsTable::Found(oid) => Some(Oid(oid)),
            _ => None,
        };
        let schemas: Vec<String> = tables.iter().map(|(s, _)| s.clone()).collect();
        let names: Vec<String> = tables.iter().map(|(_, t)| t.clone()).collect();
        let rows = sqlx::query(SCOPE_SQL)
            .persistent(false)
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
        let mut cat = read(conn, Some(&oids), &mut queries).await?;
        cat.realms = realms;
        cat.scope = Some(scope);
        cat.queries = queries;
        Ok(cat)
    }
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
) -> anyhow::Result<RealmsTable> {
    if realms_table.is_empty() {
        return Ok(RealmsTable::Disabled);
    }
    let (schema, name) = split_qualified(realms_table);
    let row = sqlx::query(REALMS_SQL)
        .persistent(false)
        .bind(schema)
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .context("cannot resolve the realms table from pg_catalog")?;
    *queries += 1;
    let oid: Option<Oid> = row.try_get("oid")?;
    Ok(match oid {
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
    })
}

async fn read(
    conn: &mut PgConnection,
    oids: Option<&[Oid]>,
    queries: &mut usize,
) -> anyhow::Result<Catalog> {
    let oids: Option<Vec<Oid>> = oids.map(<[Oid]>::to_vec);
    let rows = sqlx::query(TABLES_SQL)
        .persistent(false)
        .bind(&oids)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read tables from pg_catalog")?;
    *queries += 1;
    let mut tables = Vec::with_capacity(rows.len());
    for r in rows {
        let nums: Option<Vec<i16>> = r.try_get("nums")?;
        let names: Option<Vec<String>> = r.try_get("names")?;
        let types: Option<Vec<String>> = r.try_get("types")?;
        let not_null: Option<Vec<bool>> = r.try_get("not_null")?;
        let columns = nums
            .unwrap_or_default()
            .into_iter()
            .zip(names.unwrap_or_default())
            .zip(types.unwrap_or_default())
            .zip(not_null.unwrap_or_default())
            .map(|(((num, name), type_name), not_null)| Column {
                num,
                name,
                type_name,
                not_null,
            })
            .collect();
        let kind: String = r.try_get("kind")?;
        let oid: Oid = r.try_get("oid")?;
        let partition_key: Option<Vec<i16>> = r.try_get("partition_key")?;
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
            partition_key: partition_key.unwrap_or_default(),
            columns,
        });
    }

    let rows = sqlx::query(CONSTRAINTS_SQL)
        .persistent(false)
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
            _ => ConstraintKind::Check,
        };
        let oid: Oid = r.try_get("oid")?;
        let table: Oid = r.try_get("conrelid")?;
        let foreign = if kind == ConstraintKind::ForeignKey {
            let ref_table: Oid = r.try_get("confrelid")?;
            let ref_columns: Option<Vec<i16>> = r.try_get("confkey")?;
            let index: Oid = r.try_get("conindid")?;
            Some(ForeignKey {
                ref_table: ref_table.0,
                ref_columns: ref_columns.unwrap_or_default(),
                on_delete: FkAction::from_code(&r.try_get::<String, _>("on_delete")?),
                on_update: FkAction::from_code(&r.try_get::<String, _>("on_update")?),
                match_full: r.try_get::<String, _>("match_type")? == "f",
                deferrable: r.try_get("condeferrable")?,
                deferred: r.try_get("condeferred")?,
                index: index.0,
            })
        } else {
            None
        };
        let columns: Option<Vec<i16>> = r.try_get("conkey")?;
        constraints.push(Constraint {
            oid: oid.0,
            table: table.0,
            name: r.try_get("name")?,
            kind,
            columns: columns.unwrap_or_default(),
            foreign,
            validated: r.try_get("convalidated")?,
        });
    }

    let rows = sqlx::query(INDEXES_SQL)
        .persistent(false)
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
        let mut keys: Vec<i16> = r.try_get("keys")?;
        keys.truncate(nkey.max(0) as usize);
        let key_defs: Option<Vec<String>> = r.try_get("key_defs")?;
        indexes.push(Index {
            oid: oid.0,
            table: table.0,
            name: r.try_get("name")?,
            unique: r.try_get("indisunique")?,
            primary: r.try_get("indisprimary")?,
            valid: r.try_get("indisvalid")?,
            partial: r.try_get("partial")?,
            key_columns: keys,
            constraint: r.try_get("constraint_name")?,
            key_defs: key_defs.unwrap_or_default(),
            predicate: r.try_get("predicate")?,
            method: r.try_get("method")?,
        });
    }

    Ok(Catalog {
        tables,
        constraints,
        indexes,
        realms: RealmsTable::Disabled,
        scope: None,
        queries: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_split_at_the_first_dot() {
        assert_eq!(split_qualified("realms"), (None, "realms"));
        assert_eq!(split_qualified("app.realms"), (Some("app"), "realms"));
        assert_eq!(split_qualified("app.my.realms"), (Some("app"), "my.realms"));
    }
}
