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

pub(super) async fn apply_in_transaction(
    conn: &mut PgConnection,
    lock_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
    opts: &MigrateOptions,
    sink: &dyn EventSink,
) -> Result<Result<AppliedMigration, crate::migrate::guard::Rejection>> {
    let pieces = pieces(m);
    check_no_transaction_control(m, &pieces)?;
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms'",
        ms(opts.lock_timeout),
        ms(opts.statement_timeout)
    );
    // The first attempt sends the whole migration in one round trip (see `run_batch`); any
    // failure there is rolled back and the migration run again statement by statement, which
    // names the failing statement's line exactly as before.
    let mut batched = split::split(&m.sql).is_ok();
    let n = pieces.len() as i32;
    let mut attempt = 0;
    'attempt: loop {
        attempt += 1;
        let started = Instant::now();
        let last_line = pieces.last().map_or(1, |p| p.line);
        if batched {
            batched = false;
            let tail = opts.guard.then_some(crate::catalog::GUARD_EXECUTE_SQL);
            match run_batch(conn, m, &begin, n, tail).await {
                Ok(None) => {
                    // The batch committed too: one round trip for the whole migration.
                    return Ok(Ok(applied(m, pieces.len(), attempt, started)));
                }
                Ok(Some(row)) => {
                    match finish_guarded(conn, lock_conn, cfg, m, opts, sink, last_line, &row)
                        .await?
                    {
                        Ok(()) => return Ok(Ok(applied(m, pieces.len(), attempt, started))),
                        Err(rejection) => return Ok(Err(rejection)),
                    }
                }
                Err(e) => {
                    if rollback(conn).await.is_err() {
                        return Err(connection_lost(m, last_line, &disconnect_cause(&e)));
                    }
                    if opts.guard && db::sqlstate(&e).as_deref() == Some("26000") {
                        // The migration deallocated the guard's statement (DEALLOCATE ALL).
                        super::prepare_guard(conn, &cfg.realms_table).await?;
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
                return Ok(Err(rejection));
            }
        }
        let elapsed = started.elapsed();
        if let Err(e) = ledger::insert(conn, m, true, n, n, elapsed.as_millis() as i64, false).await
        {
            return Err(abort(conn, m, last_line, e).await);
        }
        commit(conn, m, last_line).await?;
        return Ok(Ok(applied(m, pieces.len(), attempt, started)));
    }
}

/// The whole migration in one round trip: BEGIN with the session's timeouts, the file's text,
/// its ledger row, and then either COMMIT (no guard) or the guard's catalog read
/// (`catalog::GUARD_EXECUTE_SQL`), whose row is returned. Only for files the tokenizer splits:
/// their text is whole statements, so nothing appended can end up inside a string or comment of
/// theirs.
pub(super) async fn run_batch(
    conn: &mut PgConnection,
    m: &Migration,
    begin: &str,
    statements: i32,
    guard_tail: Option<&str>,
) -> Result<Option<sqlx::postgres::PgRow>, sqlx::Error> {
    use futures_util::TryStreamExt;
    let batch = format!(
        "{begin};\n{}\n;\n{};\n{}",
        m.sql,
        ledger::insert_applied_sql(m, statements),
        guard_tail.unwrap_or("COMMIT")
    );
    // Only the last row matters (the guard's read); the migration's own rows are dropped as
    // they arrive.
    let mut last: Option<sqlx::postgres::PgRow> = None;
    let mut results = sqlx::raw_sql(&batch).fetch_many(&mut *conn);
    while let Some(item) = results.try_next().await? {
        if let sqlx::Either::Right(row) = item {
            last = Some(row);
        }
    }
    drop(results);
    if guard_tail.is_none() {
        return Ok(None);
    }
    match last {
        Some(row) => Ok(Some(row)),
        None => Err(sqlx::Error::Protocol(
            "the batch returned no row from the guard's read".into(),
        )),
    }
}

/// The guard and the COMMIT of a migration whose statements, ledger row and guard read ran in a
/// batch (`row`: the read's answer).
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish_guarded(
    conn: &mut PgConnection,
    lock_conn: &mut PgConnection,
    cfg: &Config,
    m: &Migration,
    opts: &MigrateOptions,
    sink: &dyn EventSink,
    last_line: usize,
    row: &sqlx::postgres::PgRow,
) -> Result<Result<(), crate::migrate::guard::Rejection>> {
    if let Some(rejection) =
        guard(conn, lock_conn, cfg, m, opts, sink, last_line, Some(row)).await?
    {
        return Ok(Err(rejection));
    }
    commit(conn, m, last_line).await?;
    Ok(Ok(()))
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

pub(super) async fn commit(conn: &mut PgConnection, m: &Migration, last_line: usize) -> Result<()> {
    if let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *conn).await {
        if is_disconnect(&e) {
            // The COMMIT may or may not have reached the server before it went away; the
            // ledger row commits with the migration, so the ledger knows.
            return Err(Error::LostAtCommit {
                version: m.version,
                cause: disconnect_cause(&e),
            });
        }
        // A deferred constraint fails at COMMIT; the transaction is gone either way.
        return Err(Error::Failed(MigrationFailed {
            version: m.version,
            file: m.path.display().to_string(),
            line: last_line,
            cause: format!("at COMMIT: {}", db::describe_pg_error(&e)),
        }));
    }
    Ok(())
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
