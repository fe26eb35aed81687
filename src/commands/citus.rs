//! `realmguard citus plan | distribute`.

use super::cli::{CitusArgs, CitusDistributeArgs, GlobalOpts};
use super::progress::Stderr;
use super::Outcome;
use crate::citus::{self, DistributeOptions};
use std::io::Write;

pub(super) async fn plan(g: &GlobalOpts, a: &CitusArgs) -> anyhow::Result<Outcome> {
    let cfg = g.config()?;
    let target = g.database().await?;
    let mut conn = target.connect().await?;
    let plan = citus::load_plan(&mut conn, &cfg, &plan_options(a)).await?;
    let mut out = std::io::stdout().lock();
    citus::render_plan(&plan, g.format, &mut out)?;
    out.flush()?;
    Ok(Outcome::from_findings(!plan.blockers.is_empty()))
}

pub(super) async fn distribute(g: &GlobalOpts, a: &CitusDistributeArgs) -> anyhow::Result<Outcome> {
    let cfg = g.config()?;
    let target = g.database().await?;
    let opts = DistributeOptions {
        plan: plan_options(&a.common),
        lock_timeout: a.lock_timeout,
        lock_retries: a.lock_retries,
    };
    let cancel = super::cancel_on_ctrl_c();
    let sink = Stderr::default();
    let (report, outcome) = citus::distribute(&target, &cfg, &opts, &sink, &cancel).await?;
    let mut out = std::io::stdout().lock();
    citus::render_report(&report, g.format, &mut out)?;
    out.flush()?;
    outcome?;
    Ok(Outcome::Clean)
}

fn plan_options(a: &CitusArgs) -> citus::plan::Options {
    citus::plan::Options {
        shard_count: a.shard_count,
    }
}
