//! `realmguard migrate`, `status`, `baseline`.

use crate::cli::{BaselineArgs, GlobalOpts, MigrateArgs, StatusArgs};
use crate::Outcome;

pub async fn cmd_migrate(_g: &GlobalOpts, _a: &MigrateArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("migrate is not implemented yet")
}

pub async fn cmd_status(_g: &GlobalOpts, _a: &StatusArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("status is not implemented yet")
}

pub async fn cmd_baseline(_g: &GlobalOpts, _a: &BaselineArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("baseline is not implemented yet")
}
