//! `realmguard lint`: static analysis of migration SQL.

use crate::cli::{GlobalOpts, LintArgs};
use crate::Outcome;

pub fn cmd_lint(_g: &GlobalOpts, _a: &LintArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("lint is not implemented yet")
}
