//! `realmguard check`.

use super::cli::{CheckArgs, GlobalOpts};
use super::progress::Stderr;
use super::Outcome;
use crate::db::Target;
use crate::{check, migrate};
use std::io::Write;

pub(super) async fn check(g: &GlobalOpts, a: &CheckArgs) -> anyhow::Result<Outcome> {
    let mut cfg = g.config()?;
    cfg.rls.enabled |= a.rls;
    // Bad file names and a missing directory stop here, before any server is touched.
    let files = migrate::source::load_dir(&a.source.dir)?;
    let server = match &a.scratch_url {
        Some(u) => Target::from_url(u)?,
        None => g.database().await?,
    };
    // Ctrl-C drops the scratch database before exiting.
    let cancel = super::cancel_on_ctrl_c();
    let report = check::run(&server, &cfg, &files, &Stderr::default(), &cancel).await?;
    let audit_notes = report.audit.iter().flat_map(|a| &a.notes);
    for note in report.lint.notes.iter().chain(audit_notes) {
        eprintln!("{note}");
    }
    let mut out = std::io::stdout().lock();
    check::render(
        &report,
        g.format,
        crate::lint::render::github_actions(),
        &mut out,
    )?;
    out.flush()?;
    if let Some(e) = &report.apply.error {
        anyhow::bail!("{e}");
    }
    Ok(Outcome::from_findings(report.errors() > 0))
}
