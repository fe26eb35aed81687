//! Which tables make up a realm and in which order they are copied: the realms table's row
//! first, then every realm-scoped table parents first (foreign-key order from the catalog), so
//! that each row's parents are already on the target when it arrives. Deletes run the other way.
//!
//! [`build`] is pure (catalog model in, plan out); [`load`] reads what it needs.

use super::{Error, Result};
use crate::catalog::{Catalog, ConstraintKind, RealmsTable};
use crate::config::Config;
use crate::db::{qualified, quote_ident, quote_literal};
use crate::verify::Ctx;
use serde::Serialize;
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const COLUMNS_SQL: &str = include_str!("sql/columns.sql");

/// One column as the copy sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Col {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    /// A generated column: never copied, the target computes it.
    pub generated: bool,
    /// The sequence behind an identity or serial column (qualified, quoted as PostgreSQL prints).
    pub sequence: Option<String>,
}

/// Every user table's columns in column order, keyed by raw (schema, name).
pub type Columns = HashMap<(String, String), Vec<Col>>;

/// One table of the realm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealmTable {
    pub schema: String,
    pub name: String,
    /// The column that says which realm a row belongs to (the key column for the realms table).
    pub realm_column: String,
    pub columns: Vec<Col>,
    /// Primary key columns (batched deletes address rows by them).
    pub primary_key: Vec<String>,
}

impl RealmTable {
    /// `schema.table`, raw, as reports name it.
    pub fn label(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub fn sql_name(&self) -> String {
        qualified(&self.schema, &self.name)
    }

    /// The columns the copy writes: every column but the generated ones, in this table's order.
    pub fn copied_columns(&self) -> Vec<&Col> {
        self.columns.iter().filter(|c| !c.generated).collect()
    }

    pub fn column(&self, name: &str) -> Option<&Col> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// `realm_column = 'id'::type`, the filter every statement on this table uses. COPY takes no
    /// bind parameters, so the id is a quoted literal, cast to the realm column's type.
    pub fn realm_filter(&self, realm: &str, key_type: &str) -> String {
        format!(
            "{} = {}::{key_type}",
            quote_ident(&self.realm_column),
            quote_literal(realm)
        )
    }
}

/// A foreign key from a realm-scoped table to a global table (neither realm-scoped nor the
/// realms table): the referenced rows must already exist on the target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlobalRef {
    pub constraint: String,
    /// The referencing realm-scoped table and columns.
    pub table: String,
    pub columns: Vec<String>,
    /// The referenced global table and columns.
    pub ref_schema: String,
    pub ref_name: String,
    pub ref_columns: Vec<String>,
    /// Types of the referenced columns (each key is cast to them on the target).
    pub ref_types: Vec<String>,
}

/// A realm's tables in copy order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub realms: RealmTable,
    /// `format_type` of the realms table's key: the cast of every realm literal.
    pub key_type: String,
    /// Realm-scoped tables, parents first.
    pub tables: Vec<RealmTable>,
    pub globals: Vec<GlobalRef>,
    /// Realm-scoped tables (configured as such) that have no realm column: their rows cannot be
    /// told apart by realm, so a realm cannot be carried until they are backfilled.
    pub without_column: Vec<String>,
    /// Tables on a foreign-key cycle, placed in name order (the copy may fail on them).
    pub cyclic: Vec<String>,
    /// Every foreign key declared on the realms table or a realm-scoped table, as the catalog
    /// read them: what the copy proves when it loads with the key triggers off (`realm::load`).
    #[serde(skip)]
    pub foreign_keys: Vec<KeyCheck>,
}

/// One foreign key of a copied table (raw names).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCheck {
    pub constraint: String,
    pub child: (String, String),
    pub parent: (String, String),
    pub columns: Vec<String>,
    pub ref_columns: Vec<String>,
    pub match_full: bool,
}

impl Plan {
    /// The realms table, then the realm-scoped tables parents first.
    pub fn copy_order(&self) -> impl Iterator<Item = &RealmTable> {
        std::iter::once(&self.realms).chain(self.tables.iter())
    }
}

/// The plan from the catalog model and the columns. Fails when there is no realms table with a
/// single-column primary key, as then no realm can be named.
pub fn build(cat: &Catalog, cfg: &Config, cols: &Columns) -> Result<Plan> {
    let realms_oid = match &cat.realms {
        RealmsTable::Found(oid) => *oid,
        RealmsTable::Disabled => return Err(Error::RealmsTableDisabled),
        RealmsTable::Missing { schema, name } => {
            return Err(Error::RealmsTableMissing {
                schema: schema.clone(),
                name: name.clone(),
            })
        }
    };
    let tables = cat.table_map();
    let realms_t = tables[&realms_oid];
    let key_type = cat
        .realms_key_type
        .clone()
        .ok_or_else(|| Error::NoRealmKey {
            table: format!("{}.{}", realms_t.schema, realms_t.name),
        })?;
    let key_col = cat
        .constraints
        .iter()
        .find(|c| c.table == realms_oid && c.kind == ConstraintKind::PrimaryKey)
        .and_then(|c| c.columns.first())
        .and_then(|n| realms_t.column_by_num(*n))
        .map(|c| c.name.clone())
        .ok_or(Error::RealmKeyUnreadable)?;
    let columns_of = |schema: &str, name: &str| {
        cols.get(&(schema.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default()
    };
    let pk_of = |oid: u32| -> Vec<String> {
        cat.constraints
            .iter()
            .find(|c| c.table == oid && c.kind == ConstraintKind::PrimaryKey)
            .map(|c| tables[&oid].column_names(&c.columns))
            .unwrap_or_default()
    };
    let ctx = Ctx::new(cat, cfg);
    let mut scoped: BTreeMap<u32, RealmTable> = BTreeMap::new();
    let mut without_column = Vec::new();
    for t in ctx.scoped_tables() {
        if t.schema == "realmguard" {
            continue;
        }
        match ctx.realm_col(t.oid).and_then(|n| t.column_by_num(n)) {
            Some(c) => {
                scoped.insert(
                    t.oid,
                    RealmTable {
                        schema: t.schema.clone(),
                        name: t.name.clone(),
                        realm_column: c.name.clone(),
                        columns: columns_of(&t.schema, &t.name),
                        primary_key: pk_of(t.oid),
                    },
                );
            }
            None => without_column.push(format!("{}.{}", t.schema, t.name)),
        }
    }
    // Parent edges between realm-scoped tables, and references out to global tables.
    let mut parents: BTreeMap<u32, BTreeSet<u32>> =
        scoped.keys().map(|o| (*o, BTreeSet::new())).collect();
    let mut globals = Vec::new();
    let mut foreign_keys = Vec::new();
    for c in &cat.constraints {
        let Some(fk) = &c.foreign else { continue };
        if scoped.contains_key(&c.table) || c.table == realms_oid {
            let (child, parent) = (tables[&c.table], tables[&fk.ref_table]);
            foreign_keys.push(KeyCheck {
                constraint: c.name.clone(),
                child: (child.schema.clone(), child.name.clone()),
                parent: (parent.schema.clone(), parent.name.clone()),
                columns: child.column_names(&c.columns),
                ref_columns: parent.column_names(&fk.ref_columns),
                match_full: fk.match_full,
            });
        }
        if !scoped.contains_key(&c.table) || fk.ref_table == c.table {
            continue;
        }
        if scoped.contains_key(&fk.ref_table) {
            parents.entry(c.table).or_default().insert(fk.ref_table);
        } else if fk.ref_table != realms_oid {
            let (child, parent) = (tables[&c.table], tables[&fk.ref_table]);
            let ref_columns = parent.column_names(&fk.ref_columns);
            let pcols = columns_of(&parent.schema, &parent.name);
            let ref_types = ref_columns
                .iter()
                .map(|n| {
                    pcols
                        .iter()
                        .find(|c| &c.name == n)
                        .map(|c| c.type_.clone())
                        .unwrap_or_else(|| "text".into())
                })
                .collect();
            globals.push(GlobalRef {
                constraint: c.name.clone(),
                table: format!("{}.{}", child.schema, child.name),
                columns: child.column_names(&c.columns),
                ref_schema: parent.schema.clone(),
                ref_name: parent.name.clone(),
                ref_columns,
                ref_types,
            });
        }
    }
    let (order, cyclic) = parents_first(&parents, |o| scoped[o].label());
    let cyclic = cyclic.iter().map(|o| scoped[o].label()).collect();
    let tables = order.iter().map(|o| scoped[o].clone()).collect();
    Ok(Plan {
        realms: RealmTable {
            schema: realms_t.schema.clone(),
            name: realms_t.name.clone(),
            realm_column: key_col,
            columns: columns_of(&realms_t.schema, &realms_t.name),
            primary_key: pk_of(realms_oid),
        },
        key_type,
        tables,
        globals,
        without_column,
        cyclic,
        foreign_keys,
    })
}

/// Kahn's order over `parents` (node → the nodes it references), ties broken by `name` so the
/// order is stable; nodes left on a cycle come last, in name order, and are also returned apart.
fn parents_first<F: Fn(&u32) -> String>(
    parents: &BTreeMap<u32, BTreeSet<u32>>,
    name: F,
) -> (Vec<u32>, Vec<u32>) {
    let mut left: BTreeMap<u32, BTreeSet<u32>> = parents.clone();
    let mut order = Vec::new();
    loop {
        let mut ready: Vec<u32> = left
            .iter()
            .filter(|(_, ps)| ps.iter().all(|p| !left.contains_key(p)))
            .map(|(o, _)| *o)
            .collect();
        if ready.is_empty() {
            break;
        }
        ready.sort_by_key(|o| name(o));
        for o in &ready {
            left.remove(o);
        }
        order.extend(ready);
    }
    let mut cyclic: Vec<u32> = left.keys().copied().collect();
    cyclic.sort_by_key(|o| name(o));
    order.extend(cyclic.iter().copied());
    (order, cyclic)
}

/// Read the catalog and the columns of this database and build its plan.
pub async fn load(conn: &mut PgConnection, cfg: &Config) -> Result<Plan> {
    let cat = Catalog::load(conn, &cfg.realms_table, &cfg.realm_column)
        .await
        .map_err(|source| Error::Catalog { source })?;
    let cols = columns(conn).await?;
    build(&cat, cfg, &cols)
}

/// Every user table's columns (one query).
pub async fn columns(conn: &mut PgConnection) -> Result<Columns> {
    let rows = sqlx::query(COLUMNS_SQL)
        .fetch_all(&mut *conn)
        .await
        .map_err(|source| Error::ReadColumns { source })?;
    let mut out: Columns = HashMap::new();
    for r in rows {
        let row = |source| Error::ColumnRow { source };
        out.entry((
            r.try_get("schema").map_err(row)?,
            r.try_get("name").map_err(row)?,
        ))
        .or_default()
        .push(Col {
            name: r.try_get("column_name").map_err(row)?,
            type_: r.try_get("type").map_err(row)?,
            generated: r.try_get("generated").map_err(row)?,
            sequence: r.try_get("sequence").map_err(row)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_ties_go_by_name() {
        // 1 realms-scoped users, 2 groups, 3 memberships (users, groups), 4 statements (3).
        let names =
            |o: &u32| ["", "users", "groups", "memberships", "statements"][*o as usize].to_string();
        let mut p: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        p.insert(4, [3].into());
        p.insert(3, [1, 2].into());
        p.insert(1, BTreeSet::new());
        p.insert(2, BTreeSet::new());
        let (order, cyclic) = parents_first(&p, names);
        assert_eq!(order, vec![2, 1, 3, 4]);
        assert!(cyclic.is_empty());
    }

    #[test]
    fn a_cycle_is_placed_last_and_named() {
        let names = |o: &u32| format!("t{o}");
        let mut p: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        p.insert(1, BTreeSet::new());
        p.insert(2, [3].into());
        p.insert(3, [2].into());
        let (order, cyclic) = parents_first(&p, names);
        assert_eq!(order, vec![1, 2, 3]);
        assert_eq!(cyclic, vec![2, 3]);
    }
}
