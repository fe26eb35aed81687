//! `realmguard verify`.

use super::cli::{GlobalOpts, VerifyArgs};
use super::Outcome;
use crate::verify;
use std::io::Write;
use std::time::Instant;

pub(super) async fn verify(g: &GlobalOpts, a: &VerifyArgs) -> anyhow::Result<Outcome> {
    let mut cfg = g.config()?;
    cfg.rls.enabled |= a.rls;
    if let Some(p) = a.profile {
        cfg.profile = Some(p.into());
    }
    let target = g.database().await?;
    let mut conn = target.connect().await?;
    let started = Instant::now();
    let report = verify::verify(&mut conn, &cfg).await?;
    // Opt-in measurement line for scripts/bench-verify.sh; stderr, so it never mixes with results.
    if std::env::var_os("REALMGUARD_VERIFY_STATS").is_some() {
        eprintln!(
            "realmguard: verify read the catalog in {} queries, {} ms, {} tables",
            report.queries,
            started.elapsed().as_millis(),
            report.summary.tables
        );
    }
    let mut out = std::io::stdout().lock();
    verify::render(&report, g.format, &mut out)?;
    out.flush()?;
    Ok(Outcome::from_findings(!report.ok))
}
