//! `--max-replication-lag`: how far the standbys are behind, read on the primary.
//!
//! Lag is measured in bytes of WAL not yet replayed (`pg_current_wal_lsn() - replay_lsn` in
//! `pg_stat_replication`), not in the `replay_lag` interval beside it: that one is an estimate
//! the server only updates when a standby reports progress, and it reads NULL once the standby
//! goes idle, so it cannot say "this replica has stopped". Bytes are exact whatever the traffic,
//! and they are what a backfill produces. Only standbys connected to this server are seen
//! (cascaded ones behind them are not); base backups in progress are not standbys and are left
//! out, as are walsenders that have not reported a position yet.

use sqlx::PgConnection;

/// None when the role may read the standbys' positions (superusers and members of
/// pg_read_all_stats, as pg_monitor's are), else the role's name: others see NULL in every
/// column but the pid.
pub async fn hidden_from(
    conn: &mut PgConnection,
) -> crate::backfill::error::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT CASE WHEN NOT (rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'))
                THEN current_user::text END
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(conn)
    .await?)
}

/// How many standbys are connected.
pub async fn count(conn: &mut PgConnection) -> crate::backfill::error::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_replication WHERE state <> 'backup'")
            .fetch_one(conn)
            .await?,
    )
}

/// The standby furthest behind: its name (application_name, else its address, else its pid)
/// and its lag in bytes. None when no standby has reported a position.
pub async fn furthest_behind(
    conn: &mut PgConnection,
) -> crate::backfill::error::Result<Option<(String, i64)>> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT coalesce(nullif(application_name, ''), host(client_addr), 'walsender pid ' || pid),
                pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
         FROM pg_stat_replication
         WHERE state <> 'backup' AND replay_lsn IS NOT NULL
         ORDER BY 2 DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    Ok(row)
}

/// Bytes for a message: bytes, kB, MB, GB or TB (powers of 1024, as `--max-replication-lag` reads
/// them), one decimal below 10.
pub fn pretty(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    let units = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{} bytes", bytes.max(0))
    } else if v < 10.0 {
        format!("{v:.1} {}", units[u])
    } else {
        format!("{v:.0} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn sizes_print_in_the_units_the_option_takes() {
        assert_eq!(pretty(512), "512 bytes");
        assert_eq!(pretty(16 << 20), "16 MB");
        assert_eq!(pretty(3 * 1024 * 1024 / 2), "1.5 MB");
        assert_eq!(pretty(-5), "0 bytes");
    }
}
