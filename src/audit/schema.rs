//! What the audit needs to know about the schema: every table's columns (to resolve an
//! unqualified column to the one table of its level that has it, and to tell an unknown table from
//! a known one), and for each realm-scoped table its realm column. Built from the live catalog or,
//! with no database, from the migration files through lint's model.

use crate::catalog::{Catalog, RealmsTable};
use crate::config::Config;
use crate::lint::model;
use crate::names::names_table;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default)]
pub struct TableInfo {
    pub columns: std::sync::Arc<HashSet<String>>,
    /// The realm column, for a realm-scoped table; `None` for every other table (realms table,
    /// excluded tables, tables without the column).
    pub realm_column: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RealmSchema {
    /// Keyed `schema.table` (identifiers as PostgreSQL stores them).
    pub tables: HashMap<String, TableInfo>,
    /// Unqualified name → the schemas that have a table of that name.
    by_name: HashMap<String, Vec<String>>,
}

/// Which tables are realm-scoped, as verify and lint decide it: the realm column (the first of
/// `columns` a table has) or a `realm_scoped` entry; not excluded, not outside `schemas`, not the
/// realms table, not realmguard's own schema.
struct Rules<'a> {
    cfg: &'a Config,
    columns: Vec<String>,
}

impl Rules<'_> {
    fn realm_column(&self, schema: &str, name: &str, has: &dyn Fn(&str) -> bool) -> Option<String> {
        let cfg = self.cfg;
        let in_schema = if cfg.schemas.is_empty() {
            schema != "realmguard"
        } else {
            cfg.schemas.iter().any(|s| s == schema)
        };
        let excluded = cfg.exclude.iter().any(|e| names_table(e, schema, name));
        let realms = !cfg.realms_table.is_empty() && names_table(&cfg.realms_table, schema, name);
        if !in_schema || excluded || realms {
            return None;
        }
        if let Some(c) = self.columns.iter().find(|c| has(c)) {
            return Some(c.clone());
        }
        cfg.realm_scoped
            .iter()
            .any(|e| names_table(e, schema, name))
            .then(|| self.columns[0].clone())
    }
}

impl RealmSchema {
    fn rules(cfg: &Config) -> Rules<'_> {
        Rules {
            cfg,
            columns: cfg.realm_column.all().to_vec(),
        }
    }

    fn insert(&mut self, schema: &str, name: &str, info: TableInfo) {
        self.by_name
            .entry(name.to_string())
            .or_default()
            .push(schema.to_string());
        self.tables.insert(format!("{schema}.{name}"), info);
    }

    /// From the schema the migration files build (lint's model).
    pub fn from_model(m: &model::Schema, cfg: &Config) -> RealmSchema {
        let rules = Self::rules(cfg);
        let mut s = RealmSchema::default();
        let mut keys: Vec<&String> = m.tables.keys().collect();
        keys.sort();
        for k in keys {
            let t = &m.tables[k];
            let columns: HashSet<String> = t.columns.iter().map(|c| c.name.clone()).collect();
            let realm_column = rules.realm_column(t.schema(), t.name(), &|c| columns.contains(c));
            s.insert(
                t.schema(),
                t.name(),
                TableInfo {
                    columns: columns.into(),
                    realm_column,
                },
            );
        }
        s
    }

    /// From the live catalog.
    pub fn from_catalog(cat: &Catalog, cfg: &Config) -> RealmSchema {
        let rules = Self::rules(cfg);
        let realms_oid = match cat.realms {
            RealmsTable::Found(oid) => Some(oid),
            _ => None,
        };
        let mut s = RealmSchema::default();
        for t in &cat.tables {
            let columns: HashSet<String> = t.columns.iter().map(|c| c.name.clone()).collect();
            let realm_column = if Some(t.oid) == realms_oid {
                None
            } else {
                rules.realm_column(&t.schema, &t.name, &|c| columns.contains(c))
            };
            s.insert(
                &t.schema,
                &t.name,
                TableInfo {
                    columns: columns.into(),
                    realm_column,
                },
            );
        }
        s
    }

    /// The table a name in a query means: `schema.table` as written, or an unqualified name in
    /// `public` (the usual search_path), else in the one schema that has it.
    pub fn resolve(&self, schema: Option<&str>, name: &str) -> Option<(String, &TableInfo)> {
        let key = match schema {
            Some(s) => format!("{s}.{name}"),
            None => {
                let public = format!("public.{name}");
                if self.tables.contains_key(&public) {
                    public
                } else {
                    match self.by_name.get(name).map(Vec::as_slice) {
                        Some([only]) => format!("{only}.{name}"),
                        _ => return None,
                    }
                }
            }
        };
        self.tables.get(&key).map(|t| (key, t))
    }

    pub fn realm_tables(&self) -> usize {
        self.tables
            .values()
            .filter(|t| t.realm_column.is_some())
            .count()
    }
}

/// Build the model of a migration directory (or files), as lint does, without linting.
pub fn model_of_dir(dir: &std::path::Path) -> super::Result<model::Schema> {
    use super::Error;
    let files =
        crate::lint::collect_files(&[dir.to_path_buf()]).map_err(|source| Error::ReadSchema {
            path: dir.display().to_string(),
            source,
        })?;
    let mut m = model::Schema::default();
    for (path, _) in files {
        let src = crate::lint::Source::read(&path, false)
            .map_err(|source| Error::ReadMigration { source })?;
        apply_text(&mut m, &src.text);
    }
    Ok(m)
}

/// Apply every statement of a migration's text to the model (a statement that does not parse
/// leaves it untouched, as in lint).
pub fn apply_text(m: &mut model::Schema, text: &str) {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;
    let Ok(pieces) = crate::split::split(text) else {
        return;
    };
    for p in pieces {
        if let Ok(stmts) = Parser::parse_sql(&PostgreSqlDialect {}, p.sql) {
            for st in &stmts {
                m.apply(st, model::Origin::default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn schema_of(sql: &str) -> RealmSchema {
        let mut m = model::Schema::default();
        apply_text(&mut m, sql);
        RealmSchema::from_model(&m, &Config::default())
    }

    #[test]
    fn realm_tables_are_those_with_the_column_but_not_the_realms_table() {
        let s = schema_of(
            "create table realms (id text primary key, realm_id text);
             create table users (id int, realm_id text);
             create schema other; create table other.notes (id int);",
        );
        assert_eq!(s.resolve(None, "realms").unwrap().1.realm_column, None);
        assert_eq!(
            s.resolve(None, "users").unwrap().1.realm_column.as_deref(),
            Some("realm_id")
        );
        assert_eq!(s.resolve(None, "notes").unwrap().0, "other.notes");
        assert!(s.resolve(Some("public"), "notes").is_none());
        assert_eq!(s.realm_tables(), 1);
    }
}
