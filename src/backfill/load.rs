//! The backfill's read of the database before planning: the shared catalog with the backfill's
//! details, and whether the realms table holds the default realm.

use super::plan::FILL_MARKER;
use super::view::{self, Catalog};
use crate::catalog::{self, RealmsTable};
use crate::config::Config;
use crate::db::{qualified, quote_ident};
use anyhow::Context;
use sqlx::PgConnection;

/// The catalog the planner works on, for `cfg`'s realms table, default realm and realm column.
pub async fn read(conn: &mut PgConnection, cfg: &Config) -> anyhow::Result<Catalog> {
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
                    .context("cannot read the realms table")?;
            }
        }
    }
    Ok(view::of(&cat, exists))
}

/// Every user trigger (`backfill finish` keeps the fill triggers).
pub async fn triggers(conn: &mut PgConnection) -> anyhow::Result<Vec<catalog::Trigger>> {
    Ok(catalog::triggers(conn, FILL_MARKER).await?)
}
