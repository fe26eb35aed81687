//! The slice of `pg_catalog` the backfill planner needs, as plain structs, and the reader that
//! fills it (a fixed handful of queries, one per file under `sql/`, whatever the table count).
//! The planner works on these structs only, so its tests build them by hand.

use anyhow::Context;
use sqlx::{PgConnection, Row};
use std::collections::BTreeSet;

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
    pub owner: String,
    pub rls: bool,
    pub force_rls: bool,
    pub columns: Vec<Column>,
    pub constraints: Vec<Constraint>,
    pub indexes: Vec<Index>,
    pub triggers: Vec<String>,
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

/// A user trigger (see `sql/triggers.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// Its function's schema and name.
    pub function: (String, String),
    /// One a backfill installed to fill the realm column.
    pub fills_realm: bool,
}

/// Every user trigger, by table: the planner's and `backfill finish`'s one read of them.
pub async fn triggers(conn: &mut PgConnection) -> anyhow::Result<Vec<Trigger>> {
    let rows = sqlx::query(include_str!("sql/triggers.sql"))
        .bind(super::plan::FILL_MARKER)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read triggers from pg_catalog")?;
    Ok(rows
        .iter()
        .map(|r| Trigger {
            schema: r.get(0),
            table: r.get(1),
            name: r.get(2),
            function: (r.get(3), r.get(4)),
            fills_realm: r.get(5),
        })
        .collect())
}

impl Catalog {
    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.is(schema, name))
    }
}

/// Read the catalog. `realms_table` is the config's name for it ("" = none); `default_realm` is
/// looked up in it so the plan knows whether to insert that row; `realm_column` says which
/// unique indexes the planner will rebuild from their definitions.
pub async fn read(
    conn: &mut PgConnection,
    realms_table: &str,
    default_realm: &str,
    realm_column: &str,
) -> anyhow::Result<Catalog> {
    let mut cat = Catalog {
        current_schema: sqlx::query_scalar::<_, Option<String>>("SELECT current_schema()::text")
            .fetch_one(&mut *conn)
            .await?
            .unwrap_or_else(|| "public".into()),
        ..Catalog::default()
    };
    for r in sqlx::query(include_str!("sql/columns.sql"))
        .fetch_all(&mut *conn)
        .await
        .context("cannot read tables from pg_catalog")?
    {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        if cat.tables.last().is_none_or(|t| !t.is(&schema, &name)) {
            cat.tables.push(Table {
                schema,
                name,
                rls: r.get(2),
                force_rls: r.get(3),
                owner: r.get(4),
                ..Table::default()
            });
        }
        let t = cat.tables.last_mut().expect("pushed above");
        t.columns.push(Column {
            name: r.get(5),
            type_name: r.get(6),
            not_null: r.get(7),
            not_valid_not_null: r.get(8),
        });
    }
    for r in sqlx::query(include_str!("sql/constraints.sql"))
        .fetch_all(&mut *conn)
        .await
        .context("cannot read constraints from pg_catalog")?
    {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        let Some(t) = cat.tables.iter_mut().find(|t| t.is(&schema, &name)) else {
            continue;
        };
        let kind = match r.get::<String, _>(3).as_str() {
            "p" => ConstraintKind::Primary,
            "u" => ConstraintKind::Unique,
            "f" => ConstraintKind::Foreign,
            _ => ConstraintKind::Check,
        };
        t.constraints.push(Constraint {
            name: r.get(2),
            kind,
            validated: r.get(4),
            columns: r.get(5),
            ref_schema: r.get(6),
            ref_table: r.get(7),
            ref_columns: r.get(8),
            on_delete: r
                .get::<Option<String>, _>(9)
                .and_then(|s| s.chars().next())
                .filter(|c| *c != ' '),
            index: r.get(10),
        });
    }
    for r in sqlx::query(concat!(
        include_str!("../catalog/sql/busy.sql"),
        include_str!("sql/indexes.sql")
    ))
    .bind(realm_column)
    .fetch_all(&mut *conn)
    .await
    .context("cannot read indexes from pg_catalog")?
    {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        let Some(t) = cat.tables.iter_mut().find(|t| t.is(&schema, &name)) else {
            continue;
        };
        t.indexes.push(Index {
            name: r.get(2),
            unique: r.get(3),
            primary: r.get(4),
            valid: r.get(5),
            partial: r.get(6),
            columns: r.get(7),
            definition: r.get(8),
            tablespace: r.get(9),
        });
    }
    for r in sqlx::query(include_str!("sql/relations.sql"))
        .fetch_all(&mut *conn)
        .await
        .context("cannot read relation names from pg_catalog")?
    {
        cat.relations.insert((r.get(0), r.get(1)));
    }
    for tr in triggers(conn).await? {
        if let Some(t) = cat.tables.iter_mut().find(|t| t.is(&tr.schema, &tr.table)) {
            t.triggers.push(tr.name);
        }
    }
    if !realms_table.is_empty() {
        // to_regclass raises on a syntactically invalid name; the config check reports it.
        let row = sqlx::query(include_str!("sql/realms.sql"))
            .bind(realms_table)
            .fetch_optional(&mut *conn)
            .await
            .with_context(|| format!("cannot resolve realms_table `{realms_table}`"))?;
        if let Some(r) = row {
            let key: Option<String> = r.get(2);
            let ty: Option<String> = r.get(3);
            let realms = Realms {
                schema: r.get(0),
                name: r.get(1),
                key: key.zip(ty),
            };
            if let Some((k, _)) = &realms.key {
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE {}::text = $1)",
                    crate::db::qualified(&realms.schema, &realms.name),
                    crate::db::quote_ident(k)
                );
                cat.default_realm_exists = sqlx::query_scalar(&sql)
                    .bind(default_realm)
                    .fetch_one(&mut *conn)
                    .await
                    .context("cannot read the realms table")?;
            }
            cat.realms = Some(realms);
        }
    }
    Ok(cat)
}
