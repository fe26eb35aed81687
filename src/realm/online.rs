//! `realm move --online`: for a realm too big to fence for the length of a copy. A publication on
//! the source with a row filter per table (`FOR TABLE t WHERE (realm_id = 'w1')`, allowed for
//! updates and deletes because the composite primary key puts the realm column in the replica
//! identity), a subscription on the target that copies the existing rows and then follows the
//! changes; once it has caught up, a fence of a few seconds, drain to the fence's WAL position,
//! verify the hashes, drop subscription and publication, delete at the source, unfence.
//!
//! Not resumable by phase like the offline move: a failure drops the subscription and
//! publication and leaves the fence (if it went up); see docs/realm.md.

use super::delete::{self, DeleteOptions};
use super::moving::MoveOptions;
use super::plan::Plan;
use super::report::RealmReport;
use super::{fence, hash, open_sides, preflight, Sides};
use super::{Error, Result};
use crate::config::Config;
use crate::db::{quote_ident, quote_literal, Target};
use crate::events::{Cancel, Event, EventSink};
use sqlx::PgConnection;
use std::time::{Duration, Instant};

/// How long to wait for the initial copy and catch-up before giving up.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(3600);
const POLL: Duration = Duration::from_millis(20);
/// How long after the fence the target may take to apply the last changes.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// The publication, subscription and slot name for `realm`.
fn name(realm: &str) -> String {
    fence::trigger_name(realm).replace("realmguard_fence_", "realmguard_move_")
}

/// Refuse when the source cannot publish or the roles lack the rights.
async fn check_rights(src: &mut PgConnection, dst: &mut PgConnection) -> Result<()> {
    let read = |source| Error::ReadRights { source };
    let wal: String = sqlx::query_scalar("SELECT current_setting('wal_level')")
        .fetch_one(&mut *src)
        .await
        .map_err(read)?;
    if wal != "logical" {
        return Err(Error::WalLevel { wal_level: wal });
    }
    let (role, ok): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, (rolsuper OR rolreplication)
           AND has_database_privilege(current_database(), 'CREATE')
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut *src)
    .await
    .map_err(read)?;
    if !ok {
        return Err(Error::SourceRole {
            quoted: quote_ident(&role),
            role,
        });
    }
    let (role, ok): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, rolsuper
           OR pg_has_role(current_user, 'pg_create_subscription', 'MEMBER')
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut *dst)
    .await
    .unwrap_or_else(|_| (String::new(), false));
    if !ok {
        return Err(Error::TargetRole { role });
    }
    Ok(())
}

fn publication_sql(plan: &Plan, realm: &str, pubname: &str) -> String {
    let tables = plan
        .copy_order()
        .map(|t| {
            format!(
                "{} WHERE ({})",
                t.sql_name(),
                t.realm_filter(realm, &plan.key_type)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE PUBLICATION {} FOR TABLE {tables}",
        quote_ident(pubname)
    )
}

pub async fn move_online(
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
    } = open_sides(source, &opts.to, cfg, true).await?;
    check_rights(&mut src, &mut dst).await?;
    preflight::data(&mut src, &mut dst, &sp, realm).await?;
    let n = name(realm);
    if opts.dry_run {
        let mut r = RealmReport::new(realm, "plan");
        r.plan.push(super::report::PlanStep {
            step: "publish".into(),
            table: "(every table of the realm)".into(),
            estimated_rows: 0,
            sql: publication_sql(&sp, realm, &n),
        });
        return Ok(r);
    }
    let result = replicate(
        &mut src, &mut dst, source, &sp, &tp, realm, &n, opts, sink, cancel,
    )
    .await;
    // Whatever happened, the subscription (and with it the slot) and the publication go.
    // The subscription's oid names its table-sync slots (left by a copy cut short).
    let sub_oid: Option<i64> =
        sqlx::query_scalar("SELECT oid::int8 FROM pg_subscription WHERE subname = $1")
            .bind(&n)
            .fetch_optional(&mut dst)
            .await
            .ok()
            .flatten();
    let _ = super::exec(
        &mut dst,
        &format!("ALTER SUBSCRIPTION {} DISABLE", quote_ident(&n)),
    )
    .await;
    let _ = super::exec(
        &mut dst,
        &format!(
            "ALTER SUBSCRIPTION {} SET (slot_name = NONE)",
            quote_ident(&n)
        ),
    )
    .await;
    let _ = super::exec(
        &mut dst,
        &format!("DROP SUBSCRIPTION IF EXISTS {}", quote_ident(&n)),
    )
    .await;
    if let Err(left) = drop_slots(&mut src, &n, sub_oid).await {
        sink.emit(Event::line(format!(
            "warning: replication slot(s) {left} left on the source, which keeps its WAL: \
             drop with SELECT pg_drop_replication_slot('<name>')"
        )));
    }
    let _ = super::exec(
        &mut src,
        &format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&n)),
    )
    .await;
    let (tables, fenced_at) = result?;
    super::copy::advance_sequences(&mut dst, &tp).await?;
    let mut report = RealmReport::new(realm, "done");
    report.tables = tables;
    report.fence_ms = Some(fenced_at.elapsed().as_millis() as u64);
    let d = DeleteOptions {
        batch: opts.batch,
        lock_timeout: opts.lock_timeout,
        bypass_fence: true,
    };
    report.deleted = delete::delete_realm(&mut src, &sp, realm, &d, sink, cancel).await?;
    fence::remove(&mut src, &sp, realm, opts.lock_timeout).await?;
    Ok(report)
}

/// Publish, subscribe, wait for the copy and catch-up, fence, drain, verify. Returns the
/// verified tables and when the fence went up.
#[allow(clippy::too_many_arguments)]
async fn replicate(
    src: &mut PgConnection,
    dst: &mut PgConnection,
    source: &Target,
    sp: &Plan,
    tp: &Plan,
    realm: &str,
    n: &str,
    opts: &MoveOptions,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<(Vec<super::report::TableReport>, Instant)> {
    super::exec(src, &publication_sql(sp, realm, n))
        .await
        .map_err(|e| Error::Publish {
            source: Box::new(e),
        })?;
    super::exec(
        dst,
        &format!(
            "CREATE SUBSCRIPTION {0} CONNECTION {1} PUBLICATION {0} WITH (copy_data = true, slot_name = {2})",
            quote_ident(n),
            quote_literal(&source.url),
            quote_literal(n)
        ),
    )
    .await
    .map_err(|e| Error::Subscribe {
        source: Box::new(e),
    })?;
    sink.emit(Event::line(format!(
        "realmguard: realm {realm} is replicating to the target; waiting for the initial copy"
    )));
    let started = Instant::now();
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
             WHERE s.subname = $1 AND r.srsubstate <> 'r'",
        )
        .bind(n)
        .fetch_one(&mut *dst)
        .await
        .map_err(|source| Error::ReadReplication { source })?;
        if pending == 0 && caught_up(src, n).await? {
            break;
        }
        wait(started, cancel, "the initial copy").await?;
    }
    // The fence: from here on the realm's writes are refused on the source.
    fence::install(src, sp, realm, opts.lock_timeout).await?;
    let fenced_at = Instant::now();
    sink.emit(Event::line(format!(
        "realmguard: realm {realm} fenced on the source; draining the last changes"
    )));
    // The realm is frozen on the source now: its hashes there are final. The target has
    // drained once it hashes the same (polled: the subscriber reports its position to the source
    // only every few seconds, while applying takes milliseconds).
    let mut tables = Vec::new();
    let drain_started = Instant::now();
    for s in sp.copy_order() {
        let t0 = Instant::now();
        let cols = hash::hashed_columns(s);
        let t = tp
            .copy_order()
            .find(|x| x.label() == s.label())
            .ok_or_else(|| Error::NoTargetTable { table: s.label() })?;
        // Both sides hash at once: the fence is up while they do (docs/realm.md).
        let (a, first) = tokio::join!(
            hash::digest(src, s, &cols, realm, &sp.key_type),
            hash::digest(dst, t, &cols, realm, &tp.key_type)
        );
        let (a, mut next) = (a?, Some(first?));
        loop {
            let b = match next.take() {
                Some(b) => b,
                None => hash::digest(dst, t, &cols, realm, &tp.key_type).await?,
            };
            if a == b {
                tables.push(super::copy::table_report(s, &a, &b, t0, 0));
                break;
            }
            if drain_started.elapsed() > DRAIN_LIMIT {
                return Err(Error::NotDrained {
                    table: s.label(),
                    secs: DRAIN_LIMIT.as_secs(),
                    source_rows: a.rows,
                    target_rows: b.rows,
                });
            }
            wait(started, cancel, "the drain").await?;
        }
    }
    Ok((tables, fenced_at))
}

/// How long the cleanup waits for the subscription's walsenders to let go of their slots.
const SLOT_RELEASE_LIMIT: Duration = Duration::from_secs(10);

/// Drops the move's slot, and any table-sync slot of its subscription, on the source. The
/// subscriber's workers stop some moments after `DISABLE`, and a slot cannot be dropped while
/// their walsender still holds it ("is active for PID"): dropped as soon as it is free, and after
/// a few seconds its walsender (ours, its subscription gone) is ended. A slot left behind would
/// keep the source's WAL forever (docs/realm.md, "move --online"). `Err` names what is left.
async fn drop_slots(
    src: &mut PgConnection,
    slot: &str,
    sub_oid: Option<i64>,
) -> std::result::Result<(), String> {
    let sync = sub_oid.map(|o| format!("pg\\_{o}\\_sync\\_%"));
    let started = Instant::now();
    loop {
        let left: Vec<(String, Option<i32>)> = sqlx::query_as(
            "SELECT slot_name::text, active_pid FROM pg_replication_slots
             WHERE slot_name = $1 OR slot_name LIKE $2",
        )
        .bind(slot)
        .bind(sync.as_deref())
        .fetch_all(&mut *src)
        .await
        .map_err(|_| slot.to_string())?;
        if left.is_empty() {
            return Ok(());
        }
        for (name, pid) in &left {
            match pid {
                None => {
                    let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
                        .bind(name)
                        .execute(&mut *src)
                        .await;
                }
                Some(pid) if started.elapsed() > Duration::from_secs(3) => {
                    let _ = sqlx::query("SELECT pg_terminate_backend($1)")
                        .bind(pid)
                        .execute(&mut *src)
                        .await;
                }
                Some(_) => {}
            }
        }
        if started.elapsed() > SLOT_RELEASE_LIMIT {
            let names: Vec<&str> = left.iter().map(|(n, _)| n.as_str()).collect();
            return Err(names.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the slot's confirmed position is within 1 MB of the source's WAL end (the fence then
/// has little left to wait for).
async fn caught_up(src: &mut PgConnection, slot: &str) -> Result<bool> {
    let ok: Option<bool> = sqlx::query_scalar(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) < 1048576
         FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(&mut *src)
    .await
    .map_err(|source| Error::ReadReplication { source })?
    .flatten();
    Ok(ok.unwrap_or(false))
}

async fn wait(started: Instant, cancel: &Cancel, what: &'static str) -> Result<()> {
    if cancel.is_cancelled() {
        return Err(Error::CancelledDuring { what });
    }
    if started.elapsed() > CATCH_UP_LIMIT {
        return Err(Error::TimedOut {
            what,
            secs: CATCH_UP_LIMIT.as_secs(),
        });
    }
    tokio::time::sleep(POLL).await;
    Ok(())
}
