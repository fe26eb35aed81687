//! `realmguard realm list | copy | diff`.

use super::cli::{GlobalOpts, RealmCommand, RealmCopyArgs, RealmDiffArgs, RealmListArgs, RealmTo};
use super::progress::Stderr;
use super::Outcome;
use crate::db::Target;
use crate::realm::{self, CopyOptions};
use std::io::Write;

/// The passwords of the URLs the command names besides `--database-url`, never to be printed.
pub(super) fn secrets(c: &RealmCommand) -> Vec<String> {
    let to = match c {
        RealmCommand::Copy(a) => Some(&a.realm.to),
        RealmCommand::Diff(a) => Some(&a.realm.to),
        RealmCommand::List(_) => None,
    };
    crate::db::secrets_of(to.map(String::as_str))
}

fn options(a: &RealmTo, dry_run: bool) -> anyhow::Result<CopyOptions> {
    realm::validate_realm(&a.realm)?;
    Ok(CopyOptions {
        realm: a.realm.clone(),
        to: Target::from_url(&a.to).map_err(|e| anyhow::anyhow!("--to: {e:#}"))?,
        dry_run,
    })
}

fn print(r: &realm::report::RealmReport, g: &GlobalOpts) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    realm::render(r, g.format, &mut out)?;
    out.flush()?;
    Ok(())
}

pub(super) async fn list(g: &GlobalOpts, a: &RealmListArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("realm list")?;
    let cfg = g.config()?;
    let source = g.database().await?;
    let r = realm::list(&source, &cfg, a.counts).await?;
    let mut out = std::io::stdout().lock();
    realm::render_list(&r, g.format, &mut out)?;
    out.flush()?;
    Ok(Outcome::Clean)
}

pub(super) async fn copy(g: &GlobalOpts, a: &RealmCopyArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("realm copy")?;
    let cfg = g.config()?;
    let opts = options(&a.realm, a.dry_run)?;
    let source = g.database().await?;
    let cancel = super::cancel_on_ctrl_c();
    let r = realm::copy(&source, &cfg, &opts, &Stderr::default(), &cancel).await?;
    print(&r, g)?;
    Ok(Outcome::Clean)
}

pub(super) async fn diff(g: &GlobalOpts, a: &RealmDiffArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("realm diff")?;
    let cfg = g.config()?;
    let opts = options(&a.realm, false)?;
    let source = g.database().await?;
    let r = realm::diff(&source, &cfg, &opts).await?;
    print(&r, g)?;
    Ok(Outcome::from_findings(!r.ok))
}
