//! `realmguard lint`.

use super::cli::{GlobalOpts, LintArgs};
use super::Outcome;
use crate::lint::{self, render};
use std::io::Write;

pub(super) fn lint(g: &GlobalOpts, a: &LintArgs) -> anyhow::Result<Outcome> {
    let opts = a.options()?;
    let cfg = opts.apply(&g.config()?);
    let report = lint::lint_paths_with(&a.paths, &cfg, &opts)?;
    for note in &report.notes {
        eprintln!("{note}");
    }
    let mut out = std::io::stdout().lock();
    render::render(&report, g.format, render::github_actions(), &mut out)?;
    out.flush()?;
    Ok(Outcome::from_findings(report.errors() > 0))
}
