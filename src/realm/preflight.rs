//! Reasons not to carry a realm, each a one-line refusal that names what to fix. [`schema`] runs
//! before anything is read; [`data`] inside the copy's snapshot on the source.

use super::plan::{Plan, RealmTable};
use crate::config::Config;
use crate::db::{qualified, quote_ident};
use anyhow::{bail, Context};
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
) -> anyhow::Result<()> {
    if let Some(t) = sp.without_column.first() {
        bail!(
            "{t} is realm-scoped but has no {} column on the source, so its rows cannot be told apart by realm; backfill it first (realmguard backfill run)",
            cfg.realm_column
        );
    }
    for (side, conn, plan) in [("source", &mut *src, sp), ("target", &mut *dst, tp)] {
        let report = crate::verify::verify(conn, cfg).await?;
        let scoped: HashSet<String> = plan.copy_order().map(RealmTable::label).collect();
        let found = report
            .errors()
            .find(|v| scoped.contains(&format!("{}.{}", v.schema, v.table)))
            .cloned();
        if let Some(v) = found {
            bail!(
                "the {side} fails verify on {}.{} ({}: {}); fix it first (realmguard verify)",
                v.schema,
                v.table,
                v.rule,
                v.message
            );
        }
    }
    ledgers(src, dst).await?;
    for s in sp.copy_order() {
        let t = tp
            .copy_order()
            .find(|t| t.schema == s.schema && t.name == s.name)
            .with_context(|| {
                format!(
                    "the target has no realm-scoped table {}; migrate the target first",
                    s.label()
                )
            })?;
        for c in &s.columns {
            match t.column(&c.name) {
                None => bail!(
                    "the target's {} has no column {}; migrate the target first",
                    s.label(),
                    c.name
                ),
                Some(tc) if tc.type_ != c.type_ => bail!(
                    "{}.{} is {} on the source but {} on the target; make the two schemas agree first",
                    s.label(),
                    c.name,
                    c.type_,
                    tc.type_
                ),
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The two migration ledgers must list the same versions with the same checksums.
async fn ledgers(src: &mut PgConnection, dst: &mut PgConnection) -> anyhow::Result<()> {
    let key = |v: Vec<crate::migrate::plan::Applied>| -> Vec<(i64, String, bool)> {
        v.into_iter()
            .map(|a| (a.version, a.checksum, a.success))
            .collect()
    };
    let s = key(crate::migrate::ledger::read(src).await?);
    let t = key(crate::migrate::ledger::read(dst).await?);
    for (a, b) in s.iter().zip(t.iter()) {
        if a.0 != b.0 {
            let v = a.0.min(b.0);
            let side = if a.0 < b.0 { "source" } else { "target" };
            bail!("the ledgers differ: version {v} is applied on the {side} only; migrate both to the same version first");
        }
        if a.1 != b.1 || a.2 != b.2 {
            bail!(
                "the ledgers differ: version {} has another checksum (or state) on the target than on the source; the two databases were migrated from different files",
                a.0
            );
        }
    }
    if s.len() != t.len() {
        let (side, v) = if s.len() > t.len() {
            ("source", s[t.len()].0)
        } else {
            ("target", t[s.len()].0)
        };
        bail!("the ledgers differ: version {v} is applied on the {side} only; migrate both to the same version first");
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
) -> anyhow::Result<()> {
    let kt = &plan.key_type;
    if !exists(src, &plan.realms, realm, kt).await? {
        bail!(
            "realm {realm} does not exist on the source ({} has no such row); see realmguard realm list",
            plan.realms.label()
        );
    }
    for t in plan.copy_order() {
        if exists(dst, t, realm, kt).await? {
            bail!(
                "realm {realm} already has rows on the target (in {}); delete them there first (realmguard realm delete --realm {realm}) or pick another target",
                t.label()
            );
        }
    }
    for g in &plan.globals {
        let child = plan
            .tables
            .iter()
            .find(|t| t.label() == g.table)
            .context("a global reference names a table outside the plan")?;
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
        .with_context(|| format!("cannot read the keys {} references", g.table))?;
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
        .bind(serde_json::to_string(&keys)?)
        .fetch_optional(&mut *dst)
        .await
        .with_context(|| {
            format!(
                "cannot look for {}.{} rows on the target",
                g.ref_schema, g.ref_name
            )
        })?;
        if let Some(k) = missing {
            bail!(
                "the target lacks the {}.{} row {} = {k} that the realm's {} rows reference ({}); copy that global row to the target first",
                g.ref_schema,
                g.ref_name,
                g.ref_columns.join(", "),
                g.table,
                g.constraint
            );
        }
    }
    Ok(())
}

async fn exists(
    conn: &mut PgConnection,
    t: &RealmTable,
    realm: &str,
    key_type: &str,
) -> anyhow::Result<bool> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
        t.sql_name(),
        t.realm_filter(realm, key_type)
    ))
    .fetch_one(&mut *conn)
    .await
    .with_context(|| format!("cannot read {}", t.label()))
}
