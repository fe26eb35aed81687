//! `realmguard check`: the one-command CI schema check.

use crate::cli::{CheckArgs, GlobalOpts};
use crate::Outcome;

pub async fn cmd_check(_g: &GlobalOpts, _a: &CheckArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("check is not implemented yet")
}
