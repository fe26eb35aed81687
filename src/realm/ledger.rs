//! The move's phases, recorded on the source in `realmguard.realm_moves` (one row per realm,
//! committed at each phase change), so that a rerun after a crash, `kill -9` or Ctrl-C resumes
//! where the last one stopped and ends in the same state.
//!
//! fencing → fenced → copied → deleted → done. Only `copied` is decided elsewhere (the target's
//! commit): a run that died between that commit and recording it finds the realm whole on the
//! target (same hashes) and records it then.

use super::{Error, Result};
use sqlx::PgConnection;

const CREATE: &str = "CREATE SCHEMA IF NOT EXISTS realmguard;
CREATE TABLE IF NOT EXISTS realmguard.realm_moves (
    realm      text PRIMARY KEY,
    target     text NOT NULL,
    phase      text NOT NULL CHECK (phase IN ('fencing', 'fenced', 'copied', 'deleted', 'done')),
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    fenced_at  timestamptz
);
COMMENT ON TABLE realmguard.realm_moves IS 'realmguard realm move: the phase each realm''s move is in'";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Fencing,
    Fenced,
    Copied,
    Deleted,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Fencing => "fencing",
            Phase::Fenced => "fenced",
            Phase::Copied => "copied",
            Phase::Deleted => "deleted",
            Phase::Done => "done",
        }
    }

    fn parse(s: &str) -> Phase {
        match s {
            "fencing" => Phase::Fencing,
            "fenced" => Phase::Fenced,
            "copied" => Phase::Copied,
            "deleted" => Phase::Deleted,
            _ => Phase::Done,
        }
    }
}

/// The recorded move of `realm`: its target (display form) and phase.
pub async fn read(conn: &mut PgConnection, realm: &str) -> Result<Option<(String, Phase)>> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('realmguard.realm_moves') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| Error::FindMoveLedger { source })?;
    if !exists {
        return Ok(None);
    }
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT target, phase FROM realmguard.realm_moves WHERE realm = $1")
            .bind(realm)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|source| Error::ReadMoves { source })?;
    Ok(row.map(|(t, p)| (t, Phase::parse(&p))))
}

/// Start (or restart, after a finished one) the move of `realm`.
pub async fn begin(conn: &mut PgConnection, realm: &str, target: &str) -> Result<()> {
    crate::db::create_if_missing(conn, CREATE, "the move ledger realmguard.realm_moves")
        .await
        .map_err(|source| Error::CreateMoveLedger { source })?;
    sqlx::query(
        "INSERT INTO realmguard.realm_moves (realm, target, phase) VALUES ($1, $2, 'fencing')
         ON CONFLICT (realm) DO UPDATE SET target = $2, phase = 'fencing', started_at = now(),
           updated_at = now(), fenced_at = NULL",
    )
    .bind(realm)
    .bind(target)
    .execute(&mut *conn)
    .await
    .map_err(|source| Error::RecordMove { source })?;
    Ok(())
}

pub async fn set(conn: &mut PgConnection, realm: &str, phase: Phase) -> Result<()> {
    sqlx::query(
        "UPDATE realmguard.realm_moves SET phase = $2, updated_at = now(),
           fenced_at = CASE WHEN $2 = 'fenced' THEN now() ELSE fenced_at END
         WHERE realm = $1",
    )
    .bind(realm)
    .bind(phase.as_str())
    .execute(&mut *conn)
    .await
    .map_err(|source| Error::RecordPhase {
        phase: phase.as_str(),
        source,
    })?;
    Ok(())
}

/// Milliseconds since the fence went up.
pub async fn fenced_ms(conn: &mut PgConnection, realm: &str) -> Result<Option<u64>> {
    let ms: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM clock_timestamp() - fenced_at)::float8 * 1000
         FROM realmguard.realm_moves WHERE realm = $1",
    )
    .bind(realm)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|source| Error::ReadFencedAt { source })?
    .flatten();
    Ok(ms.map(|m| m as u64))
}
