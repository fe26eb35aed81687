//! `realmguard lint`.

use super::cli::{GlobalOpts, LintArgs};
use super::Outcome;
use crate::lint::{self, render};
use std::io::Write;

pub(super) fn lint(g: &GlobalOpts, a: &LintArgs) -> anyhow::Result<Outcome> {
    let cfg = g.config()?;
    let report = lint::lint_paths(&a.paths, &cfg)?;
    for note in &report.notes {
        eprintln!("{note}");
    }
    let mut out = std::io::stdout().lock();
    render::render(&report, g.format, render::github_actions(), &mut out)?;
    out.flush()?;
    Ok(Outcome::from_findings(report.errors() > 0))
}
