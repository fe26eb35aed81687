//! `realmguard verify`: read the live catalog, evaluate the realm rules, report.

use crate::cli::{GlobalOpts, VerifyArgs};
use crate::Outcome;

pub async fn cmd_verify(_g: &GlobalOpts, _a: &VerifyArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("verify is not implemented yet")
}
