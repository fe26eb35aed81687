//! A migration in its own transaction: first the whole file in one round trip, then, when that
//! fails, statement by statement so the error names its line and a lock timeout is retried; the
//! verify guard before the COMMIT.

use super::*;

/// Transaction control inside a migration would commit half of it: refuse before running.
pub(super) fn check_no_transaction_control(m: &Migration, pieces: &[Piece<'_>]) -> Result<()> {
    for p in pieces {
        let mut words = p
            .sql
            .split_whitespace()
            .map(|w| w.trim_end_matches(';').to_ascii_uppercase());
        let first = words.next().unwrap_or_default();
        let second = words.next().unwrap_or_default();
        let control = matches!(first.as_str(), "COMMIT" | "ROLLBACK" | "END" | "ABORT")
            || (first == "BEGIN" && second != "ATOMIC")
            || (first == "START" && second == "TRANSACTION");
        if control && !second.starts_with("PREPARED") {
            return Err(Error::TransactionControl {
                file: m.path.display().to_string(),
                line: p.line,
                keyword: first,
            });
        }
    }
    Ok(())
}

/// How a migration run in its own transaction ended.
pub(super) enum Outcome {
    /// Applied and committed.
    Committed(AppliedMigration),
    /// Applied and judged clean by the guard; its transaction is still open, for its COMMIT to
    /// go at the head of the next migration's batch (or alone, by [`commit_deferred`]).
    Deferred(Deferred),
    /// The guard rolled it back.
    Rejected(crate::migrate::guard::Rejection),
}

/// A migration whose transaction waits for its COMMIT (docs/architecture.md, "The guard"): a
/// round trip saved per migration, as the COMMIT travels with the next migration's batch.
pub(super) struct Deferred {
    done: AppliedMigration,
    /// The file's last statement line, which a failed COMMIT is reported at.
    last_line: usize,
}

/// What one migration's run shares with the runs around it.
pub(super) struct Pipeline<'p> {
    /// A migration whose COMMIT is still to be sent: committed first (at the head of this
    /// migration's batch when there is one) and handed to `committed` once it is; its failure is
    /// its own error, and then this migration has not run.
    pub prior: Option<Deferred>,
    pub committed: &'p mut dyn FnMut(AppliedMigration),
    /// Client work for later (tokenizing the next file), done while the server runs this
    /// migration's batch rather than after it.
    pub meanwhile: Option<&'p mut dyn FnMut()>,
}

/// Run `m`, whose statements are `pieces` (`split`: the tokenizer split it), in its own
/// transaction.
#[allow(clippy::too_many_arguments)]
pub(super) async fn apply_in_transaction(
    conn: &mut PgConnection,
    lock_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
    (pieces, split): (Vec<Piece<'_>>, bool),
    opts: &MigrateOptions,
    sink: &dyn EventSink,
    pipe: Pipeline<'_>,
) -> Result<Outcome> {
    let Pipeline {
        mut prior,
        committed,
        mut meanwhile,
    } = pipe;
    if let Err(e) = check_no_transaction_control(m, &pieces) {
        if let Some(d) = prior.take() {
            committed(commit_deferred(conn, d).await?);
        }
        return Err(e);
    }
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms'",
        ms(opts.lock_timeout),
        ms(opts.statement_timeout)
    );
    // The first attempt sends the whole migration in one round trip (see `run_batch`); any
    // failure there is rolled back and the migration run again statement by statement, which
    // names the failing statement's line exactly as before.
    let mut batched = split;
    let n = pieces.len() as i32;
    let mut attempt = 0;
    'attempt: loop {
        attempt += 1;
        let started = Instant::now();
        let last_line = pieces.last().map_or(1, |p| p.line);
        if batched {
            batched = false;
            let tail = opts.guard.then_some(crate::catalog::GUARD_EXECUTE_SQL);
            let head = prior.take();
            let send = run_batch(conn, m, &begin, n, tail, head.is_some());
            // On this one thread: the batch is sent and waits for the server, then the other
            // work runs, then the answer is read.
            let ((ran, prior_done), ()) = futures_util::future::join(send, async {
                if let Some(f) = meanwhile.take() {
                    f()
                }
            })
            .await;
            if let Some(d) = head {
                match &ran {
                    Err(e) if !prior_done => return Err(deferred_commit_failed(conn, &d, e).await),
                    // The whole batch ran, or at least its head did.
                    _ => committed(d.done),
                }
            }
            match ran {
                Ok(None) => {
                    // The batch committed too: one round trip for the whole migration.
                    return Ok(Outcome::Committed(applied(
                        m,
                        pieces.len(),
                        attempt,
                        started,
                    )));
                }
                Ok(Some(row)) => {
                    let judged =
                        guard(conn, lock_conn, cfg, m, opts, sink, last_line, Some(&row)).await?;
                    if let Some(rejection) = judged {
                        return Ok(Outcome::Rejected(rejection));
                    }
                    return Ok(Outcome::Deferred(Deferred {
                        done: applied(m, pieces.len(), attempt, started),
                        last_line,
                    }));
                }
                Err(e) => {
                    if rollback(conn).await.is_err() {
                        return Err(connection_lost(m, last_line, &disconnect_cause(&e)));
                    }
                    if opts.guard && super::guard_gone(&e) {
                        // An earlier migration (or this one) took the guard's read away.
                        super::prepare_guard(conn, &cfg.realms_table, true).await?;
                    }
                    if db::is_lock_conflict(&e) && attempt <= opts.lock_retries {
                        let what = format!(
                            "migration {} hit lock_timeout ({}ms) in {}; rolled back",
                            m.version,
                            ms(opts.lock_timeout),
                            m.path.display()
                        );
                        pause_before_retry(attempt, opts.lock_retries, &what, sink).await;
                    } else {
                        // Not counted: the statement-by-statement run says where it fails.
                        attempt -= 1;
                    }
                    continue 'attempt;
                }
            }
        }
        if let Some(d) = prior.take() {
            committed(commit_deferred(conn, d).await?);
        }
        if let Err(e) = sqlx::raw_sql(&begin).execute(&mut *conn).await {
            if is_disconnect(&e) {
                return Err(Error::LostBeforeStart {
                    version: m.version,
                    cause: disconnect_cause(&e),
                });
            }
            return Err(Error::Begin(e));
        }
        for p in &pieces {
            if let Err(e) = sqlx::raw_sql(p.sql).execute(&mut *conn).await {
                if rollback(conn).await.is_err() {
                    return Err(connection_lost(m, p.line, &disconnect_cause(&e)));
                }
                if db::is_lock_conflict(&e) && attempt <= opts.lock_retries {
                    let what = format!(
                        "migration {} hit lock_timeout ({}ms) at {}:{}; rolled back",
                        m.version,
                        ms(opts.lock_timeout),
                        m.path.display(),
                        p.line
                    );
                    pause_before_retry(attempt, opts.lock_retries, &what, sink).await;
                    continue 'attempt;
                }
                let failed = failure(m, p, &e);
                if db::is_lock_conflict(&e) {
                    return Err(Error::LockConflict {
                        version: m.version,
                        attempts: attempt,
                        lock_timeout_ms: ms(opts.lock_timeout),
                        source: failed,
                    });
                }
                return Err(failed.into());
            }
        }
        if opts.guard {
            if let Some(rejection) =
                guard(conn, lock_conn, cfg, m, opts, sink, last_line, None).await?
            {
                return Ok(Outcome::Rejected(rejection));
            }
        }
        let elapsed = started.elapsed();
        if let Err(e) = ledger::insert(conn, m, true, n, n, elapsed.as_millis() as i64, false).await
        {
            return Err(abort(conn, m, last_line, e).await);
        }
        commit(conn, m.version, &m.path, last_line).await?;
        return Ok(Outcome::Committed(applied(
            m,
            pieces.len(),
            attempt,
            started,
        )));
    }
}

/// The whole migration in one round trip: BEGIN with the session's timeouts, the file's text,
/// its ledger row, and then either COMMIT (no guard) or the guard's catalog read
/// (`catalog::GUARD_EXECUTE_SQL`), whose row is returned; with `commit_first`, the COMMIT of the
/// previous migration ahead of it all. Only for files the tokenizer splits: their text is whole
/// statements, so nothing appended can end up inside a string or comment of theirs.
///
/// Also says whether that leading COMMIT succeeded: its result is the batch's first, and when it
/// fails PostgreSQL skips the rest of the batch, so this migration has not run.
pub(super) async fn run_batch(
    conn: &mut PgConnection,
    m: &Migration,
    begin: &str,
    statements: i32,
    guard_tail: Option<&str>,
    commit_first: bool,
) -> (Result<Option<sqlx::postgres::PgRow>, sqlx::Error>, bool) {
    use futures_util::TryStreamExt;
    let batch = format!(
        "{}{begin};\n{}\n;\n{};\n{}",
        if commit_first { "COMMIT;\n" } else { "" },
        m.sql,
        ledger::insert_applied_sql(m, statements),
        guard_tail.unwrap_or("COMMIT")
    );
    // Only the last row matters (the guard's read); the migration's own rows are dropped as
    // they arrive.
    let mut last: Option<sqlx::postgres::PgRow> = None;
    let mut results = 0usize;
    let mut stream = sqlx::raw_sql(&batch).fetch_many(&mut *conn);
    let ran = loop {
        match stream.try_next().await {
            Ok(Some(sqlx::Either::Left(_))) => results += 1,
            Ok(Some(sqlx::Either::Right(row))) => last = Some(row),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    drop(stream);
    let head_done = commit_first && results > 0;
    if let Err(e) = ran {
        return (Err(e), head_done);
    }
    let row = match (guard_tail, last) {
        (None, _) => Ok(None),
        (Some(_), Some(row)) => Ok(Some(row)),
        (Some(_), None) => Err(sqlx::Error::Protocol(
            "the batch returned no row from the guard's read".into(),
        )),
    };
    (row, head_done)
}

/// Commit a migration left open for its COMMIT to ride with the next batch, when there is no
/// such batch (the last migration, a no-transaction one next, a cancelled run).
pub(super) async fn commit_deferred(
    conn: &mut PgConnection,
    d: Deferred,
) -> Result<AppliedMigration> {
    commit(conn, d.done.version, &d.done.file, d.last_line).await?;
    Ok(d.done)
}

/// The error of a deferred COMMIT that failed at the head of the next migration's batch (which
/// then did not run): a deferred constraint, or the session gone before the COMMIT's answer.
async fn deferred_commit_failed(conn: &mut PgConnection, d: &Deferred, e: &sqlx::Error) -> Error {
    // After a failed COMMIT nothing is open; after a lost session this fails too, harmlessly.
    let _ = rollback(conn).await;
    commit_error(d.done.version, &d.done.file, d.last_line, e)
}

/// Run the verify guard inside the migration's transaction: `Some` when the migration was rolled
/// back for introducing violations.
#[allow(clippy::too_many_arguments)]
pub(super) async fn guard(
    conn: &mut PgConnection,
    lock_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
    opts: &MigrateOptions,
    sink: &dyn EventSink,
    last_line: usize,
    row: Option<&sqlx::postgres::PgRow>,
) -> Result<Option<crate::migrate::guard::Rejection>> {
    let checked = match row {
        Some(row) => crate::migrate::guard::check_row(row, lock_conn, cfg, m).await,
        None => crate::migrate::guard::check(conn, lock_conn, cfg, m).await,
    };
    let checked = match checked {
        Ok(checked) => checked,
        Err(e) => return Err(abort(conn, m, last_line, e).await),
    };
    let Some(rejection) = checked else {
        return Ok(None);
    };
    if !opts.allow_violations {
        if let Err(e) = rollback(conn).await {
            return Err(abort(conn, m, last_line, e).await);
        }
        return Ok(Some(rejection));
    }
    sink.emit(Event::line(format!(
        "realmguard: migration {} introduces {} error-severity violation(s); committed anyway (--allow-violations)",
        m.version,
        rejection.violations.len()
    )));
    Ok(None)
}

pub(super) async fn commit(
    conn: &mut PgConnection,
    version: i64,
    file: &std::path::Path,
    last_line: usize,
) -> Result<()> {
    match sqlx::raw_sql("COMMIT").execute(&mut *conn).await {
        Ok(_) => Ok(()),
        Err(e) => Err(commit_error(version, file, last_line, &e)),
    }
}

/// The error of a failed COMMIT of migration `version`.
fn commit_error(version: i64, file: &std::path::Path, last_line: usize, e: &sqlx::Error) -> Error {
    if is_disconnect(e) {
        // The COMMIT may or may not have reached the server before it went away; the ledger row
        // commits with the migration, so the ledger knows.
        return Error::LostAtCommit {
            version,
            cause: disconnect_cause(e),
        };
    }
    // A deferred constraint fails at COMMIT; the transaction is gone either way.
    Error::Failed(MigrationFailed {
        version,
        file: file.display().to_string(),
        line: last_line,
        cause: format!("at COMMIT: {}", db::describe_pg_error(e)),
    })
}

pub(super) fn applied(
    m: &Migration,
    statements: usize,
    attempts: u32,
    started: Instant,
) -> AppliedMigration {
    AppliedMigration {
        version: m.version,
        description: m.description.clone(),
        file: m.path.clone(),
        no_transaction: false,
        statements,
        resumed_after: None,
        attempts,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}
