//! What the backfill needs of the catalog beyond what the rules judge: column types, index
//! tablespaces and definitions, triggers and every relation name. Read by
//! [`Catalog::load_for_backfill`] in a few more queries after the full read, never by verify's
//! reads or the migrate guard's scoped one (whose round trips count). The NOT VALID not-null
//! constraints' names are the exception: every read has them at no cost (`assemble`).

use super::{AttNum, Catalog, Error, Index, Result, Table};
use sqlx::postgres::types::Oid;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::collections::{BTreeSet, HashMap};

const COLUMN_TYPES_SQL: &str = include_str!("sql/column_types.sql");
const INDEX_DETAILS_SQL: &str = concat!(
    include_str!("sql/busy.sql"),
    include_str!("sql/index_details.sql")
);
const TRIGGERS_SQL: &str = include_str!("sql/triggers.sql");
const RELATIONS_SQL: &str = include_str!("sql/relations.sql");

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    /// The NOT VALID not-null constraint (PostgreSQL 18+) on a column, by (table, column): such
    /// a column counts as nullable (`Column::not_null` is false), and this is what validates it.
    pub not_valid_not_null: HashMap<(u32, AttNum), String>,
    /// `format_type` of each column, by (table, column). Backfill read only.
    pub column_types: HashMap<(u32, AttNum), String>,
    /// The tablespace of an index not in the database's default one. Backfill read only.
    pub index_tablespaces: HashMap<u32, String>,
    /// `pg_get_indexdef` of the unique indexes the backfill rebuilds from their definition (see
    /// [`needs_definition`]), unless another session held them. Backfill read only.
    pub index_definitions: HashMap<u32, String>,
    /// Every user trigger of the tables read. Backfill read only.
    pub triggers: Vec<Trigger>,
    /// Every relation (schema, name) outside the system schemas, realmguard's included: the
    /// names a new index must not take. Backfill read only.
    pub relations: BTreeSet<(String, String)>,
}

/// A user trigger (see `sql/triggers.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// Its function's schema and name.
    pub function: (String, String),
    /// One a backfill installed to fill the realm column (its function carries the marker).
    pub fills_realm: bool,
}

struct TriggerRow {
    schema: String,
    table_name: String,
    name: String,
    function_schema: String,
    function_name: String,
    fills_realm: bool,
}

struct ColumnTypeRow {
    table_oid: Oid,
    attnum: i16,
    type_name: String,
}

struct IndexDetailRow {
    indexrelid: Oid,
    tablespace: Option<String>,
    definition: Option<String>,
}

struct RelationRow {
    schema: String,
    name: String,
}

// Rows decoded by column name: a renamed or retyped column is an error, never a panic.

impl TriggerRow {
    fn decode(r: &PgRow) -> Result<TriggerRow, sqlx::Error> {
        Ok(TriggerRow {
            schema: r.try_get("schema")?,
            table_name: r.try_get("table_name")?,
            name: r.try_get("name")?,
            function_schema: r.try_get("function_schema")?,
            function_name: r.try_get("function_name")?,
            fills_realm: r.try_get("fills_realm")?,
        })
    }
}

impl ColumnTypeRow {
    fn decode(r: &PgRow) -> Result<ColumnTypeRow, sqlx::Error> {
        Ok(ColumnTypeRow {
            table_oid: r.try_get("table_oid")?,
            attnum: r.try_get("attnum")?,
            type_name: r.try_get("type_name")?,
        })
    }
}

impl IndexDetailRow {
    fn decode(r: &PgRow) -> Result<IndexDetailRow, sqlx::Error> {
        Ok(IndexDetailRow {
            indexrelid: r.try_get("indexrelid")?,
            tablespace: r.try_get("tablespace")?,
            definition: r.try_get("definition")?,
        })
    }
}

impl RelationRow {
    fn decode(r: &PgRow) -> Result<RelationRow, sqlx::Error> {
        Ok(RelationRow {
            schema: r.try_get("schema")?,
            name: r.try_get("name")?,
        })
    }
}

/// Run `q` and decode every row with `decode`, `what` naming the read in the error.
async fn rows<T>(
    q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    conn: &mut PgConnection,
    decode: fn(&PgRow) -> Result<T, sqlx::Error>,
    what: &'static str,
) -> Result<Vec<T>> {
    let rows = q.fetch_all(&mut *conn).await.map_err(super::read(what))?;
    rows.iter()
        .map(decode)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|source| Error::Decode {
            what: what.to_string(),
            source,
        })
}

/// Every user trigger, in (schema, table, name) order; `marker` is the comment a backfill's fill
/// function carries.
pub async fn triggers(conn: &mut PgConnection, marker: &str) -> Result<Vec<Trigger>> {
    let rows = rows(
        sqlx::query(TRIGGERS_SQL).bind(marker),
        conn,
        TriggerRow::decode,
        "triggers",
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Trigger {
            schema: r.schema,
            table: r.table_name,
            name: r.name,
            function: (r.function_schema, r.function_name),
            fills_realm: r.fills_realm,
        })
        .collect())
}

/// Whether the backfill needs `i`'s definition text to make it unique per realm: a unique index,
/// not the primary key, whose key lacks the realm column (also when the table has no such column
/// yet). Partial and expression ones are rebuilt from it; for the others it tells whether
/// anything beyond the column list (NULLS NOT DISTINCT, INCLUDE, an operator class, an ordering,
/// storage options) must be kept, which the column list alone would lose.
pub fn needs_definition(t: &Table, i: &Index, realm_column: &crate::config::RealmColumns) -> bool {
    i.unique
        && !i.primary
        && t.column(t.realm_column(realm_column))
            .is_none_or(|c| !i.key_columns.contains(&c.num))
}

impl Catalog {
    /// [`Catalog::load`] and the backfill's details (see the module's comment).
    pub async fn load_for_backfill(
        conn: &mut PgConnection,
        realms_table: &str,
        realm_column: &crate::config::RealmColumns,
        fill_marker: &str,
    ) -> Result<Catalog> {
        let mut cat = Catalog::load(conn, realms_table, realm_column).await?;
        let oids: Vec<Oid> = cat.tables.iter().map(|t| Oid(t.oid)).collect();
        let types = rows(
            sqlx::query(COLUMN_TYPES_SQL).bind(&oids),
            conn,
            ColumnTypeRow::decode,
            "column types",
        )
        .await?;
        cat.details.column_types = types
            .into_iter()
            .map(|r| ((r.table_oid.0, r.attnum), r.type_name))
            .collect();
        let tables = cat.table_map();
        let wanted: Vec<Oid> = cat
            .indexes
            .iter()
            .filter(|i| {
                tables
                    .get(&i.table)
                    .is_some_and(|t| needs_definition(t, i, realm_column))
            })
            .map(|i| Oid(i.oid))
            .collect();
        let details = rows(
            sqlx::query(INDEX_DETAILS_SQL).bind(&oids).bind(&wanted),
            conn,
            IndexDetailRow::decode,
            "index details",
        )
        .await?;
        for d in details {
            if let Some(s) = d.tablespace {
                cat.details.index_tablespaces.insert(d.indexrelid.0, s);
            }
            if let Some(def) = d.definition {
                cat.details.index_definitions.insert(d.indexrelid.0, def);
            }
        }
        cat.details.triggers = triggers(conn, fill_marker).await?;
        let relations = rows(
            sqlx::query(RELATIONS_SQL),
            conn,
            RelationRow::decode,
            "relation names",
        )
        .await?;
        cat.details.relations = relations.into_iter().map(|r| (r.schema, r.name)).collect();
        cat.queries += 4;
        Ok(cat)
    }
}
