//! Delete a realm online: children first (the copy order reversed), each table in short
//! batches whose size adapts to take about `batch_ms`, each batch its own transaction under
//! `lock_timeout`; the realm's row in the realms table last. Other realms' rows are never
//! touched: every statement filters on the realm column.

use super::plan::{Plan, RealmTable};
use super::report::Deleted;
use super::{Error, Result};
use crate::db::quote_ident;
use crate::events::{Cancel, Event, EventSink, Unit};
use sqlx::PgConnection;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DeleteOptions {
    pub batch: Duration,
    pub lock_timeout: Duration,
    /// Get past the realm's fence (a move deletes from fenced tables).
    pub bypass_fence: bool,
}

/// The batch statement: up to `$1` of the realm's rows, addressed by primary key (by ctid for a
/// table without one).
pub fn batch_sql(t: &RealmTable, realm: &str, key_type: &str) -> String {
    let filter = t.realm_filter(realm, key_type);
    if t.primary_key.is_empty() {
        return format!(
            "DELETE FROM {0} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {0} WHERE {filter} LIMIT $1))",
            t.sql_name()
        );
    }
    let key = t
        .primary_key
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "DELETE FROM {0} WHERE {filter} AND ({key}) IN (SELECT {key} FROM {0} WHERE {filter} LIMIT $1)",
        t.sql_name()
    )
}

/// Delete every row of `realm`, children first, realms row last.
pub async fn delete_realm(
    conn: &mut PgConnection,
    plan: &Plan,
    realm: &str,
    opts: &DeleteOptions,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<Vec<Deleted>> {
    let ms = opts.lock_timeout.as_millis().max(1);
    let bypass = if opts.bypass_fence { "on" } else { "off" };
    super::exec(
        conn,
        &format!("SET lock_timeout = '{ms}ms'; SET realmguard.fence_bypass = '{bypass}'"),
    )
    .await?;
    let mut order: Vec<&RealmTable> = plan.tables.iter().rev().collect();
    order.push(&plan.realms);
    let mut out = Vec::new();
    for t in order {
        out.push(delete_table(conn, t, realm, &plan.key_type, opts, sink, cancel).await?);
    }
    super::exec(conn, "RESET realmguard.fence_bypass").await?;
    Ok(out)
}

async fn delete_table(
    conn: &mut PgConnection,
    t: &RealmTable,
    realm: &str,
    key_type: &str,
    opts: &DeleteOptions,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<Deleted> {
    let started = Instant::now();
    let total = super::estimate(conn, t, realm, key_type).await?;
    sink.emit(Event::WorkStarted {
        unit: Unit::Rows,
        total: total.max(0) as u64,
        label: format!("deleting from {}", t.label()),
    });
    let sql = batch_sql(t, realm, key_type);
    let (mut size, mut rows, mut batches, mut conflicts) = (1000i64, 0i64, 0u64, 0u32);
    let result = loop {
        if cancel.is_cancelled() {
            break Err(Error::CancelledDeleting { table: t.label() });
        }
        let b0 = Instant::now();
        match sqlx::query(&sql).bind(size).execute(&mut *conn).await {
            Ok(done) => {
                conflicts = 0;
                let n = done.rows_affected() as i64;
                rows += n;
                batches += 1;
                sink.emit(Event::WorkProgress {
                    done: rows as u64,
                    label: format!("deleting from {}", t.label()),
                });
                if n < size {
                    break Ok(());
                }
                // Aim the next batch at the configured duration, growing at most 4x at a time.
                let took = b0.elapsed().as_secs_f64().max(1e-4);
                let want = (size as f64 * opts.batch.as_secs_f64() / took) as i64;
                size = want.clamp(100, size * 4).min(1_000_000);
            }
            Err(e) if crate::db::is_lock_conflict(&e) && conflicts < 30 => {
                conflicts += 1;
                tokio::time::sleep(crate::db::backoff(
                    conflicts,
                    Duration::from_millis(20),
                    Duration::from_secs(1),
                ))
                .await;
            }
            Err(e) => {
                break Err(Error::Delete {
                    table: t.label(),
                    source: Box::new(Error::statement(&e)),
                })
            }
        }
    };
    sink.emit(Event::WorkFinished);
    result?;
    Ok(Deleted {
        table: t.label(),
        rows,
        batches,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// `realm delete` refuses a realm that is being moved (its delete belongs to the move).
pub async fn refuse_if_moving(conn: &mut PgConnection, realm: &str) -> Result<()> {
    if let Some((target, phase)) = super::ledger::read(conn, realm).await? {
        if phase != super::ledger::Phase::Done {
            return Err(Error::BeingMoved {
                realm: realm.into(),
                target,
                phase: phase.as_str(),
            });
        }
    }
    Ok(())
}
