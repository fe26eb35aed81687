//! When a lock is not granted: back off and retry, or give up naming who holds it; and the
//! autovacuum workers a lock step asks to yield first.

use super::{ms, Blocked, Executor};
use crate::backfill::error::{Error, Result};
use crate::backfill::plan::Step;
use crate::db::{self, qualified, sqlstate};
use crate::events::Event;
use sqlx::Row;
use std::time::Duration;

impl Executor<'_> {
    /// Back off with jitter after a lock timeout or deadlock, or give up naming the blockers.
    pub(super) async fn after_lock_failure(
        &mut self,
        step: &Step,
        attempt: u32,
        timeout: Duration,
        b: Blocked,
    ) -> Result<()> {
        let who = self.describe_blockers(&b.blockers, &step.relations).await;
        if attempt > self.opts.lock_retries {
            return Err(Error::GaveUp {
                table: step.display_table(),
                title: step.title.clone(),
                attempts: attempt,
                lock: step.lock.name(),
                waited: ms(timeout),
                blockers: who,
            });
        }
        let wait = db::backoff(
            attempt - 1,
            Duration::from_millis(50),
            Duration::from_secs(5),
        );
        self.sink.emit(Event::line(format!(
            "realmguard:     {} ({}); {who}; retry {attempt}/{} in {}",
            if sqlstate(&b.error).as_deref() == Some(db::DEADLOCK) {
                "deadlock".to_string()
            } else {
                format!("lock not granted within {}", ms(timeout))
            },
            step.lock.name(),
            self.opts.lock_retries,
            ms(wait)
        )));
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// An autovacuum worker on the step's tables holds SHARE UPDATE EXCLUSIVE for as long as its
    /// pass takes (after a fill: a long one). PostgreSQL cancels it for any lock waiter after
    /// deadlock_timeout (1 s), but our lock_timeout is shorter, so we would time out and queue
    /// the application behind us again and again. Cancel it up front, as the server would; it
    /// comes back later. An anti-wraparound pass is never cancelled (nor would the server): the
    /// retry message names it instead.
    pub(super) async fn yield_autovacuum(&mut self, step: &Step) {
        let names: Vec<String> = step
            .relations
            .iter()
            .map(|(s, n)| qualified(s, n))
            .collect();
        // Find first, cancel second: in one statement the planner may evaluate the cancel
        // before the filters and hit other sessions.
        let workers: Vec<i32> = sqlx::query_scalar(
            "SELECT a.pid FROM pg_stat_activity a
             WHERE a.backend_type = 'autovacuum worker'
               AND a.query NOT LIKE '%to prevent wraparound%'
               AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation'
                           AND l.relation IN (SELECT to_regclass(x)::oid FROM unnest($1::text[]) x))",
        )
        .bind(&names)
        .fetch_all(&mut *self.watch)
        .await
        .unwrap_or_default();
        for pid in workers {
            // Re-checked at the moment of cancelling: the pid must still be an autovacuum worker.
            let done: bool = sqlx::query_scalar(
                "SELECT CASE WHEN (SELECT backend_type FROM pg_stat_activity WHERE pid = $1) = 'autovacuum worker'
                        THEN pg_cancel_backend($1) ELSE false END",
            )
            .bind(pid)
            .fetch_one(&mut *self.watch)
            .await
            .unwrap_or(false);
            if !done {
                continue;
            }
            self.sink.emit(Event::line(format!(
                "realmguard:     cancelled autovacuum (pid {pid}) on {} so the lock is granted at once",
                step.display_table()
            )));
        }
    }

    /// "blocked by pid 123 (idle in transaction for 12s, user app: SELECT …)"; when the probe saw
    /// nothing, the sessions holding locks on the step's tables.
    pub(super) async fn describe_blockers(
        &mut self,
        pids: &[i32],
        relations: &[(String, String)],
    ) -> String {
        let mut pids = pids.to_vec();
        if pids.is_empty() {
            let names: Vec<String> = relations.iter().map(|(s, n)| qualified(s, n)).collect();
            pids = sqlx::query_scalar(
                "SELECT DISTINCT l.pid FROM pg_locks l
                 WHERE l.granted AND l.locktype = 'relation' AND l.pid <> $2
                   AND l.relation IN (SELECT to_regclass(x)::oid FROM unnest($1::text[]) x)",
            )
            .bind(&names)
            .bind(self.pid)
            .fetch_all(&mut *self.watch)
            .await
            .unwrap_or_default();
        }
        if pids.is_empty() {
            return "no blocking session seen (it ended before we looked)".into();
        }
        let rows = sqlx::query(
            "SELECT pid, coalesce(state, '') AS state, coalesce(usename::text, '') AS usename,
                    coalesce(extract(epoch FROM now() - xact_start), 0)::float8 AS xact_secs,
                    left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 60) AS query
             FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid",
        )
        .bind(&pids)
        .fetch_all(&mut *self.watch)
        .await
        .unwrap_or_default();
        let mut parts = Vec::new();
        for pid in &pids {
            // Best effort, like the reads above: a row that does not decode names only the pid.
            let row = rows
                .iter()
                .find(|r| r.try_get::<i32, _>("pid").ok() == Some(*pid))
                .and_then(|r| {
                    Some((
                        r.try_get::<String, _>("state").ok()?,
                        r.try_get::<f64, _>("xact_secs").ok()?,
                        r.try_get::<String, _>("usename").ok()?,
                        r.try_get::<String, _>("query").ok()?,
                    ))
                });
            match row {
                Some((state, secs, user, query)) => parts.push(format!(
                    "pid {pid} ({state} for {secs:.0}s, user {user}: {query})"
                )),
                None => parts.push(format!("pid {pid}")),
            }
        }
        format!("blocked by {}", parts.join(", "))
    }
}
