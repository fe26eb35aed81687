//! Checks before the first step: conditions under which the backfill would stall traffic or
//! silently do nothing. Each refusal says why and names what to fix (a pid, an index, a role).

use crate::db::qualified;
use sqlx::PgConnection;
use std::time::Duration;

/// Every reason not to start; empty when it is safe to.
pub async fn check(
    conn: &mut PgConnection,
    tables: &[(String, String)],
    own_indexes: &[String],
    max_transaction_age: Duration,
    watch_replicas: bool,
) -> crate::backfill::error::Result<Vec<String>> {
    let mut refusals = Vec::new();

    // Without the right to read the standbys' positions every lag reads as unknown, and the
    // run would go at full speed while believing it was held back.
    let hidden_from = match watch_replicas {
        true => super::replicas::hidden_from(conn).await?,
        false => None,
    };
    if let Some(role) = hidden_from {
        refusals.push(format!(
            "--max-replication-lag needs to read the standbys' replay positions, which pg_stat_replication hides from role {role}: GRANT pg_monitor TO {} (or run without the option)",
            crate::db::quote_ident(&role)
        ));
    }

    // A long transaction holds locks (or a snapshot) every lock step and every concurrent index
    // build would queue behind, with the application's queries queued behind us.
    // Typed tuples: a column of another type is an error, never a panic.
    let rows: Vec<(i32, String, String, f64, String)> = sqlx::query_as(
        "SELECT pid, coalesce(state, ''), coalesce(usename::text, ''),
                extract(epoch FROM now() - xact_start)::float8,
                left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 60)
         FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND backend_type = 'client backend' AND xact_start IS NOT NULL
           AND now() - xact_start > make_interval(secs => $1)
         ORDER BY xact_start",
    )
    .bind(max_transaction_age.as_secs_f64())
    .fetch_all(&mut *conn)
    .await?;
    for (pid, state, user, secs, query) in rows {
        refusals.push(format!(
            "pid {pid} (user {user}) has been {} for {secs:.0}s ({query}); it would stall the lock steps: end it (SELECT pg_terminate_backend({pid})) or raise --max-transaction-age",
            if state.is_empty() { "in a transaction".to_string() } else if state == "active" { "running a transaction".to_string() } else { state },
        ));
    }

    let names: Vec<String> = tables.iter().map(|(s, n)| qualified(s, n)).collect();
    // An invalid index (a failed CREATE INDEX CONCURRENTLY) is still maintained on every write
    // and answers no query; it is someone's unfinished work. Ours are rebuilt by their step.
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname), ic.relname::text
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT i.indisvalid
           AND i.indrelid IN (SELECT to_regclass(x)::oid FROM unnest($1::text[]) x)",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    for (table, index) in rows {
        if own_indexes.contains(&index) {
            continue;
        }
        refusals.push(format!(
            "index {index} on {table} is INVALID (a failed CREATE INDEX CONCURRENTLY?): drop it or REINDEX it first"
        ));
    }

    // Row level security that applies to us makes every fill batch update 0 rows, silently, and
    // hides the parent rows a foreign-key validation looks for (seen: a converted table whose
    // old rows were never filled still failed its validation under FORCE on the parent).
    let rows: Vec<(String, bool, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname), c.relforcerowsecurity, current_user::text
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid IN (SELECT to_regclass(x)::oid FROM unnest($1::text[]) x)
           AND c.relrowsecurity
           AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
           AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    for (table, force, user) in rows {
        refusals.push(format!(
            "{table} has {}row level security and role {user} has no BYPASSRLS: a fill would silently update nothing and a foreign-key validation would not see its rows; run as a role with BYPASSRLS",
            if force { "FORCE " } else { "" },
        ));
    }
    Ok(refusals)
}
