//! `-- realmguard:no-transaction` files: statement by statement, progress recorded after each so a
//! rerun resumes, and every index a `CREATE INDEX CONCURRENTLY` builds checked valid.

use super::*;

/// Run a `-- realmguard:no-transaction` file statement by statement (for CREATE INDEX
/// CONCURRENTLY, which cannot run in a transaction), recording progress after each so a rerun
/// resumes after the last statement that succeeded.
pub(super) async fn apply_no_transaction(
    conn: &mut PgConnection,
    m: &Migration,
    opts: &MigrateOptions,
    prior: Option<&Applied>,
    sink: &dyn EventSink,
) -> Result<AppliedMigration> {
    let pieces = split::split(&m.sql).map_err(|reason| Error::Unsplittable {
        file: m.path.display().to_string(),
        line: reason.line,
        reason,
    })?;
    let total = pieces.len() as i32;
    let start_at = match prior {
        Some(a) => a.statements_applied.max(0) as usize,
        None => {
            ledger::insert(conn, m, total == 0, 0, total, 0, false).await?;
            0
        }
    };
    // Session settings (not SET LOCAL): each statement is its own transaction here.
    sqlx::raw_sql(&format!(
        "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'",
        ms(opts.lock_timeout),
        ms(opts.statement_timeout)
    ))
    .execute(&mut *conn)
    .await?;
    let started = Instant::now();
    let mut attempts = 1;
    let result = async {
        for (i, p) in pieces.iter().enumerate().skip(start_at) {
            let index = created_index(p.sql);
            let t0 = Instant::now();
            if let Some(ix) = &index {
                match db::index_valid(conn, ix).await? {
                    Some(true) => {
                        sink.emit(Event::line(format!("realmguard: {}:{}: index {ix} already exists and is valid; not rebuilding it", m.path.display(), p.line)));
                        ledger::progress(conn, m.version, i as i32 + 1, i as i32 + 1 == total, 0).await?;
                        continue;
                    }
                    Some(false) => drop_invalid_index(conn, m, p, ix, sink).await?,
                    None => {}
                }
            }
            let mut attempt = 0;
            loop {
                attempt += 1;
                match sqlx::raw_sql(p.sql).execute(&mut *conn).await {
                    Ok(_) => break,
                    Err(e) if db::is_lock_conflict(&e) && attempt <= opts.lock_retries => {
                        attempts += 1;
                        // A CONCURRENTLY build that timed out leaves an invalid index behind.
                        if let Some(ix) = &index {
                            if db::index_valid(conn, ix).await? == Some(false) {
                                drop_invalid_index(conn, m, p, ix, sink).await?;
                            }
                        }
                        let what = format!("{}:{} hit lock_timeout", m.path.display(), p.line);
                        pause_before_retry(attempt, opts.lock_retries, &what, sink).await;
                    }
                    Err(e) => {
                        let failed = failure(m, p, &e);
                        let mut invalid_index = None;
                        if let Some(ix) = &index {
                            if db::index_valid(conn, ix).await? == Some(false) {
                                invalid_index = Some(ix.clone());
                            }
                        }
                        return Err(Error::NoTransactionFailed { failed, done: i, total, invalid_index });
                    }
                }
            }
            if let Some(ix) = &index {
                if db::index_valid(conn, ix).await? == Some(false) {
                    return Err(Error::InvalidIndex {
                        version: m.version,
                        index: ix.clone(),
                        file: m.path.display().to_string(),
                        line: p.line,
                    });
                }
            }
            ledger::progress(conn, m.version, i as i32 + 1, i as i32 + 1 == total, t0.elapsed().as_millis() as i64).await?;
        }
        if total == 0 || start_at >= pieces.len() {
            ledger::progress(conn, m.version, total, true, 0).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    let _ = sqlx::raw_sql("RESET lock_timeout; RESET statement_timeout")
        .execute(&mut *conn)
        .await;
    result?;
    Ok(AppliedMigration {
        version: m.version,
        description: m.description.clone(),
        file: m.path.clone(),
        no_transaction: true,
        statements: pieces.len(),
        resumed_after: prior.map(|a| a.statements_applied.max(0) as usize),
        attempts,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

pub(super) async fn drop_invalid_index(
    conn: &mut PgConnection,
    m: &Migration,
    p: &Piece<'_>,
    ix: &str,
    sink: &dyn EventSink,
) -> Result<()> {
    sink.emit(Event::line(format!(
        "realmguard: {}:{}: index {ix} is INVALID (left by a failed CONCURRENTLY build); dropping it to rebuild",
        m.path.display(),
        p.line
    )));
    sqlx::raw_sql(&format!("DROP INDEX CONCURRENTLY IF EXISTS {ix}"))
        .execute(&mut *conn)
        .await
        .map_err(|source| Error::DropInvalidIndex {
            index: ix.to_string(),
            source,
        })?;
    Ok(())
}

/// The (schema-qualified when known) name of the index a `CREATE INDEX` statement builds.
pub(super) fn created_index(sql: &str) -> Option<String> {
    use sqlparser::ast::Statement;
    let head: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    if head.first().map(String::as_str) != Some("CREATE") || !head.iter().any(|w| w == "INDEX") {
        return None;
    }
    let stmts =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
            .ok()?;
    let Some(Statement::CreateIndex(ci)) = stmts.first() else {
        return None;
    };
    let name = ci.name.as_ref()?;
    if name.0.len() > 1 {
        return Some(name.to_string());
    }
    match ci.table_name.0.len() {
        2 => Some(format!("{}.{}", ci.table_name.0[0], name)),
        _ => Some(name.to_string()),
    }
}
