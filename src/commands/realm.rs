//! `realmguard realm list | copy | move | diff | delete`.

use super::cli::{
    GlobalOpts, RealmCommand, RealmCopyArgs, RealmDeleteArgs, RealmDiffArgs, RealmListArgs,
    RealmMoveArgs, RealmTo,
};
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
        RealmCommand::Move(a) => Some(&a.realm.to),
        RealmCommand::List(_) | RealmCommand::Delete(_) | RealmCommand::Probe(_) => None,
    };
    let mut out = crate::db::secrets_of(to.map(String::as_str));
    if let Some(Ok(url)) = to.filter(|t| !is_url(t)).map(|t| fleet_url(t)) {
        out.extend(crate::db::secrets_of(Some(&url)));
    }
    out
}

fn is_url(to: &str) -> bool {
    to.contains("://")
}

/// `--to NAME`: the URL of the fleet file's target NAME (inline or from its environment
/// variable). Targets listed by `[targets_from]` are not looked up: that would run the fleet's
/// query before the realm command starts; give their URL (docs/realm.md).
fn fleet_url(name: &str) -> anyhow::Result<String> {
    use crate::fleet::config::{url_source, FleetFile, DEFAULT_PATH};
    let file = FleetFile::load(None).map_err(|e| {
        anyhow::anyhow!(
            "--to {name} is not a URL (postgres://…), and it names no fleet target: {e}"
        )
    })?;
    let Some(t) = file.targets.iter().find(|t| t.name == name) else {
        let known: Vec<&str> = file.targets.iter().map(|t| t.name.as_str()).collect();
        anyhow::bail!(
            "--to {name} is neither a URL (postgres://…) nor a target of {DEFAULT_PATH} (targets: {})",
            known.join(", ")
        );
    };
    let source =
        url_source(&t.url, &t.url_env).map_err(|m| anyhow::anyhow!("target `{name}`: {m}"))?;
    crate::fleet::targets::url_of(&source)
        .map_err(|e| anyhow::anyhow!("target `{name}`: {}", crate::output::cause_chain(&e)))
}

fn options(a: &RealmTo, dry_run: bool) -> anyhow::Result<CopyOptions> {
    realm::validate_realm(&a.realm)?;
    Ok(CopyOptions {
        realm: a.realm.clone(),
        to: match is_url(&a.to) {
            true => Target::from_url(&a.to).map_err(|e| anyhow::anyhow!("--to: {e:#}"))?,
            false => Target::from_url(&fleet_url(&a.to)?)
                .map_err(|e| anyhow::anyhow!("--to {}: {e:#}", a.to))?,
        },
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

pub(super) async fn move_realm(g: &GlobalOpts, a: &RealmMoveArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("realm move")?;
    let cfg = g.config()?;
    let o = options(&a.realm, a.dry_run)?;
    let opts = realm::moving::MoveOptions {
        realm: o.realm,
        to: o.to,
        dry_run: a.dry_run,
        lock_timeout: a.lock_timeout,
        batch: a.batch_ms,
    };
    let source = g.database().await?;
    let cancel = super::cancel_on_ctrl_c();
    let sink = Stderr::default();
    let r = match a.online {
        true => realm::online::move_online(&source, &cfg, &opts, &sink, &cancel).await?,
        false => realm::moving::move_realm(&source, &cfg, &opts, &sink, &cancel).await?,
    };
    print(&r, g)?;
    Ok(Outcome::Clean)
}

pub(super) async fn delete(g: &GlobalOpts, a: &RealmDeleteArgs) -> anyhow::Result<Outcome> {
    g.format.reject_junit("realm delete")?;
    let cfg = g.config()?;
    realm::validate_realm(&a.realm)?;
    let opts = realm::delete::DeleteOptions {
        batch: a.batch_ms,
        lock_timeout: a.lock_timeout,
        bypass_fence: false,
    };
    let source = g.database().await?;
    let cancel = super::cancel_on_ctrl_c();
    let r = realm::delete(
        &source,
        &cfg,
        &a.realm,
        &opts,
        a.dry_run,
        &Stderr::default(),
        &cancel,
    )
    .await?;
    print(&r, g)?;
    Ok(Outcome::Clean)
}
