//! `realm move`: fence the realm on the source, copy and verify it, commit the target, delete it
//! from the source in batches, drop the fence; each phase recorded (see [`super::ledger`]) so a
//! rerun resumes.

use super::delete::{self, DeleteOptions};
use super::ledger::{self, Phase};
use super::report::{PlanStep, RealmReport};
use super::{fence, hash, open_sides, preflight, Sides};
use super::{Error, Result};
use crate::config::Config;
use crate::db::Target;
use crate::events::{Cancel, Event, EventSink};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MoveOptions {
    pub realm: String,
    pub to: Target,
    pub dry_run: bool,
    pub lock_timeout: Duration,
    pub batch: Duration,
}

pub async fn move_realm(
    source: &Target,
    cfg: &Config,
    opts: &MoveOptions,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<RealmReport> {
    super::validate_realm(&opts.realm)?;
    let realm = opts.realm.as_str();
    let Sides {
        mut src,
        mut dst,
        sp,
        tp,
    } = open_sides(source, &opts.to, cfg, false).await?;
    let recorded = ledger::read(&mut src, realm).await?;
    if opts.dry_run {
        let mut r = RealmReport::new(realm, "plan");
        r.plan = steps(&mut src, &sp, &tp, realm).await?;
        return Ok(r);
    }
    let mut phase = match recorded {
        Some((target, p)) if p != Phase::Done => {
            if target != opts.to.display {
                return Err(Error::OtherTarget {
                    realm: realm.into(),
                    target,
                    to: opts.to.display.clone(),
                });
            }
            sink.emit(Event::line(format!(
                "realmguard: resuming the move of realm {realm} (phase {})",
                p.as_str()
            )));
            p
        }
        _ => {
            // Every refusal before the fence goes up, so a refused move changes nothing.
            preflight::schema(&mut src, &mut dst, cfg, &sp, &tp).await?;
            preflight::data(&mut src, &mut dst, &sp, realm).await?;
            ledger::begin(&mut src, realm, &opts.to.display).await?;
            Phase::Fencing
        }
    };
    let mut report = RealmReport::new(realm, "done");
    if phase <= Phase::Fenced {
        fence::install(&mut src, &sp, realm, opts.lock_timeout).await?;
        if phase == Phase::Fencing {
            ledger::set(&mut src, realm, Phase::Fenced).await?;
        }
        sink.emit(Event::line(format!(
            "realmguard: realm {realm} fenced on the source: its writes are refused until the move ends"
        )));
        if on_target(&mut dst, &tp, realm).await? {
            // A run that died after the target's commit: the realm must be whole there.
            let d = super::diff(
                source,
                cfg,
                &super::CopyOptions {
                    realm: realm.into(),
                    to: opts.to.clone(),
                    dry_run: false,
                },
            )
            .await?;
            if !d.ok {
                return Err(Error::DiffersOnTarget {
                    realm: realm.into(),
                    tables: d.differing().join(", "),
                });
            }
            report.tables = d.tables;
        } else {
            report.tables =
                super::copy_in_one(source, &mut src, &mut dst, &sp, &tp, realm, sink, cancel)
                    .await?;
        }
        ledger::set(&mut src, realm, Phase::Copied).await?;
        phase = Phase::Copied;
    }
    if phase == Phase::Copied {
        let d = DeleteOptions {
            batch: opts.batch,
            lock_timeout: opts.lock_timeout,
            bypass_fence: true,
        };
        report.deleted = delete::delete_realm(&mut src, &sp, realm, &d, sink, cancel).await?;
        ledger::set(&mut src, realm, Phase::Deleted).await?;
    }
    report.fence_ms = ledger::fenced_ms(&mut src, realm).await?;
    fence::remove(&mut src, &sp, realm, opts.lock_timeout).await?;
    ledger::set(&mut src, realm, Phase::Done).await?;
    Ok(report)
}

/// Whether the target already has the realm's row.
async fn on_target(
    dst: &mut sqlx::PgConnection,
    tp: &super::plan::Plan,
    realm: &str,
) -> Result<bool> {
    let d = hash::digest(
        dst,
        &tp.realms,
        &[tp.realms.realm_column.as_str()],
        realm,
        &tp.key_type,
    )
    .await?;
    Ok(d.rows > 0)
}

/// The dry run: fence, copy, delete and unfence statements, with estimated rows.
async fn steps(
    src: &mut sqlx::PgConnection,
    sp: &super::plan::Plan,
    tp: &super::plan::Plan,
    realm: &str,
) -> Result<Vec<PlanStep>> {
    let mut out = Vec::new();
    for t in sp.copy_order() {
        out.push(PlanStep {
            step: "fence".into(),
            table: t.label(),
            estimated_rows: super::estimate(src, t, realm, &sp.key_type).await?,
            sql: fence::install_sql(t, realm, &sp.key_type),
        });
    }
    out.extend(super::copy_steps(src, sp, tp, realm).await?);
    let mut order: Vec<&super::plan::RealmTable> = sp.tables.iter().rev().collect();
    order.push(&sp.realms);
    for t in order {
        out.push(PlanStep {
            step: "delete in batches".into(),
            table: t.label(),
            estimated_rows: super::estimate(src, t, realm, &sp.key_type).await?,
            sql: delete::batch_sql(t, realm, &sp.key_type),
        });
    }
    for t in sp.copy_order() {
        out.push(PlanStep {
            step: "unfence".into(),
            table: t.label(),
            estimated_rows: 0,
            sql: fence::drop_sql(t, realm),
        });
    }
    Ok(out)
}
