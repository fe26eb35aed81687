//! Reasons not to carry a realm, each a one-line refusal that names what to fix. [`schema`] runs
//! before anything is read; [`data`] inside the copy's snapshot on the source.

use super::plan::{Plan, RealmTable};
use super::{Error, Result};
use crate::config::Config;
use crate::db::{qualified, quote_ident};
use sqlx::PgConnection;
use std::collections::HashSet;

/// Refuse when either side's schema cannot take (or give) the realm: realm-scoped tables without
/// a realm column, verify errors on realm-scoped tables, differing ledgers, or a target that
/// lacks a table or column the source has.
pub async fn schema(
    src: &mut PgConnection,
    dst: &mut PgConnection,
    cfg: &Config,
    sp: &Plan,
    tp: &Plan,
) -> Result<()> {
    if let Some(t) = sp.without_column.first() {
        return Err(Error::WithoutRealmColumn {
            table: t.clone(),
            column: cfg.realm_column.to_string(),
        });
    }
    for (side, conn, plan) in [("source", &mut *src, sp), ("target", &mut *dst, tp)] {
        let report = crate::verify::verify(conn, cfg)
            .await
            .map_err(|source| Error::Verify { source })?;
        let scoped: HashSet<String> = plan.copy_order().map(RealmTable::label).collect();
        let found = report
            .errors()
            .find(|v| scoped.contains(&format!("{}.{}", v.schema, v.table)))
            .cloned();
        if let Some(v) = found {
            return Err(Error::FailsVerify {
                side,
                schema: v.schema,
                table: v.table,
                rule: v.rule,
                message: v.message,
            });
        }
    }
    ledgers(src, dst).await?;
    for s in sp.copy_order() {
        let t = tp
            .copy_order()
            .find(|t| t.schema == s.schema && t.name == s.name)
            .ok_or_else(|| Error::TargetLacksTable { table: s.label() })?;
        for c in &s.columns {
            match t.column(&c.name) {
                None => {
                    return Err(Error::TargetLacksColumn {
                        table: s.label(),
                        column: c.name.clone(),
                    })
                }
                Some(tc) if tc.type_ != c.type_ => {
                    return Err(Error::ColumnTypeDiffers {
                        table: s.label(),
                        column: c.name.clone(),
                        on_source: c.type_.clone(),
                        on_target: tc.type_.clone(),
                    })
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The two migration ledgers must list the same versions with the same checksums.
async fn ledgers(src: &mut PgConnection, dst: &mut PgConnection) -> Result<()> {
    let key = |v: Vec<crate::migrate::plan::Applied>| -> Vec<(i64, String, bool)> {
        v.into_iter()
            .map(|a| (a.version, a.checksum, a.success))
            .collect()
    };
    let read = |source| Error::MigrationLedger { source };
    let s = key(crate::migrate::ledger::read(src).await.map_err(read)?);
    let t = key(crate::migrate::ledger::read(dst).await.map_err(read)?);
    for (a, b) in s.iter().zip(t.iter()) {
        if a.0 != b.0 {
            let v = a.0.min(b.0);
            let side = if a.0 < b.0 { "source" } else { "target" };
            return Err(Error::LedgerVersionOnOneSide { version: v, side });
        }
        if a.1 != b.1 || a.2 != b.2 {
            return Err(Error::LedgerChecksum { version: a.0 });
        }
    }
    if s.len() != t.len() {
        let (side, v) = if s.len() > t.len() {
            ("source", s[t.len()].0)
        } else {
            ("target", t[s.len()].0)
        };
        return Err(Error::LedgerVersionOnOneSide { version: v, side });
    }
    Ok(())
}

/// Refuse when the realm is missing on the source, already has rows on the target, or
/// references a global row the target lacks. `src` is in the copy's snapshot.
pub async fn data(
    src: &mut PgConnection,
    dst: &mut PgConnection,
    plan: &Plan,
    realm: &str,
) -> Result<()> {
    let kt = &plan.key_type;
    if !exists(src, &plan.realms, realm, kt).await? {
        return Err(Error::NotOnSource {
            realm: realm.into(),
            table: plan.realms.label(),
        });
    }
    for t in plan.copy_order() {
        if exists(dst, t, realm, kt).await? {
            return Err(Error::AlreadyOnTarget {
                realm: realm.into(),
                table: t.label(),
            });
        }
    }
    for g in &plan.globals {
        let child = plan
            .tables
            .iter()
            .find(|t| t.label() == g.table)
            .ok_or(Error::GlobalRefOutsidePlan)?;
        let cols = g
            .columns
            .iter()
            .map(|c| format!("{}::text", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let not_null = g
            .columns
            .iter()
            .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        // The distinct keys the realm references: global tables are lookups, small by nature.
        let keys: Vec<Vec<String>> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT ARRAY[{cols}] FROM {} WHERE {} AND {not_null}",
            child.sql_name(),
            child.realm_filter(realm, kt)
        ))
        .fetch_all(&mut *src)
        .await
        .map_err(|source| Error::ReadGlobalKeys {
            table: g.table.clone(),
            source,
        })?;
        if keys.is_empty() {
            continue;
        }
        let matches = g
            .ref_columns
            .iter()
            .zip(&g.ref_types)
            .enumerate()
            .map(|(i, (c, ty))| format!("g.{} = (k ->> {i})::{ty}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let missing: Option<String> = sqlx::query_scalar(&format!(
            "SELECT k::text FROM jsonb_array_elements($1::jsonb) AS k
             WHERE NOT EXISTS (SELECT 1 FROM {} AS g WHERE {matches}) LIMIT 1",
            qualified(&g.ref_schema, &g.ref_name)
        ))
        .bind(serde_json::to_string(&keys).map_err(|source| Error::EncodeKeys { source })?)
        .fetch_optional(&mut *dst)
        .await
        .map_err(|source| Error::LookForGlobalRows {
            table: format!("{}.{}", g.ref_schema, g.ref_name),
            source,
        })?;
        if let Some(key) = missing {
            return Err(Error::TargetLacksGlobalRow {
                table: format!("{}.{}", g.ref_schema, g.ref_name),
                columns: g.ref_columns.join(", "),
                key,
                referencing: g.table.clone(),
                constraint: g.constraint.clone(),
            });
        }
    }
    Ok(())
}

async fn exists(
    conn: &mut PgConnection,
    t: &RealmTable,
    realm: &str,
    key_type: &str,
) -> Result<bool> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
        t.sql_name(),
        t.realm_filter(realm, key_type)
    ))
    .fetch_one(&mut *conn)
    .await
    .map_err(|source| Error::ReadTable {
        table: t.label(),
        source,
    })
}
