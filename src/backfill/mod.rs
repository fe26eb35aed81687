//! `realmguard backfill`: convert legacy single-key tables to the realm shape online.

use crate::cli::{BackfillArgs, BackfillRunArgs, GlobalOpts};
use crate::Outcome;

pub async fn cmd_plan(_g: &GlobalOpts, _a: &BackfillArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("backfill is not implemented yet")
}

pub async fn cmd_run(_g: &GlobalOpts, _a: &BackfillRunArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("backfill is not implemented yet")
}

pub async fn cmd_status(_g: &GlobalOpts, _a: &BackfillArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("backfill is not implemented yet")
}
