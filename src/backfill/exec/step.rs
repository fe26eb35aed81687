//! The steps that are statements: one transaction per lock step, sent as one message; concurrent
//! index builds and drops outside any transaction; and the wait for lagging standbys before each.

use super::ledger::{done_sql, mark_done};
use super::{ms, rollback, watch_while, Blocked, Executor};
use crate::backfill::error::{Error, Result};
use crate::backfill::plan::{Phase, Step};
use crate::backfill::replicas;
use crate::db::{self, qualified, sqlstate, PgError};
use crate::events::Event;
use std::time::{Duration, Instant};

impl Executor<'_> {
    /// `--max-replication-lag`: hold the next step or batch while a standby has more WAL left to
    /// replay than allowed, so what the backfill writes cannot pile up on a replica that the
    /// application reads from or would fail over to. Returns early when asked to stop.
    pub(super) async fn wait_for_replicas(&mut self) -> Result<()> {
        let Some(max) = self.opts.max_replication_lag else {
            return Ok(());
        };
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        // A line event: the terminal sink prints it above the fill's bar, never through it.
        let sink = self.sink;
        let say = |msg: String| sink.emit(Event::line(msg));
        let started = Instant::now();
        let mut waited = false;
        while let Some((name, lag)) = replicas::furthest_behind(self.conn).await? {
            if lag <= max {
                break;
            }
            if !waited {
                say(format!(
                    "realmguard:     waiting: standby {name} has {} of WAL not yet replayed (--max-replication-lag {})",
                    replicas::pretty(lag),
                    replicas::pretty(max)
                ));
                waited = true;
            }
            if self.stopping() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if waited {
            say(format!(
                "realmguard:     standbys within --max-replication-lag after {:.1}s",
                started.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }

    pub(super) async fn sql_step(
        &mut self,
        seq: i32,
        step: &Step,
        sql: &str,
        guard: Option<&str>,
    ) -> Result<()> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let timeout = self.opts.timeout_for(step.lock, attempt);
            let started = Instant::now();
            match self
                .sql_attempt(seq, step, sql, guard, timeout, attempt, started)
                .await?
            {
                None => return Ok(()),
                Some(b) => self.after_lock_failure(step, attempt, timeout, b).await?,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn sql_attempt(
        &mut self,
        seq: i32,
        step: &Step,
        sql: &str,
        guard: Option<&str>,
        timeout: Duration,
        attempt: u32,
        started: Instant,
    ) -> Result<Option<Blocked>> {
        if step.lock.blocks_traffic() {
            self.yield_autovacuum(step).await;
        }
        // The guard reads the catalog before the step's transaction: DROP without CASCADE
        // would refuse such a dependency anyway, this is for a message that says what to do.
        if let Some(index) = guard {
            let deps: Vec<String> = sqlx::query_scalar(
                "SELECT conrelid::regclass::text || ' (' || conname || ')' FROM pg_constraint
                 WHERE contype = 'f' AND conindid = to_regclass($1)",
            )
            .bind(qualified(&step.schema, index))
            .fetch_all(&mut *self.conn)
            .await?;
            if !deps.is_empty() {
                return Err(Error::ForeignKeysDepend {
                    seq,
                    title: step.title.clone(),
                    index: index.to_string(),
                    dependents: deps.join(", "),
                });
            }
        }
        // The whole transaction is one message: the settings, the statement, its ledger row and
        // COMMIT. A lock that blocks traffic is then held for the server's work and the commit
        // only, never across a round trip back to this process (on a busy machine each waits
        // for this process to be scheduled). SET LOCAL: the settings die with the
        // transaction, also behind a transaction pooler.
        let body = format!(
            "BEGIN;\nSET LOCAL lock_timeout = '{}';\nSET LOCAL statement_timeout = 0;\n{sql}\n;\n{};\nCOMMIT",
            ms(timeout),
            done_sql(seq, attempt, started.elapsed())
        );
        let (res, blockers) = watch_while(
            sqlx::raw_sql(&body).execute(&mut *self.conn),
            &mut *self.watch,
            self.pid,
            timeout,
        )
        .await;
        match res {
            Ok(_) => Ok(None),
            Err(e) if db::is_lock_conflict(&e) => {
                rollback(self.conn).await;
                Ok(Some(Blocked { error: e, blockers }))
            }
            Err(e) => {
                rollback(self.conn).await;
                // 23514 from a step of the NOT NULL phase: its CHECK (realm IS NOT NULL) failed.
                // 23503 from validating a composite key: a child row's realm is not its
                // parent's. Old rows whose realm the plan took as certain (the default realm,
                // kept in the catalog) can be such rows if their parent was moved to another
                // realm between the parent's column step and the child's.
                let hint = match (sqlstate(&e).as_deref(), step.phase) {
                    (Some("23514"), Phase::NotNull) => {
                        "; some rows still have no realm (their parent reference is NULL or names no row): fix them and run again"
                    }
                    (Some("23503"), Phase::ForeignKey) => {
                        "; some rows are not in their parent's realm (was a parent row given another realm during the backfill?): set those rows' realm to their parent's and run again"
                    }
                    _ => "",
                };
                Err(Error::StepFailed {
                    seq,
                    table: step.display_table(),
                    title: step.title.clone(),
                    cause: PgError(e),
                    hint,
                })
            }
        }
    }

    pub(super) async fn index_step(
        &mut self,
        seq: i32,
        step: &Step,
        index: &str,
        sql: &str,
    ) -> Result<()> {
        let timeout = self.opts.timeout_for(step.lock, 1);
        let started = Instant::now();
        // Statements sent (drops of an invalid leftover, builds): the loop's last round only
        // finds the index valid.
        let mut attempt = 0u32;
        loop {
            match db::index_valid(self.conn, &qualified(&step.schema, index)).await? {
                Some(true) => break,
                Some(false) => {
                    attempt += 1;
                    // A failed or killed CONCURRENTLY build leaves an invalid index that
                    // IF NOT EXISTS would silently accept (`docs/online-ddl.md`, pitfall 4): drop it and build again.
                    self.sink.emit(Event::line(format!(
                        "realmguard:     dropping the invalid leftover index {index}"
                    )));
                    let drop = format!(
                        "DROP INDEX CONCURRENTLY IF EXISTS {}",
                        qualified(&step.schema, index)
                    );
                    if let Some(b) = self.concurrently(&drop, timeout).await? {
                        self.after_lock_failure(step, attempt, timeout, b).await?;
                    }
                    continue;
                }
                None => {
                    attempt += 1;
                    if let Some(b) = self.concurrently(sql, timeout).await? {
                        self.after_lock_failure(step, attempt, timeout, b).await?;
                    }
                }
            }
        }
        mark_done(&mut *self.conn, seq, attempt, started.elapsed()).await?;
        Ok(())
    }

    pub(super) async fn drop_index_step(&mut self, seq: i32, step: &Step, sql: &str) -> Result<()> {
        let timeout = self.opts.timeout_for(step.lock, 1);
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.concurrently(sql, timeout).await? {
                None => break,
                Some(b) => self.after_lock_failure(step, attempt, timeout, b).await?,
            }
        }
        mark_done(&mut *self.conn, seq, attempt, started.elapsed()).await?;
        Ok(())
    }

    /// A CONCURRENTLY statement: outside any transaction, so the timeouts are session settings,
    /// reset afterwards.
    pub(super) async fn concurrently(
        &mut self,
        sql: &str,
        timeout: Duration,
    ) -> Result<Option<Blocked>> {
        sqlx::raw_sql(&format!(
            "SET lock_timeout = '{}'; SET statement_timeout = 0",
            ms(timeout)
        ))
        .execute(&mut *self.conn)
        .await?;
        let (res, blockers) = watch_while(
            sqlx::raw_sql(sql).execute(&mut *self.conn),
            &mut *self.watch,
            self.pid,
            timeout,
        )
        .await;
        sqlx::raw_sql("RESET lock_timeout; RESET statement_timeout")
            .execute(&mut *self.conn)
            .await?;
        match res {
            Ok(_) => Ok(None),
            Err(e) if db::is_lock_conflict(&e) => Ok(Some(Blocked { error: e, blockers })),
            Err(e) => Err(Error::Concurrently {
                statement: sql.lines().next().unwrap_or(sql).to_string(),
                source: PgError(e),
            }),
        }
    }
}
