//! The backfill's read of the database before planning.

use super::model::{self, Catalog};
use crate::config::Config;
use sqlx::PgConnection;

pub use model::triggers;

/// The catalog the planner works on, for `cfg`'s realms table, default realm and realm column.
pub async fn read(conn: &mut PgConnection, cfg: &Config) -> anyhow::Result<Catalog> {
    model::read(
        conn,
        &cfg.realms_table,
        &cfg.backfill.default_realm,
        &cfg.realm_column,
    )
    .await
}
