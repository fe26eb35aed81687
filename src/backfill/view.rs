//! The planner's view of the catalog: `crate::catalog::Catalog` (the one reader of
//! `pg_catalog`, shared with verify) resolved to names, tables in (schema, name) order and their
//! constraints and indexes by name, so that the planner reads like the SQL it writes and its
//! tests build catalogs by hand. [`View::of`] is the only way in from the database.

use crate::catalog::{self, ConstraintKind as Kind, FkAction, RealmsTable, TableKind};
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub tables: Vec<Table>,
    /// The realms table named by the config, when it exists.
    pub realms: Option<Realms>,
    /// Where a missing realms table gets created when the config names no schema.
    pub current_schema: String,
    /// Whether the realms table already holds the default realm's row.
    pub default_realm_exists: bool,
    /// Every relation (schema, name) outside the system schemas, for picking free index names.
    pub relations: BTreeSet<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Realms {
    pub schema: String,
    pub name: String,
    /// Its single-column primary key (None: no such key, which the planner refuses).
    pub key: Option<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub schema: String,
    pub name: String,
    /// A partitioned table (partitions themselves are left out: their root stands for them).
    pub partitioned: bool,
    /// A partitioned table's partition key columns ("" for an expression).
    pub partition_key: Vec<String>,
    /// A partitioned table's partitions, in (schema, name) byte order (`load::read` fills them).
    pub partitions: Vec<Partition>,
    pub columns: Vec<Column>,
    pub constraints: Vec<Constraint>,
    pub indexes: Vec<Index>,
    pub triggers: Vec<String>,
}

/// A partition of a partitioned table (see `docs/backfill-design.md`, "Partitioned tables").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partition {
    pub schema: String,
    pub name: String,
    /// Itself partitioned (a multi-level table, which the planner refuses).
    pub partitioned: bool,
}

impl Partition {
    /// "schema.name", raw names, for messages.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub type_name: String,
    pub not_null: bool,
    /// A NOT VALID not-null constraint on it (PostgreSQL 18+), which `not_null` does not count.
    pub not_valid_not_null: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    Primary,
    Unique,
    Foreign,
    Check,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub name: String,
    pub kind: ConstraintKind,
    pub validated: bool,
    pub columns: Vec<String>,
    /// Foreign keys: the referenced table and columns, and `ON DELETE` (`a` no action,
    /// `r` restrict, `c` cascade, `n` set null, `d` set default).
    pub ref_schema: Option<String>,
    pub ref_table: Option<String>,
    pub ref_columns: Vec<String>,
    pub on_delete: Option<char>,
    /// The index behind a key, or the referenced unique index of a foreign key (`conindid`).
    pub index: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    pub primary: bool,
    pub valid: bool,
    pub partial: bool,
    /// Key columns in order; "" marks an expression.
    pub columns: Vec<String>,
    /// `pg_get_indexdef`, read for unique indexes that are partial or on an expression.
    pub definition: Option<String>,
    /// Its tablespace when not the database's default (`pg_get_indexdef` leaves it out).
    pub tablespace: Option<String>,
}

impl Table {
    /// This table's realm column: the first of `names` it has, else the first (the one the
    /// backfill adds).
    pub fn realm_column<'n>(&self, names: &'n crate::config::RealmColumns) -> &'n str {
        names.of(|n| self.column(n).is_some())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn primary_key(&self) -> Option<&Constraint> {
        self.constraints
            .iter()
            .find(|c| c.kind == ConstraintKind::Primary)
    }

    pub fn foreign_keys(&self) -> impl Iterator<Item = &Constraint> {
        self.constraints
            .iter()
            .filter(|c| c.kind == ConstraintKind::Foreign)
    }

    pub fn constraint(&self, name: &str) -> Option<&Constraint> {
        self.constraints.iter().find(|c| c.name == name)
    }

    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// "schema.table", raw (unquoted) names, for messages and config matching.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub fn is(&self, schema: &str, name: &str) -> bool {
        self.schema == schema && self.name == name
    }
}

impl Catalog {
    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.is(schema, name))
    }
}

/// The planner's catalog from the shared one. `default_realm_exists` is read from the realms
/// table's rows (data, not catalog).
pub fn of(cat: &catalog::Catalog, default_realm_exists: bool) -> Catalog {
    let by_oid = cat.table_map();
    let index_names: HashMap<u32, &str> = cat
        .indexes
        .iter()
        .map(|i| (i.oid, i.name.as_str()))
        .collect();
    let d = &cat.details;
    let mut tables: Vec<Table> = cat
        .tables
        .iter()
        .filter(|t| !t.is_partition)
        .map(|t| {
            let names = |nums: &[catalog::AttNum]| t.column_names(nums);
            let mut constraints: Vec<Constraint> = cat
                .constraints
                .iter()
                .filter(|c| c.table == t.oid)
                .map(|c| {
                    let parent = c.foreign.as_ref().and_then(|f| by_oid.get(&f.ref_table));
                    Constraint {
                        name: c.name.clone(),
                        kind: match c.kind {
                            Kind::PrimaryKey => ConstraintKind::Primary,
                            Kind::Unique => ConstraintKind::Unique,
                            Kind::ForeignKey => ConstraintKind::Foreign,
                            Kind::Check | Kind::Exclusion => ConstraintKind::Check,
                        },
                        validated: c.validated,
                        columns: names(&c.columns),
                        ref_schema: parent.map(|p| p.schema.clone()),
                        ref_table: parent.map(|p| p.name.clone()),
                        ref_columns: match (parent, &c.foreign) {
                            (Some(p), Some(f)) => p.column_names(&f.ref_columns),
                            _ => Vec::new(),
                        },
                        on_delete: c.foreign.as_ref().map(|f| match f.on_delete {
                            FkAction::NoAction => 'a',
                            FkAction::Restrict => 'r',
                            FkAction::Cascade => 'c',
                            FkAction::SetNull => 'n',
                            FkAction::SetDefault => 'd',
                        }),
                        index: index_names.get(&c.index).map(|n| n.to_string()),
                    }
                })
                .collect();
            constraints.sort_by(|a, b| a.name.cmp(&b.name));
            let mut indexes: Vec<Index> = cat
                .indexes
                .iter()
                .filter(|i| i.table == t.oid)
                .map(|i| Index {
                    name: i.name.clone(),
                    unique: i.unique,
                    primary: i.primary,
                    valid: i.valid,
                    partial: i.partial,
                    columns: i
                        .key_columns
                        .iter()
                        .map(|&n| match t.column_by_num(n) {
                            Some(c) if n != 0 => c.name.clone(),
                            _ => String::new(),
                        })
                        .collect(),
                    definition: d.index_definitions.get(&i.oid).cloned(),
                    tablespace: d.index_tablespaces.get(&i.oid).cloned(),
                })
                .collect();
            indexes.sort_by(|a, b| a.name.cmp(&b.name));
            Table {
                schema: t.schema.clone(),
                name: t.name.clone(),
                partitioned: t.kind == TableKind::Partitioned,
                partition_key: t
                    .partition_key
                    .iter()
                    .map(|&n| match t.column_by_num(n) {
                        Some(c) if n != 0 => c.name.clone(),
                        _ => String::new(),
                    })
                    .collect(),
                partitions: Vec::new(),
                columns: t
                    .columns
                    .iter()
                    .map(|c| Column {
                        name: c.name.clone(),
                        type_name: d
                            .column_types
                            .get(&(t.oid, c.num))
                            .cloned()
                            .unwrap_or_default(),
                        not_null: c.not_null,
                        not_valid_not_null: d.not_valid_not_null.get(&(t.oid, c.num)).cloned(),
                    })
                    .collect(),
                constraints,
                indexes,
                triggers: d
                    .triggers
                    .iter()
                    .filter(|tr| tr.schema == t.schema && tr.table == t.name)
                    .map(|tr| tr.name.clone())
                    .collect(),
            }
        })
        .collect();
    // Byte order, whatever the database's collation: the plan's order must not depend on it.
    tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    let (realms, current_schema) = match &cat.realms {
        RealmsTable::Found(oid) => match by_oid.get(oid) {
            Some(r) => {
                let key = cat
                    .constraints
                    .iter()
                    .find(|c| c.table == *oid && c.kind == Kind::PrimaryKey)
                    .filter(|c| c.columns.len() == 1)
                    .and_then(|c| r.column_by_num(c.columns[0]))
                    .map(|c| c.name.clone());
                let realms = Realms {
                    schema: r.schema.clone(),
                    name: r.name.clone(),
                    key: key.zip(cat.realms_key_type.clone()),
                };
                (Some(realms), r.schema.clone())
            }
            None => (None, "public".to_string()),
        },
        RealmsTable::Missing { schema, .. } => (None, schema.clone()),
        RealmsTable::Disabled => (None, "public".to_string()),
    };
    Catalog {
        tables,
        realms,
        current_schema,
        default_realm_exists,
        relations: d.relations.clone(),
    }
}
