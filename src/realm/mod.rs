//! `realmguard realm`: carry one realm between databases (the hub and a worker instance), prove
//! both sides hold the same rows, delete a realm online. See docs/realm.md.
//!
//! - [`plan`]: which tables, in which order (catalog foreign keys, parents first);
//! - [`preflight`]: the refusals;
//! - [`copy`]: the streaming COPY and the per-table verification;
//! - [`hash`]: the order-independent content hash, computed by the servers;
//! - [`fence`], [`ledger`], [`delete`]: what `move` adds (refuse writes, record phases, delete in
//!   batches);
//! - [`report`]: what the commands return and how it renders.

pub mod copy;
pub mod delete;
pub mod error;
pub mod fence;
pub mod hash;
pub mod ledger;
pub mod load;
pub mod moving;
pub mod online;
pub mod plan;
pub mod preflight;
pub mod report;

use crate::config::Config;
use crate::db::Target;
use crate::events::{Cancel, EventSink};
use plan::Plan;
use report::{ListReport, PlanStep, RealmCounts, RealmReport};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::time::Instant;

pub use error::{Error, Result};
pub use report::{render, render_list};

/// A realm id as given on the command line: non-empty, one line.
pub fn validate_realm(id: &str) -> Result<()> {
    if id.is_empty() || id.contains(['\n', '\r', '\0']) {
        return Err(Error::InvalidRealm);
    }
    Ok(())
}

/// What realm copy and diff need.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub realm: String,
    pub to: Target,
    /// Print the plan (tables, estimated rows, statements) without copying.
    pub dry_run: bool,
}

/// A connection with the session settings the hashes depend on pinned.
pub async fn open(target: &Target) -> Result<PgConnection> {
    let mut conn = target
        .connect()
        .await
        .map_err(|source| Error::Connect { source })?;
    hash::pin_session(&mut conn).await?;
    Ok(conn)
}

pub(crate) async fn exec(conn: &mut PgConnection, sql: &str) -> Result<()> {
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| Error::statement(&e))
}

/// Both sides opened, planned and through the schema preflight.
pub(crate) struct Sides {
    pub src: PgConnection,
    pub dst: PgConnection,
    pub sp: Plan,
    pub tp: Plan,
}

pub(crate) async fn open_sides(
    source: &Target,
    to: &Target,
    cfg: &Config,
    preflight: bool,
) -> Result<Sides> {
    if source.url == to.url {
        return Err(Error::SameDatabase);
    }
    let mut src = open(source).await?;
    let mut dst = open(to).await?;
    let sp = plan::load(&mut src, cfg).await.map_err(|e| Error::Plan {
        side: "source",
        source: Box::new(e),
    })?;
    let tp = plan::load(&mut dst, cfg).await.map_err(|e| Error::Plan {
        side: "target",
        source: Box::new(e),
    })?;
    if preflight {
        preflight::schema(&mut src, &mut dst, cfg, &sp, &tp).await?;
    }
    Ok(Sides { src, dst, sp, tp })
}

/// `realm copy`: preflight, copy in one source snapshot, verify, commit the target once.
pub async fn copy(
    source: &Target,
    cfg: &Config,
    opts: &CopyOptions,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<RealmReport> {
    validate_realm(&opts.realm)?;
    let Sides {
        mut src,
        mut dst,
        sp,
        tp,
    } = open_sides(source, &opts.to, cfg, true).await?;
    if opts.dry_run {
        let mut r = RealmReport::new(&opts.realm, "plan");
        r.plan = copy_steps(&mut src, &sp, &tp, &opts.realm).await?;
        return Ok(r);
    }
    let tables = copy_in_one(
        source,
        &mut src,
        &mut dst,
        &sp,
        &tp,
        &opts.realm,
        sink,
        cancel,
    )
    .await?;
    let mut r = RealmReport::new(&opts.realm, "done");
    r.tables = tables;
    Ok(r)
}

/// The copy proper: snapshot on the source, one transaction on the target, preflight of the
/// data, every table copied and verified, sequences moved, target committed. Any error leaves
/// the target's transaction uncommitted (the connection is dropped, so it rolls back).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn copy_in_one(
    source: &Target,
    src: &mut PgConnection,
    dst: &mut PgConnection,
    sp: &Plan,
    tp: &Plan,
    realm: &str,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<Vec<report::TableReport>> {
    exec(src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *src)
        .await
        .map_err(|source| Error::ExportSnapshot { source })?;
    let mut hasher = open(source).await?;
    exec(
        &mut hasher,
        &format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            crate::db::quote_literal(&snapshot)
        ),
    )
    .await
    .map_err(|e| Error::ShareSnapshot {
        source: Box::new(e),
    })?;
    exec(dst, "BEGIN").await?;
    preflight::data(src, dst, sp, realm).await?;
    let tables = copy::copy_tables(src, &mut hasher, dst, sp, tp, realm, sink, cancel).await?;
    copy::advance_sequences(dst, tp).await?;
    if cancel.is_cancelled() {
        return Err(Error::CancelledBeforeCommit);
    }
    exec(dst, "COMMIT").await.map_err(|e| Error::Commit {
        source: Box::new(e),
    })?;
    exec(src, "COMMIT").await?;
    Ok(tables)
}

/// The dry run's steps: one COPY per table with the planner's estimate of the realm's rows.
pub(crate) async fn copy_steps(
    src: &mut PgConnection,
    sp: &Plan,
    tp: &Plan,
    realm: &str,
) -> Result<Vec<PlanStep>> {
    let mut steps = Vec::new();
    for s in sp.copy_order() {
        let Some(t) = tp.copy_order().find(|t| t.label() == s.label()) else {
            continue;
        };
        steps.push(PlanStep {
            step: "copy".into(),
            table: s.label(),
            estimated_rows: estimate(src, s, realm, &sp.key_type).await?,
            sql: format!(
                "{}\n| {}",
                copy::copy_out_sql(s, realm, &sp.key_type),
                copy::copy_in_sql(s, t)
            ),
        });
    }
    Ok(steps)
}

/// The planner's estimate of the realm's rows in `t` (no scan).
pub(crate) async fn estimate(
    conn: &mut PgConnection,
    t: &plan::RealmTable,
    realm: &str,
    key_type: &str,
) -> Result<i64> {
    let plan: serde_json::Value = sqlx::query_scalar(&format!(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}",
        t.sql_name(),
        t.realm_filter(realm, key_type)
    ))
    .fetch_one(&mut *conn)
    .await
    .map_err(|source| Error::Estimate {
        table: t.label(),
        source,
    })?;
    Ok(plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64)
}

/// `realm diff`: counts and hashes per table on both sides (each side in one snapshot).
pub async fn diff(source: &Target, cfg: &Config, opts: &CopyOptions) -> Result<RealmReport> {
    validate_realm(&opts.realm)?;
    let Sides {
        mut src,
        mut dst,
        sp,
        tp,
    } = open_sides(source, &opts.to, cfg, false).await?;
    exec(&mut src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    exec(&mut dst, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let mut r = RealmReport::new(&opts.realm, "diff");
    for s in sp.copy_order() {
        let started = Instant::now();
        let cols = hash::hashed_columns(s);
        let before = hash::digest(&mut src, s, &cols, &opts.realm, &sp.key_type).await?;
        let after = match tp.copy_order().find(|t| t.label() == s.label()) {
            Some(t) if cols.iter().all(|c| t.column(c).is_some()) => {
                hash::digest(&mut dst, t, &cols, &opts.realm, &tp.key_type).await?
            }
            // A table or column the target lacks: it cannot hold the same rows.
            _ => hash::Digest {
                rows: 0,
                hash: "missing".into(),
            },
        };
        r.tables
            .push(copy::table_report(s, &before, &after, started, 0));
    }
    r.ok = r.tables.iter().all(|t| t.matched);
    Ok(r)
}

/// `realm list [--counts]`.
pub async fn list(source: &Target, cfg: &Config, counts: bool) -> Result<ListReport> {
    let mut conn = open(source).await?;
    let p = plan::load(&mut conn, cfg).await?;
    exec(&mut conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let ids: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT {}::text FROM {} ORDER BY 1",
        crate::db::quote_ident(&p.realms.realm_column),
        p.realms.sql_name()
    ))
    .fetch_all(&mut conn)
    .await
    .map_err(|source| Error::ReadTable {
        table: p.realms.label(),
        source,
    })?;
    let mut per: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    if counts {
        for t in &p.tables {
            let rows: Vec<(Option<String>, i64)> = sqlx::query_as(&format!(
                "SELECT {}::text, count(*) FROM {} GROUP BY 1",
                crate::db::quote_ident(&t.realm_column),
                t.sql_name()
            ))
            .fetch_all(&mut conn)
            .await
            .map_err(|source| Error::CountRows {
                table: t.label(),
                source,
            })?;
            for (realm, n) in rows {
                per.entry(realm.unwrap_or_else(|| "(null)".into()))
                    .or_default()
                    .insert(t.label(), n);
            }
        }
    }
    let tables: Vec<String> = if counts {
        p.tables.iter().map(|t| t.label()).collect()
    } else {
        Vec::new()
    };
    let realms = ids
        .into_iter()
        .map(|id| RealmCounts {
            counts: counts.then(|| {
                let mut c = per.remove(&id).unwrap_or_default();
                for t in &tables {
                    c.entry(t.clone()).or_insert(0);
                }
                c
            }),
            realm: id,
        })
        .collect();
    Ok(ListReport { realms, tables })
}

/// `realm delete`: the realm's rows, children first in short batches, then its realms row.
pub async fn delete(
    source: &Target,
    cfg: &Config,
    realm: &str,
    opts: &delete::DeleteOptions,
    dry_run: bool,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<RealmReport> {
    validate_realm(realm)?;
    let mut conn = open(source).await?;
    let p = plan::load(&mut conn, cfg).await?;
    delete::refuse_if_moving(&mut conn, realm).await?;
    let found = hash::digest(
        &mut conn,
        &p.realms,
        &[p.realms.realm_column.as_str()],
        realm,
        &p.key_type,
    )
    .await?;
    if found.rows == 0 {
        return Err(Error::NotHere {
            realm: realm.into(),
            table: p.realms.label(),
        });
    }
    let mut r = RealmReport::new(realm, if dry_run { "plan" } else { "done" });
    if dry_run {
        let mut order: Vec<&plan::RealmTable> = p.tables.iter().rev().collect();
        order.push(&p.realms);
        for t in order {
            r.plan.push(PlanStep {
                step: "delete in batches".into(),
                table: t.label(),
                estimated_rows: estimate(&mut conn, t, realm, &p.key_type).await?,
                sql: delete::batch_sql(t, realm, &p.key_type),
            });
        }
        return Ok(r);
    }
    r.deleted = delete::delete_realm(&mut conn, &p, realm, opts, sink, cancel).await?;
    Ok(r)
}
