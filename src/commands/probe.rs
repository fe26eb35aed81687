//! `realmguard realm probe`.

use super::cli::{GlobalOpts, ProbeArgs};
use super::progress::Stderr;
use super::Outcome;
use crate::probe::{self, ProbeOptions};
use std::io::Write;

pub(super) async fn probe(g: &GlobalOpts, a: &ProbeArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("realm probe")?;
    let cfg = g.config()?;
    let opts = ProbeOptions {
        role: a.role.clone(),
        realm: a.realm.clone(),
        other: a.other.clone(),
        lock_timeout: a.lock_timeout,
    };
    let target = g.database().await?;
    let mut conn = target.connect().await?;
    // Ctrl-C: the probe stops and rolls back; the connection closes with the process.
    let cancel = super::cancel_on_ctrl_c();
    let report = probe::probe(&mut conn, &cfg, &opts, &Stderr::default(), &cancel).await?;
    let mut out = std::io::stdout().lock();
    probe::render(&report, g.format, &mut out)?;
    out.flush()?;
    Ok(Outcome::from_findings(!report.ok))
}
