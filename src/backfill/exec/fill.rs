//! The fill: old rows given their realm in keyset batches sized by time, each its own short
//! transaction with its progress row, shown as a run of work in rows.

use super::ledger::{mark_done, Progress};
use super::{ms, watch_while, Blocked, Executor};
use crate::backfill::error::{Error, Result};
use crate::backfill::plan::Step;
use crate::db::{self, qualified, PgError};
use crate::events::{Event, Unit};
use sqlx::{Connection, Row};
use std::time::{Duration, Instant};

impl Executor<'_> {
    /// Fill old rows in keyset batches over `key`, each its own transaction, sized so one batch
    /// takes about `--batch-ms` (a concurrent writer waits at most about that long on its row
    /// locks). The upper bound is `max(key)` captured now that the trigger is live: later rows
    /// are the trigger's. Progress commits with each batch, so a rerun resumes after the last one.
    pub(super) async fn fill_step(
        &mut self,
        seq: i32,
        step: &Step,
        key: &str,
        sql: &str,
    ) -> Result<Progress> {
        let qt = qualified(&step.schema, &step.table);
        let existing = sqlx::query(
            "SELECT key_min, bound, done_upto, rows_done, batches, fill_ms
             FROM realmguard.backfill_progress WHERE table_schema = $1 AND table_name = $2",
        )
        .bind(&step.schema)
        .bind(&step.table)
        .fetch_optional(&mut *self.conn)
        .await?;
        let mut p = Progress {
            schema: step.schema.clone(),
            table: step.table.clone(),
            ..Progress::default()
        };
        match existing {
            Some(r) => {
                p.key_min = r.try_get("key_min")?;
                p.bound = r.try_get("bound")?;
                p.done_upto = r.try_get("done_upto")?;
                p.rows_done = r.try_get("rows_done")?;
                p.batches = r.try_get("batches")?;
                p.fill_ms = r.try_get("fill_ms")?;
                self.sink.emit(Event::line(format!(
                    "realmguard:     resuming after {key} = {} ({} rows already filled)",
                    p.done_upto, p.rows_done
                )));
            }
            None => {
                let q = crate::db::quote_ident(key);
                let r = sqlx::query(&format!(
                    "SELECT coalesce(min({q}), 0)::bigint AS lo, coalesce(max({q}), 0)::bigint AS hi FROM {qt}"
                ))
                .fetch_one(&mut *self.conn)
                .await?;
                let (lo, hi): (i64, i64) = (r.try_get("lo")?, r.try_get("hi")?);
                p.key_min = lo.saturating_sub(1);
                p.bound = hi;
                p.done_upto = p.key_min;
                sqlx::query(
                    "INSERT INTO realmguard.backfill_progress (table_schema, table_name, key_min, bound, done_upto)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&step.schema)
                .bind(&step.table)
                .bind(p.key_min)
                .bind(p.bound)
                .bind(p.done_upto)
                .execute(&mut *self.conn)
                .await?;
            }
        }
        self.sink.emit(Event::WorkStarted {
            unit: Unit::Rows,
            total: (p.bound - p.key_min).max(0) as u64,
            label: step.display_table(),
        });
        self.sink.emit(Event::WorkProgress {
            done: (p.done_upto - p.key_min).max(0) as u64,
            label: String::new(),
        });

        let target = self.opts.batch.max(Duration::from_millis(1));
        // A batch waits on row locks of the application's short transactions. Bounding that wait
        // near the batch's own duration (and well under the server's 1 s deadlock_timeout) makes
        // the batch, never the application, give way when a writer transaction locks two rows
        // of one batch in the opposite order: our lock_timeout fires before the writer's
        // deadlock check, the batch rolls back and is retried smaller.
        let timeout = self
            .opts
            .lock_timeout
            .min((target * 2).max(Duration::from_millis(50)));
        let mut size: i64 = 1_000;
        let started = Instant::now();
        let rows_before = p.rows_done;
        let mut attempt = 0u32;
        while p.done_upto < p.bound {
            self.wait_for_replicas().await?;
            if self.stopping() {
                self.sink.emit(Event::WorkFinished);
                self.sink.emit(Event::line(format!(
                    "realmguard:     stopped after the batch ending at {key} = {}; `realmguard backfill run` resumes there",
                    p.done_upto
                )));
                return Ok(p);
            }
            let lo = p.done_upto;
            let hi = lo.saturating_add(size).min(p.bound);
            let t0 = Instant::now();
            match self.batch(sql, lo, hi, timeout, &p).await? {
                Ok((n, fill_ms)) => {
                    attempt = 0;
                    let took = t0.elapsed();
                    p.done_upto = hi;
                    p.rows_done += n as i64;
                    p.batches += 1;
                    p.fill_ms = fill_ms;
                    // Aim the next batch at the target duration; change by at most 2× a step so
                    // one odd batch (a checkpoint, a stall) does not swing it.
                    let factor =
                        (target.as_secs_f64() / took.as_secs_f64().max(1e-4)).clamp(0.5, 2.0);
                    size = ((size as f64 * factor) as i64).clamp(1, 10_000_000);
                    let rate = (p.rows_done - rows_before) as f64
                        / started.elapsed().as_secs_f64().max(1e-3);
                    self.sink.emit(Event::WorkProgress {
                        done: (p.done_upto - p.key_min) as u64,
                        label: format!("{} rows, {:.0} rows/s", p.rows_done, rate),
                    });
                    if !self.opts.pause.is_zero() {
                        tokio::time::sleep(self.opts.pause).await;
                    }
                }
                Err(b) => {
                    attempt += 1;
                    size = (size / 2).max(1);
                    self.after_lock_failure(step, attempt, timeout, b).await?;
                }
            }
        }
        p.finished = true;
        let mut tx = self.conn.begin().await?;
        sqlx::query(
            "UPDATE realmguard.backfill_progress SET finished_at = clock_timestamp()
             WHERE table_schema = $1 AND table_name = $2",
        )
        .bind(&step.schema)
        .bind(&step.table)
        .execute(&mut *tx)
        .await?;
        // Like every step: the wall time this run spent on it (batches, waits and round trips).
        mark_done(&mut tx, seq, 1, started.elapsed()).await?;
        tx.commit().await?;
        self.sink.emit(Event::WorkFinished);
        let secs = p.fill_ms as f64 / 1000.0;
        self.sink.emit(Event::line(format!(
            "realmguard:     filled {} rows in {} batches, {:.2}s in batches ({:.0} rows/s)",
            p.rows_done,
            p.batches,
            secs,
            p.rows_done as f64 / secs.max(1e-3)
        )));
        Ok(p)
    }

    /// One batch: its own transaction with the row-lock wait bounded, progress in the same commit.
    pub(super) async fn batch(
        &mut self,
        sql: &str,
        lo: i64,
        hi: i64,
        timeout: Duration,
        p: &Progress,
    ) -> Result<std::result::Result<(u64, i64), Blocked>> {
        let mut tx = self.conn.begin().await?;
        // synchronous_commit off: a batch commit need not wait for its WAL flush. A crash can
        // lose the last batches, but their progress rows go with them (same transaction), so
        // the rerun redoes exactly those; it makes short batches cheap, which keeps writers'
        // waits on our row locks short.
        sqlx::raw_sql(&format!(
            "SET LOCAL lock_timeout = '{}'; SET LOCAL synchronous_commit = off",
            ms(timeout)
        ))
        .execute(&mut *tx)
        .await?;
        let (res, blockers) = watch_while(
            sqlx::query(sql).bind(lo).bind(hi).execute(&mut *tx),
            &mut *self.watch,
            self.pid,
            timeout,
        )
        .await;
        match res {
            Ok(r) => {
                // The time inside batches is counted here only (the server's clock), so the
                // ledger and this run's report cannot drift apart.
                let fill_ms: i64 = sqlx::query_scalar(
                    "UPDATE realmguard.backfill_progress
                     SET done_upto = $3, rows_done = rows_done + $4, batches = batches + 1,
                         fill_ms = fill_ms + (extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint
                     WHERE table_schema = $1 AND table_name = $2
                     RETURNING fill_ms",
                )
                .bind(&p.schema)
                .bind(&p.table)
                .bind(hi)
                .bind(r.rows_affected() as i64)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Ok((r.rows_affected(), fill_ms)))
            }
            Err(e) if db::is_lock_conflict(&e) => {
                let _ = tx.rollback().await;
                Ok(Err(Blocked { error: e, blockers }))
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(Error::Fill {
                    schema: p.schema.clone(),
                    table: p.table.clone(),
                    lo,
                    hi,
                    source: PgError(e),
                })
            }
        }
    }
}
