//! Stream one realm from the source to the target: per table `COPY (SELECT …) TO STDOUT` on the
//! source into `COPY … FROM STDIN` on the target, binary format, through a buffer of fixed size
//! (constant memory whatever the realm's size); then count and hash both sides and compare.
//!
//! Both connections are in a transaction the caller opened (the source's a `REPEATABLE READ
//! READ ONLY` snapshot) and commits or abandons: nothing here commits.

use super::error::{Error, Result};
use super::hash::{self, Digest};
use super::plan::{Plan, RealmTable};
use super::report::TableReport;
use crate::db::quote_ident;
use crate::events::{Cancel, Event, EventSink, Unit};
use futures_util::StreamExt;
use sqlx::PgConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes gathered before one write to the target. The server sends one message per row; writing
/// each on its own would cost a system call per row.
const CHUNK: usize = 256 * 1024;
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Chunks read ahead of the target at most.
const IN_FLIGHT: usize = 4;

/// A table's hash differs between the two sides after the copy.
#[derive(Debug, thiserror::Error)]
#[error("{table}: the target does not hold what the source holds after the copy ({source_rows} rows, hash {source_hash} on the source; {target_rows} rows, hash {target_hash} on the target); the target was rolled back: look for a trigger, rule or default on the target that changes rows")]
pub struct Mismatch {
    pub table: String,
    pub source_rows: i64,
    pub target_rows: i64,
    pub source_hash: String,
    pub target_hash: String,
}

/// Copy every table of the realm (realms row first, parents first) and verify each. Returns on
/// the first table whose hashes differ, with [`Mismatch`]; the caller must then not commit.
#[allow(clippy::too_many_arguments)]
pub async fn copy_tables(
    src: &mut PgConnection,
    hasher: &mut PgConnection,
    dst: &mut PgConnection,
    sp: &Plan,
    tp: &Plan,
    realm: &str,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<Vec<TableReport>> {
    let mode = super::load::begin(dst, tp).await?;
    let mut out = Vec::new();
    for s in sp.copy_order() {
        if cancel.is_cancelled() {
            return Err(Error::CancelledBefore { table: s.label() });
        }
        let t = tp
            .copy_order()
            .find(|t| t.schema == s.schema && t.name == s.name)
            .ok_or_else(|| Error::NoTargetTable { table: s.label() })?;
        let started = Instant::now();
        let cols = hash::hashed_columns(s);
        // The source's hash runs on a second connection in the same snapshot, while the rows
        // stream: it costs no time on the copy's critical path.
        let total = super::estimate(hasher, s, realm, &sp.key_type).await?;
        let (before, bytes) = tokio::join!(
            hash::digest(hasher, s, &cols, realm, &sp.key_type),
            stream_table(src, dst, s, t, realm, &sp.key_type, total, sink, cancel)
        );
        let (before, bytes) = (before?, bytes?);
        let after = hash::digest(dst, t, &cols, realm, &tp.key_type).await?;
        let report = table_report(s, &before, &after, started, bytes);
        if !report.matched {
            return Err(Mismatch {
                table: report.table,
                source_rows: before.rows,
                target_rows: after.rows,
                source_hash: before.hash,
                target_hash: after.hash,
            }
            .into());
        }
        out.push(report);
    }
    if mode == super::load::Mode::KeysCheckedAfter {
        super::load::check_foreign_keys(dst, tp, realm).await?;
    }
    Ok(out)
}

pub fn table_report(
    s: &RealmTable,
    before: &Digest,
    after: &Digest,
    started: Instant,
    bytes: u64,
) -> TableReport {
    TableReport {
        table: s.label(),
        rows: before.rows,
        target_rows: after.rows,
        source_hash: before.hash.clone(),
        target_hash: after.hash.clone(),
        matched: before == after,
        duration_ms: started.elapsed().as_millis() as u64,
        bytes,
    }
}

/// The column list both COPY statements use: the source's non-generated columns, in the
/// source's order, named (so the target's own column order does not matter).
fn column_list(s: &RealmTable) -> String {
    s.copied_columns()
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn copy_out_sql(s: &RealmTable, realm: &str, key_type: &str) -> String {
    format!(
        "COPY (SELECT {} FROM {} WHERE {}) TO STDOUT (FORMAT binary)",
        column_list(s),
        s.sql_name(),
        s.realm_filter(realm, key_type)
    )
}

pub fn copy_in_sql(s: &RealmTable, t: &RealmTable) -> String {
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        t.sql_name(),
        column_list(s)
    )
}

/// Stream one table; returns the bytes moved. `total` (the planner's estimate) sizes the bar.
#[allow(clippy::too_many_arguments)]
async fn stream_table(
    src: &mut PgConnection,
    dst: &mut PgConnection,
    s: &RealmTable,
    t: &RealmTable,
    realm: &str,
    key_type: &str,
    total: i64,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<u64> {
    let label = s.label();
    sink.emit(Event::WorkStarted {
        unit: Unit::Rows,
        total: total.max(0) as u64,
        label: label.clone(),
    });
    let result = async {
        let mut copy_in = dst
            .copy_in_raw(&copy_in_sql(s, t))
            .await
            .map_err(|source| Error::StartCopyIn {
                table: label.clone(),
                source,
            })?;
        let mut stream = match src.copy_out_raw(&copy_out_sql(s, realm, key_type)).await {
            Ok(st) => st,
            Err(e) => {
                let _ = copy_in.abort("the source could not be read").await;
                return Err(Error::StartCopyOut {
                    table: label.clone(),
                    source: e,
                });
            }
        };
        // The source is read and the target written at once, as the two ends of a pipe are:
        // while one chunk goes to the target the next is read, so neither server waits on the
        // other (docs/realm.md). A few chunks in flight at most keep memory constant.
        let started = Instant::now();
        let (messages, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(IN_FLIGHT);
        // Each side owns its end of the channel, so the writer sees the end when the reader is
        // done, and the reader stops when the writer has failed.
        let (stream_ref, copy_ref) = (&mut stream, &mut copy_in);
        let (m_ref, b_ref, label_ref) = (&messages, &bytes, &label);
        let read = async move {
            let mut buf = Vec::with_capacity(CHUNK);
            while let Some(chunk) = stream_ref.next().await {
                let chunk = chunk.map_err(|source| Error::ReadSource {
                    table: label_ref.clone(),
                    source,
                })?;
                b_ref.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                m_ref.fetch_add(1, Ordering::Relaxed);
                buf.extend_from_slice(&chunk);
                if buf.len() >= CHUNK {
                    let full = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK));
                    if tx.send(full).await.is_err() {
                        // The writer stopped; its error is the one reported.
                        return Ok::<(), Error>(());
                    }
                }
            }
            if !buf.is_empty() {
                let _ = tx.send(buf).await;
            }
            Ok::<(), Error>(())
        };
        let write = async move {
            let mut last = started;
            while let Some(buf) = rx.recv().await {
                copy_ref
                    .send(buf.as_slice())
                    .await
                    .map_err(|source| Error::WriteTarget {
                        table: label_ref.clone(),
                        source,
                    })?;
                if cancel.is_cancelled() {
                    return Err(Error::CancelledCopying {
                        table: label_ref.clone(),
                    });
                }
                if last.elapsed() >= PROGRESS_EVERY {
                    last = Instant::now();
                    let (m, b) = (m_ref.load(Ordering::Relaxed), b_ref.load(Ordering::Relaxed));
                    sink.emit(progress(label_ref, m, b, started));
                }
            }
            Ok::<(), Error>(())
        };
        let (read, write) = tokio::join!(read, write);
        drop(stream);
        write?;
        if let Err(e) = read {
            let _ = copy_in.abort("the source could not be read").await;
            return Err(e);
        }
        let (messages, bytes) = (messages.into_inner(), bytes.into_inner());
        copy_in.finish().await.map_err(|e| Error::TargetRefused {
            table: label.clone(),
            source: Box::new(Error::statement(&e)),
        })?;
        sink.emit(progress(&label, messages, bytes, started));
        Ok(bytes)
    }
    .await;
    sink.emit(Event::WorkFinished);
    result
}

fn progress(label: &str, messages: u64, bytes: u64, started: Instant) -> Event {
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    Event::WorkProgress {
        // One message per row, plus the binary header and trailer.
        done: messages.saturating_sub(2),
        label: format!("{label} {:.1} MB/s", bytes as f64 / secs / 1e6),
    }
}

/// Move every identity and serial sequence of the target's realm tables past the largest id now
/// in its table (never backwards), so the target's next generated ids do not collide.
pub async fn advance_sequences(dst: &mut PgConnection, tp: &Plan) -> Result<()> {
    for t in tp.copy_order() {
        for c in &t.columns {
            let Some(seq) = &c.sequence else { continue };
            let col = quote_ident(&c.name);
            sqlx::query(&format!(
                "SELECT setval($1::regclass, greatest(m, (SELECT last_value FROM {seq})))
                 FROM (SELECT max({col})::int8 AS m FROM {}) AS s WHERE m IS NOT NULL",
                t.sql_name()
            ))
            .bind(seq)
            .execute(&mut *dst)
            .await
            .map_err(|source| Error::AdvanceSequence {
                sequence: seq.clone(),
                table: t.label(),
                column: c.name.clone(),
                source,
            })?;
        }
    }
    Ok(())
}
