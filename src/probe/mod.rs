//! `realmguard realm probe`: prove on a real database that row level security keeps realms
//! apart for the application role. Everything happens in ONE transaction that is always rolled
//! back (never committed on any path; a dropped connection aborts it on the server):
//!
//! 1. as the connecting role, rows of realm B are made where B has none (a copy of realm A's
//!    rows, parents first, and B's row in the realms table);
//! 2. as ROLE (`SET LOCAL ROLE`) with no realm set, every realm-scoped table must show no row
//!    (a policy that fails open on an unset setting shows them);
//! 3. with the setting at A (`set_config(realm_setting, A, true)`), every realm-scoped table
//!    and view must show no row of B, and an insert, an update and a delete of B's rows must be
//!    refused or touch nothing, each in a SAVEPOINT rolled back at once.
//!
//! See docs/rls.md.

pub mod error;
pub mod render;

use crate::catalog::rls::RlsCatalog;
use crate::catalog::{Catalog, RealmsTable};
use crate::config::Config;
use crate::db::{qualified, quote_ident, quote_literal, sqlstate};
use crate::events::{Cancel, Event, EventSink};
use crate::verify::Ctx;
use serde::Serialize;
use sqlx::{PgConnection, Row};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

pub use error::{Error, Result};
pub use render::render;

/// What to probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// The role to probe as (the application's).
    pub role: String,
    /// The realm the setting is put at.
    pub realm: String,
    /// The realm whose rows must stay out of reach; `None`: another realm of the realms table,
    /// else `realmguard_probe`.
    pub other: Option<String>,
    /// lock_timeout for the probe's transaction (zero: none).
    pub lock_timeout: Duration,
}

/// What one write attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Write {
    /// Refused (a policy or a missing privilege).
    Refused,
    /// Ran and touched no row.
    Nothing,
    /// Touched a row of the other realm (or passed the policies).
    Leak,
    /// Not tried: no row of the other realm to try it with, or a view.
    Untested,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableProbe {
    /// `schema.name`, quoted where needed.
    pub table: String,
    /// `table` or `view`.
    pub kind: &'static str,
    /// Rows of the other realm present (as the connecting role), after any were made.
    pub other_rows: i64,
    /// Rows ROLE sees with no realm set; `None` when it may not read the table.
    pub visible_unset: Option<i64>,
    /// Rows of the other realm ROLE sees with the setting at the realm; `None` likewise.
    pub visible_other: Option<i64>,
    pub insert: Write,
    pub update: Write,
    pub delete: Write,
    pub leak: bool,
    /// Why something was refused or not tried.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub ok: bool,
    pub role: String,
    pub realm: String,
    pub other: String,
    /// Tables in which rows of the other realm were made for the probe (rolled back).
    pub created_in: Vec<String>,
    pub tables: Vec<TableProbe>,
}

/// One realm-scoped table to probe.
struct Target {
    sql: String,
    display: String,
    realm_col: String,
    realm_type: String,
    /// Columns an INSERT may name (not generated).
    insertable: Vec<String>,
}

/// Probe, always rolling back. `conn` must not be inside a transaction.
pub async fn probe(
    conn: &mut PgConnection,
    cfg: &Config,
    opts: &ProbeOptions,
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<ProbeReport> {
    sqlx::raw_sql("BEGIN")
        .execute(&mut *conn)
        .await
        .map_err(|source| Error::Begin { source })?;
    let result = tokio::select! {
        r = run(conn, cfg, opts, sink) => r,
        // The statement in flight may be waiting on a lock: do not queue a ROLLBACK behind it.
        // The caller drops the connection, and a transaction whose session ends is aborted.
        _ = cancel.cancelled() => {
            return Err(Error::Interrupted)
        }
    };
    // Never COMMIT. If the ROLLBACK cannot be sent (the connection is gone) the server aborts
    // the transaction when the session ends.
    let rolled_back = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    let report = result?;
    rolled_back.map_err(|source| Error::Rollback { source })?;
    Ok(report)
}

async fn run(
    conn: &mut PgConnection,
    cfg: &Config,
    opts: &ProbeOptions,
    sink: &dyn EventSink,
) -> Result<ProbeReport> {
    let ms = opts.lock_timeout.as_millis();
    sqlx::raw_sql(&format!("SET LOCAL lock_timeout = {ms}"))
        .execute(&mut *conn)
        .await
        .map_err(|source| Error::SetLockTimeout { source })?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
            .bind(&opts.role)
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| Error::FindRole { source })?;
    if !exists {
        return Err(Error::NoSuchRole {
            role: opts.role.clone(),
        });
    }
    let cat = Catalog::load(conn, &cfg.realms_table, &cfg.realm_column)
        .await
        .map_err(|source| Error::Catalog { source })?;
    let rls = RlsCatalog::load(conn, &cfg.realm_column, &opts.role)
        .await
        .map_err(|source| Error::RlsCatalog { source })?;
    let ctx = Ctx::new(&cat, cfg);
    let targets = targets(conn, &ctx, &rls).await?;
    let realms_key = realms_key(&ctx);
    let other = match &opts.other {
        Some(o) => o.clone(),
        None => pick_other(conn, realms_key.as_ref(), &opts.realm).await?,
    };
    if other == opts.realm {
        return Err(Error::SameRealm { other });
    }
    sink.emit(Event::line(format!(
        "realmguard: probing {} table(s) as {} at realm {} against realm {other} (rolled back)",
        targets.len(),
        opts.role,
        opts.realm
    )));

    // 1. Rows of the other realm, as the connecting role.
    if let Some((realms, key)) = &realms_key {
        make_realm_row(conn, realms, key, &opts.realm, &other).await;
    }
    let (created_in, mut probes, templates) =
        make_other_rows(conn, &targets, &opts.realm, &other).await?;
    let views = views(&ctx, &rls);
    let table_count = probes.len();
    for (_, display) in &views {
        probes.push(TableProbe {
            table: display.clone(),
            kind: "view",
            other_rows: 0,
            visible_unset: None,
            visible_other: None,
            insert: Write::Untested,
            update: Write::Untested,
            delete: Write::Untested,
            leak: false,
            notes: Vec::new(),
        });
    }
    let view_sql: Vec<&String> = views.iter().map(|(sql, _)| sql).collect();

    // 2. As ROLE, no realm set.
    sqlx::raw_sql(&format!("SET LOCAL ROLE {}", quote_ident(&opts.role)))
        .execute(&mut *conn)
        .await
        .map_err(|source| Error::SetRole {
            role: opts.role.clone(),
            source,
        })?;
    let every: Vec<&String> = targets
        .iter()
        .map(|t| &t.sql)
        .chain(view_sql.iter().copied())
        .collect();
    for (sql, p) in every.iter().zip(probes.iter_mut()) {
        let q = format!("SELECT count(*) FROM {sql}");
        p.visible_unset = read(conn, &q, None, &mut p.notes).await;
    }

    // 3. As ROLE at realm A.
    sqlx::query("SELECT set_config($1, $2, true)")
        .bind(&cfg.realm_setting)
        .bind(&opts.realm)
        .execute(&mut *conn)
        .await
        .map_err(|source| Error::SetRealm { source })?;
    for (t, p) in targets.iter().zip(probes.iter_mut()) {
        at_realm(conn, t, p, &other, templates.get(&t.display)).await;
    }
    let col = quote_ident(&cfg.realm_column);
    for (sql, p) in view_sql.iter().zip(probes[table_count..].iter_mut()) {
        let q = format!("SELECT count(*) FROM {sql} WHERE {col}::text = $1");
        p.visible_other = read(conn, &q, Some(&other), &mut p.notes).await;
    }
    for p in &mut probes {
        p.leak = p.visible_unset.unwrap_or(0) > 0
            || p.visible_other.unwrap_or(0) > 0
            || [p.insert, p.update, p.delete].contains(&Write::Leak);
    }
    Ok(ProbeReport {
        ok: !probes.iter().any(|p| p.leak),
        role: opts.role.clone(),
        realm: opts.realm.clone(),
        other,
        created_in,
        tables: probes,
    })
}

/// As ROLE at the realm: read `other`'s rows of `t`, then try to insert, update and delete them.
async fn at_realm(
    conn: &mut PgConnection,
    t: &Target,
    p: &mut TableProbe,
    other: &str,
    template: Option<&String>,
) {
    let col = quote_ident(&t.realm_col);
    let cast = format!("CAST($1 AS {})", t.realm_type);
    let q = format!("SELECT count(*) FROM {} WHERE {col} = {cast}", t.sql);
    p.visible_other = read(conn, &q, Some(other), &mut p.notes).await;
    if p.other_rows == 0 {
        return;
    }
    if let Some(row) = template {
        let cols: Vec<String> = t.insertable.iter().map(|c| quote_ident(c)).collect();
        let q = format!(
            "INSERT INTO {0} ({1}) OVERRIDING SYSTEM VALUE SELECT {1} FROM jsonb_populate_record(NULL::{0}, $1::jsonb)",
            t.sql,
            cols.join(", ")
        );
        p.insert = write(conn, &q, row, true, &mut p.notes).await;
    }
    let q = format!("UPDATE {} SET {col} = {col} WHERE {col} = {cast}", t.sql);
    p.update = write(conn, &q, other, false, &mut p.notes).await;
    let q = format!("DELETE FROM {} WHERE {col} = {cast}", t.sql);
    p.delete = write(conn, &q, other, false, &mut p.notes).await;
}

/// Rows of `other` in every target that has none (copied from `realm`), one probe entry per
/// target, and a row of `other` per target (as JSON) for the INSERT to try.
#[allow(clippy::type_complexity)]
async fn make_other_rows(
    conn: &mut PgConnection,
    targets: &[Target],
    realm: &str,
    other: &str,
) -> Result<(Vec<String>, Vec<TableProbe>, HashMap<String, String>)> {
    let mut created_in = Vec::new();
    let mut probes = Vec::new();
    let mut templates = HashMap::new();
    for t in targets {
        let mut notes = Vec::new();
        let mut n = count_other(conn, t, other).await?;
        if n == 0 {
            match copy_realm(conn, t, realm, other).await {
                Ok(k) if k > 0 => {
                    created_in.push(t.display.clone());
                    n = k as i64;
                }
                Ok(_) => notes.push(format!("no row of {other} and none of {} to copy", realm)),
                Err(e) => notes.push(format!("cannot make rows of {other}: {e}")),
            }
        }
        if n > 0 {
            let q = format!(
                "SELECT to_jsonb(x)::text FROM {} x WHERE {} = CAST($1 AS {}) LIMIT 1",
                t.sql,
                quote_ident(&t.realm_col),
                t.realm_type
            );
            let row: Option<String> = sqlx::query_scalar(&q)
                .bind(other)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|source| Error::ReadTemplate { source })?;
            if let Some(r) = row {
                templates.insert(t.display.clone(), r);
            }
        }
        probes.push(TableProbe {
            table: t.display.clone(),
            kind: "table",
            other_rows: n,
            visible_unset: None,
            visible_other: None,
            insert: Write::Untested,
            update: Write::Untested,
            delete: Write::Untested,
            leak: false,
            notes,
        });
    }
    Ok((created_in, probes, templates))
}

/// The realm-scoped tables with a realm column, parents before children (so copied rows find
/// their parents), with the columns an INSERT may name.
async fn targets(conn: &mut PgConnection, ctx: &Ctx<'_>, rls: &RlsCatalog) -> Result<Vec<Target>> {
    let scoped: Vec<_> = ctx
        .scoped_tables()
        .filter_map(|t| {
            let col = t.column_by_num(ctx.realm_col(t.oid)?)?;
            let ty = rls.tables.get(&t.oid)?.realm_type.clone()?;
            Some((t, col.name.clone(), ty))
        })
        .collect();
    let oids: Vec<i64> = scoped.iter().map(|(t, _, _)| t.oid as i64).collect();
    let rows = sqlx::query(
        "SELECT attrelid::bigint AS oid, array_agg(attname::text ORDER BY attnum) AS cols
         FROM pg_attribute
         WHERE attrelid = ANY($1::bigint[]::oid[]) AND attnum > 0 AND NOT attisdropped
           AND attgenerated = ''
         GROUP BY attrelid",
    )
    .bind(&oids)
    .fetch_all(&mut *conn)
    .await
    .map_err(|source| Error::ReadColumns { source })?;
    let mut cols: HashMap<u32, Vec<String>> = HashMap::new();
    for r in rows {
        let row = |source| Error::ColumnRow { source };
        cols.insert(
            r.try_get::<i64, _>("oid").map_err(row)? as u32,
            r.try_get("cols").map_err(row)?,
        );
    }
    // Parents first: repeatedly take the tables whose realm-scoped parents are all taken.
    let wanted: HashSet<u32> = scoped.iter().map(|(t, _, _)| t.oid).collect();
    let parents = |oid: u32| -> Vec<u32> {
        ctx.foreign_keys(oid)
            .filter_map(|c| c.foreign.as_ref().map(|f| f.ref_table))
            .filter(|p| *p != oid && wanted.contains(p))
            .collect()
    };
    let mut done: HashSet<u32> = HashSet::new();
    let mut order = Vec::new();
    while order.len() < scoped.len() {
        let before = order.len();
        for (t, col, ty) in &scoped {
            if !done.contains(&t.oid) && parents(t.oid).iter().all(|p| done.contains(p)) {
                done.insert(t.oid);
                order.push((*t, col.clone(), ty.clone()));
            }
        }
        if order.len() == before {
            // A cycle: the rest in any order (their copies may fail; the probe says so).
            for (t, col, ty) in &scoped {
                if done.insert(t.oid) {
                    order.push((*t, col.clone(), ty.clone()));
                }
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|(t, realm_col, realm_type)| Target {
            sql: qualified(&t.schema, &t.name),
            display: format!("{}.{}", t.schema, t.name),
            realm_col,
            realm_type,
            insertable: cols.remove(&t.oid).unwrap_or_default(),
        })
        .collect())
}

/// Views over realm-scoped tables (at any depth) that the role may read: (SQL name, display).
fn views(ctx: &Ctx<'_>, rls: &RlsCatalog) -> Vec<(String, String)> {
    let mut reaching: HashSet<u32> = HashSet::new();
    loop {
        let before = reaching.len();
        for v in &rls.views {
            if v.reads
                .iter()
                .any(|o| ctx.is_realm_scoped(*o) || reaching.contains(o))
            {
                reaching.insert(v.oid);
            }
        }
        if reaching.len() == before {
            break;
        }
    }
    rls.views
        .iter()
        .filter(|v| reaching.contains(&v.oid) && v.app_can_read)
        .map(|v| {
            (
                qualified(&v.schema, &v.name),
                format!("{}.{}", v.schema, v.name),
            )
        })
        .collect()
}

/// The realms table and its single key column, when there is one.
fn realms_key(ctx: &Ctx<'_>) -> Option<(String, String)> {
    let RealmsTable::Found(oid) = ctx.cat.realms else {
        return None;
    };
    let t = ctx.table(oid)?;
    let pk = ctx.primary_key(oid)?;
    let [num] = pk.columns.as_slice() else {
        return None;
    };
    let col = t.column_by_num(*num)?;
    Some((qualified(&t.schema, &t.name), col.name.clone()))
}

async fn pick_other(
    conn: &mut PgConnection,
    realms: Option<&(String, String)>,
    realm: &str,
) -> Result<String> {
    if let Some((table, key)) = realms {
        let k = quote_ident(key);
        let q = format!("SELECT {k}::text FROM {table} WHERE {k}::text <> $1 ORDER BY 1 LIMIT 1");
        if let Some(o) = sqlx::query_scalar::<_, String>(&q)
            .bind(realm)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|source| Error::PickOther { source })?
        {
            return Ok(o);
        }
    }
    Ok("realmguard_probe".into())
}

/// End the probe's savepoint: released (its work kept) or rolled back.
async fn end_savepoint(conn: &mut PgConnection, keep: bool) -> Result<(), sqlx::Error> {
    let end = if keep {
        "RELEASE SAVEPOINT realmguard_probe"
    } else {
        "ROLLBACK TO SAVEPOINT realmguard_probe"
    };
    sqlx::raw_sql(end).execute(&mut *conn).await.map(|_| ())
}

async fn savepoint(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("SAVEPOINT realmguard_probe")
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// The other realm's row in the realms table, copied from the realm's (or the key alone).
async fn make_realm_row(
    conn: &mut PgConnection,
    realms: &str,
    key: &str,
    realm: &str,
    other: &str,
) {
    let k = quote_ident(key);
    let copy = format!(
        "INSERT INTO {realms} SELECT (jsonb_populate_record(r, jsonb_build_object({}, $2::text))).* FROM {realms} r WHERE {k}::text = $1
         AND NOT EXISTS (SELECT FROM {realms} WHERE {k}::text = $2)",
        quote_literal(key)
    );
    let bare = format!(
        "INSERT INTO {realms} ({k}) SELECT $2 WHERE NOT EXISTS (SELECT FROM {realms} WHERE {k}::text = $2)"
    );
    for q in [copy, bare] {
        if savepoint(conn).await.is_err() {
            return;
        }
        let ok = sqlx::query(&q)
            .bind(realm)
            .bind(other)
            .execute(&mut *conn)
            .await
            .is_ok();
        if end_savepoint(conn, ok).await.is_err() || ok {
            return;
        }
    }
}

async fn count_other(conn: &mut PgConnection, t: &Target, other: &str) -> Result<i64> {
    let q = format!(
        "SELECT count(*) FROM {} WHERE {} = CAST($1 AS {})",
        t.sql,
        quote_ident(&t.realm_col),
        t.realm_type
    );
    sqlx::query_scalar(&q)
        .bind(other)
        .fetch_one(&mut *conn)
        .await
        .map_err(|source| Error::ReadTable {
            table: t.display.clone(),
            source,
        })
}

/// Copy the realm's rows of `t` as rows of `other`, in a savepoint; the rows copied.
async fn copy_realm(
    conn: &mut PgConnection,
    t: &Target,
    realm: &str,
    other: &str,
) -> Result<u64, String> {
    let cols: Vec<String> = t.insertable.iter().map(|c| quote_ident(c)).collect();
    let values: Vec<String> = t
        .insertable
        .iter()
        .map(|c| {
            if *c == t.realm_col {
                format!("CAST($2 AS {})", t.realm_type)
            } else {
                quote_ident(c)
            }
        })
        .collect();
    let q = format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} WHERE {} = CAST($1 AS {})",
        t.sql,
        cols.join(", "),
        values.join(", "),
        t.sql,
        quote_ident(&t.realm_col),
        t.realm_type
    );
    savepoint(conn).await.map_err(|e| e.to_string())?;
    let r = sqlx::query(&q)
        .bind(realm)
        .bind(other)
        .execute(&mut *conn)
        .await;
    end_savepoint(conn, r.is_ok())
        .await
        .map_err(|e| e.to_string())?;
    r.map(|d| d.rows_affected())
        .map_err(|e| crate::db::describe_pg_error(&e))
}

/// A count as ROLE, in a savepoint; `None` (with a note) when refused.
async fn read(
    conn: &mut PgConnection,
    q: &str,
    bind: Option<&str>,
    notes: &mut Vec<String>,
) -> Option<i64> {
    if savepoint(conn).await.is_err() {
        return None;
    }
    let mut query = sqlx::query_scalar::<_, i64>(q);
    if let Some(b) = bind {
        query = query.bind(b.to_string());
    }
    let r = query.fetch_one(&mut *conn).await;
    if end_savepoint(conn, false).await.is_err() {
        return None;
    }
    match r {
        Ok(n) => Some(n),
        Err(e) => {
            notes.push(format!(
                "read refused: {}",
                crate::db::describe_pg_error(&e)
            ));
            None
        }
    }
}

/// A write as ROLE, in a savepoint always rolled back. For the INSERT (`insert`), an error other
/// than a refusal means the row passed the policies (PostgreSQL checks them before the
/// constraints and unique indexes), so it counts as a leak.
async fn write(
    conn: &mut PgConnection,
    q: &str,
    bind: &str,
    insert: bool,
    notes: &mut Vec<String>,
) -> Write {
    if savepoint(conn).await.is_err() {
        return Write::Untested;
    }
    let r = sqlx::query(q)
        .bind(bind.to_string())
        .execute(&mut *conn)
        .await;
    if end_savepoint(conn, false).await.is_err() {
        return Write::Untested;
    }
    let verb = q.split_whitespace().next().unwrap_or("write");
    match r {
        Ok(d) if d.rows_affected() > 0 => Write::Leak,
        Ok(_) => Write::Nothing,
        Err(e) if sqlstate(&e).as_deref() == Some("42501") => Write::Refused,
        Err(e) if insert => {
            notes.push(format!(
                "{verb} passed the policies, then failed: {}",
                crate::db::describe_pg_error(&e)
            ));
            Write::Leak
        }
        Err(e) => {
            notes.push(format!(
                "{verb} failed: {}",
                crate::db::describe_pg_error(&e)
            ));
            Write::Refused
        }
    }
}
