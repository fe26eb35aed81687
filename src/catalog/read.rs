//! The reads themselves: the realms table, the full read (one query per file) and the scoped read
//! (one statement, see the module's comment).

use super::rows::*;
use super::*;
use sqlx::postgres::types::Oid;
use sqlx::postgres::PgRow;
use sqlx::Row;

pub(super) async fn resolve_realms(
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
pub(super) fn realms_from(
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

/// The whole catalog, one query per file.
pub(super) async fn read_all(
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
pub(super) async fn scoped(
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
    decode_scoped(&row, realms_table, realm_column)
}

/// The catalog (and, for the guard, the changed tables) from the one row `scoped.sql` answers,
/// however it was sent: bound and prepared by sqlx (`scoped`) or `EXECUTE`d inside the migrate
/// runner's batch (`GUARD_EXECUTE_SQL`).
pub(super) fn decode_scoped(
    row: &PgRow,
    realms_table: &str,
    realm_column: &crate::config::RealmColumns,
) -> Result<(Vec<(String, String)>, Catalog)> {
    fn part<T: serde::de::DeserializeOwned>(row: &PgRow, col: &str) -> Result<Vec<T>> {
        let text: Option<String> = row.try_get(col)?;
        match text {
            None => Ok(Vec::new()),
            Some(t) => super::pgtext::from_str(&t).map_err(|source| Error::DecodeText {
                what: col.to_string(),
                source,
            }),
        }
    }
    let touched: Vec<(String, String)> = part(row, "touched")?;
    let scope: Vec<(u32, bool)> = part(row, "scope")?;
    let mut cat = assemble(
        part(row, "tables")?,
        part(row, "constraints")?,
        part(row, "indexes")?,
    );
    let wanted = wanted_defs(&cat.tables, &cat.indexes, realm_column);
    attach_defs(&mut cat, part(row, "index_defs")?, &wanted);
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
