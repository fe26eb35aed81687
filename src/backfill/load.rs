//! The backfill's read of the database before planning: the shared catalog with the backfill's
//! details, and whether the realms table holds the default realm.

use super::error::{Error, Result};
use super::plan::FILL_MARKER;
use super::view::{self, Catalog};
use crate::catalog::{self, RealmsTable};
use crate::config::Config;
use crate::db::{qualified, quote_ident};
use sqlx::PgConnection;

/// The catalog the planner works on, for `cfg`'s realms table, default realm and realm column.
pub async fn read(conn: &mut PgConnection, cfg: &Config) -> Result<Catalog> {
    let cat = catalog::Catalog::load_for_backfill(
        conn,
        &cfg.realms_table,
        &cfg.realm_column,
        FILL_MARKER,
    )
    .await?;
    let mut exists = false;
    if let RealmsTable::Found(oid) = cat.realms {
        let realms = cat.tables.iter().find(|t| t.oid == oid);
        let key = cat
            .constraints
            .iter()
            .find(|c| c.table == oid && c.kind == catalog::ConstraintKind::PrimaryKey)
            .filter(|c| c.columns.len() == 1);
        if let (Some(t), Some(k)) = (realms, key) {
            if let Some(col) = t.column_by_num(k.columns[0]) {
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE {}::text = $1)",
                    qualified(&t.schema, &t.name),
                    quote_ident(&col.name)
                );
                exists = sqlx::query_scalar(&sql)
                    .bind(&cfg.backfill.default_realm)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(Error::RealmsTable)?;
            }
        }
    }
    let mut view = view::of(&cat, exists);
    let parts = partitions(conn).await?;
    for t in view.tables.iter_mut().filter(|t| t.partitioned) {
        t.partitions = parts
            .iter()
            .filter(|p| p.0 == t.schema && p.1 == t.name)
            .map(|p| view::Partition {
                schema: p.2.clone(),
                name: p.3.clone(),
                partitioned: p.4,
            })
            .collect();
    }
    Ok(view)
}

/// Every direct partition: parent schema and name, the partition's, and whether it is itself
/// partitioned; in byte order. The shared catalog flags partitions but does not link them to
/// their parent, which only the backfill needs (it works partition by partition: see
/// `docs/backfill-design.md`, "Partitioned tables"), so the backfill reads it itself.
async fn partitions(
    conn: &mut PgConnection,
) -> Result<Vec<(String, String, String, String, bool)>> {
    let mut rows: Vec<(String, String, String, String, bool)> = sqlx::query_as(
        "SELECT pn.nspname::text, p.relname::text, cn.nspname::text, c.relname::text, c.relkind = 'p'
         FROM pg_inherits i
         JOIN pg_class p ON p.oid = i.inhparent
         JOIN pg_namespace pn ON pn.oid = p.relnamespace
         JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_namespace cn ON cn.oid = c.relnamespace
         WHERE p.relkind = 'p' AND c.relispartition",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::Partitions)?;
    rows.sort();
    Ok(rows)
}

/// Every user trigger (`backfill finish` keeps the fill triggers), but those PostgreSQL cloned
/// onto partitions from a trigger of their partitioned table: they go with it, and cannot be
/// dropped on their own.
pub async fn triggers(conn: &mut PgConnection) -> Result<Vec<catalog::Trigger>> {
    let mut found = catalog::triggers(conn, FILL_MARKER).await?;
    let cloned: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, t.tgname::text
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE t.tgparentid <> 0",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::Triggers)?;
    found.retain(|t| {
        !cloned
            .iter()
            .any(|(s, tb, n)| *s == t.schema && *tb == t.table && *n == t.name)
    });
    Ok(found)
}
