//! `realmguard migrate`, `status` and `baseline`: versioned SQL files applied exactly once, in
//! order, atomically, under a lock two runners cannot both hold.
//!
//! `source` reads the files, `plan` compares them with the ledger (pure), `ledger` owns the
//! `realmguard.migrations` table, `runner` applies, `guard` keeps each migration realm-safe.

mod error;
pub mod guard;
pub mod ledger;
pub mod plan;
pub mod render;
pub mod runner;
pub mod source;

pub use error::{Error, Result};
pub use runner::{migrate_reporting, MigrateOptions, MigrateReport};

use crate::db::Target;
use crate::events::EventSink;

/// Every version on disk or in the ledger and its state, read-only (no lock, nothing created).
pub async fn status(target: &Target, files: &[source::Migration]) -> Result<Vec<plan::Entry>> {
    let mut conn = target.connect().await?;
    let applied = ledger::read(&mut conn).await?;
    Ok(plan::entries(&applied, files))
}

/// Record every file with a version up to `version` as applied without running it, under the
/// migration lock; returns the versions newly marked.
pub async fn baseline(
    target: &Target,
    files: &[source::Migration],
    version: i64,
    sink: &dyn EventSink,
) -> Result<Vec<i64>> {
    // The lock's own session does the work: baseline has no guard needing a second one.
    let mut conn = target.connect().await?;
    runner::acquire_lock(&mut conn, std::time::Duration::from_secs(60), sink).await?;
    let marked = async {
        // sqlx-cli history first: versions it applied must not be marked or run again later.
        ledger::prepare(&mut conn, files).await?;
        let applied = ledger::read(&mut conn).await?;
        let mut marked = Vec::new();
        for m in files.iter().filter(|m| m.version <= version) {
            if applied.iter().any(|x| x.version == m.version) {
                continue;
            }
            ledger::insert(&mut conn, m, true, 0, m.statement_count(), 0, true)
                .await
                .map_err(|e| Error::Baseline {
                    version: m.version,
                    source: Box::new(e),
                })?;
            marked.push(m.version);
        }
        Ok::<_, Error>(marked)
    }
    .await;
    runner::release_lock(conn).await;
    marked
}
