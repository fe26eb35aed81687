//! The pure planner: catalog model + config → the ordered online steps, each with its SQL and
//! the lock it takes. No I/O here, so every ordering rule is unit-tested without a database.
//!
//! The order follows `docs/online-ddl.md`: per table (parents before children) add the column, install
//! the fill trigger, fill old rows, NOT NULL through a validated check — or, when every old row's
//! realm is certain (the default realm), add the column NOT NULL with that value kept in the
//! catalog and the trigger, in one instant step with nothing rewritten; then the realm foreign
//! keys; then the unique `(id, realm)` indexes, built concurrently only after every fill (an index
//! containing the realm column would make each batch take key locks that stall child inserts);
//! then per foreign key: supporting index, composite key `NOT VALID`, validate, drop the old one;
//! and only once no foreign key depends on an old primary key, the primary-key swaps. Nothing is
//! ever dropped with CASCADE. Steps already done (read from the catalog) are left out, so a
//! converted database plans to nothing.

use super::view::{Catalog, Constraint, ConstraintKind, Index, Table};
use crate::catalog::Trigger;
use crate::config::Config;
use crate::db::{qualified, quote_ident, quote_literal};
use crate::names::{names_table, object_name, MAX_IDENT};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Realms,
    Column,
    Trigger,
    Fill,
    NotNull,
    RealmFk,
    UniqueIndex,
    ForeignKey,
    UniqueKey,
    PrimaryKey,
    Cleanup,
    /// `backfill finish`: the fill triggers dropped once the application writes the realm itself.
    Finish,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Realms => "realms",
            Phase::Column => "column",
            Phase::Trigger => "trigger",
            Phase::Fill => "fill",
            Phase::NotNull => "not-null",
            Phase::RealmFk => "realm-fk",
            Phase::UniqueIndex => "unique-index",
            Phase::ForeignKey => "foreign-key",
            Phase::UniqueKey => "unique-key",
            Phase::PrimaryKey => "primary-key",
            Phase::Cleanup => "cleanup",
            Phase::Finish => "finish",
        })
    }
}

/// The strongest lock a step takes (`docs/online-ddl.md`, "Locks per step").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lock {
    /// Blocks everything, reads too: taken only for an instant, behind a short lock_timeout.
    AccessExclusive,
    /// Blocks writes: taken only for an instant, behind a short lock_timeout.
    ShareRowExclusive,
    /// Blocks other DDL and VACUUM, not reads or writes: may be held for a scan.
    ShareUpdateExclusive,
    /// Row locks of one short batch at a time.
    RowLocks,
    /// Touches only the realms table's rows or creates it.
    None,
}

impl Lock {
    pub fn name(self) -> &'static str {
        match self {
            Lock::AccessExclusive => "ACCESS EXCLUSIVE",
            Lock::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            Lock::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Lock::RowLocks => "row locks",
            Lock::None => "none",
        }
    }

    /// Whether waiting for this lock queues the application's reads or writes behind us, so
    /// the wait must be bounded by the short `--lock-timeout`.
    pub fn blocks_traffic(self) -> bool {
        matches!(self, Lock::AccessExclusive | Lock::ShareRowExclusive)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// One transaction: `SET LOCAL lock_timeout`, the SQL, the step's ledger row, commit.
    Sql {
        sql: String,
        /// Refuse (never CASCADE) while a foreign key still depends on this index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        no_fk_depends_on: Option<String>,
    },
    /// `CREATE [UNIQUE] INDEX CONCURRENTLY`, outside any transaction; an invalid leftover of
    /// the same name is dropped and rebuilt, a valid one is kept.
    ConcurrentIndex { index: String, sql: String },
    /// `DROP INDEX CONCURRENTLY IF EXISTS`, outside any transaction (idempotent).
    DropIndexConcurrently { index: String, sql: String },
    /// Keyset batches over `key` sized by time; `sql` takes `$1` (exclusive lower) and `$2`
    /// (inclusive upper) bounds.
    Fill { key: String, sql: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub schema: String,
    pub table: String,
    pub phase: Phase,
    pub title: String,
    pub lock: Lock,
    /// How long and on what, for humans: "instant", "scan; reads and writes go on", ….
    pub lock_note: String,
    /// Tables whose lock holders are named when the lock cannot be taken.
    pub relations: Vec<(String, String)>,
    pub action: Action,
}

impl Step {
    pub fn sql(&self) -> &str {
        match &self.action {
            Action::Sql { sql, .. }
            | Action::ConcurrentIndex { sql, .. }
            | Action::DropIndexConcurrently { sql, .. }
            | Action::Fill { sql, .. } => sql,
        }
    }

    pub fn lock_text(&self) -> String {
        format!("{} ({})", self.lock.name(), self.lock_note)
    }

    pub fn display_table(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// How a table's old rows get their realm.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Derive {
    /// A root table: the configured default realm.
    Default { realm: String },
    /// A child: the parent row's realm, through this foreign key.
    Parent {
        constraint: String,
        schema: String,
        table: String,
    },
    /// The column is already filled and NOT NULL.
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TablePlan {
    pub schema: String,
    pub table: String,
    pub key: String,
    pub derive: Derive,
    /// Whether old rows are written in keyset batches; false when they take the realm from
    /// the column's catalog default (or are already filled).
    pub rewrite: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub realm_column: String,
    pub realm_type: String,
    pub tables: Vec<TablePlan>,
    pub steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("realm_scoped lists `{0}`, but no such table exists in the checked schemas")]
    UnknownTable(String),
    #[error("the realms table {0} has no single-column primary key for {1} to reference")]
    RealmsKey(String, String),
    #[error("{0} is a partitioned table; backfill cannot convert partitioned tables yet: convert it by hand or leave it out with `exclude`")]
    Partitioned(String),
    #[error("{0} has no single-column integer primary key to walk in keyset batches (found: {1}); backfill cannot convert it")]
    NoIntegerKey(String, String),
    #[error("{table} has {count} foreign keys to realm tables ({names}); name the one to derive {column} through in the config: [backfill.parent] \"{table}\" = \"<constraint>\"")]
    AmbiguousParent {
        table: String,
        count: usize,
        names: String,
        column: String,
    },
    #[error("[backfill.parent] names `{constraint}` for {table}, but {table} has no foreign key of that name to a realm table")]
    UnknownParent { table: String, constraint: String },
    #[error("the tables {0} derive their realms from each other in a cycle; break it with [backfill.parent]")]
    Cycle(String),
    #[error("{table} has the unique index {index} on an expression or with a WHERE clause and its definition could not be read (another session held the table in ACCESS EXCLUSIVE mode) or taken apart; plan again when the table is free, or make the index include {column} by hand")]
    UnsupportedUnique {
        table: String,
        index: String,
        column: String,
    },
}

/// The name for an index the plan builds on `t`: `parts` joined PostgreSQL style, with a number
/// appended while a relation of the schema or an index planned earlier (`chosen`) has it. The
/// executor takes an index already under the planned name as built (valid) or as its own
/// leftover to drop and rebuild (invalid), so an existing name is only reused for an invalid
/// index on `t` that `ours` says has the planned shape — an interrupted build — and never for
/// someone else's index, which would be trusted or dropped.
fn free_index_name(
    cat: &Catalog,
    t: &Table,
    parts: Vec<String>,
    chosen: &mut BTreeSet<(String, String)>,
    ours: impl Fn(&Index) -> bool,
) -> String {
    let taken = |name: &str| {
        let key = (t.schema.clone(), name.to_string());
        if chosen.contains(&key) {
            return true;
        }
        if t.indexes
            .iter()
            .any(|o| o.name == name && !o.valid && ours(o))
        {
            return false;
        }
        cat.relations.contains(&key)
    };
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let base = match refs.split_last() {
        Some((suffix, stem)) => object_name(stem, suffix),
        None => String::new(),
    };
    let name = if !taken(&base) {
        base
    } else {
        (1..)
            .map(|k| {
                // Truncate before the number, so the number survives a long name.
                let k = format!("_{k}");
                let mut n = base.clone();
                while n.len() + k.len() > MAX_IDENT {
                    n.pop();
                }
                n + &k
            })
            .find(|n| !taken(n))
            .expect("some free name")
    };
    chosen.insert((t.schema.clone(), name.clone()));
    name
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let a: BTreeSet<&String> = a.iter().collect();
    let b: BTreeSet<&String> = b.iter().collect();
    a == b && a.len() == b.len()
}

/// " TABLESPACE x" for a new index that takes the place of (or widens) the index on `t` that
/// `source` picks, when that one is not in the database's default tablespace; else "".
fn tablespace_of(t: &Table, source: impl Fn(&Index) -> bool) -> String {
    t.indexes
        .iter()
        .filter(|o| o.valid && source(o))
        .find_map(|o| o.tablespace.as_deref())
        .map(|s| format!(" TABLESPACE {}", quote_ident(s)))
        .unwrap_or_default()
}

/// A partial or expression unique index rebuilt per realm: `pg_get_indexdef`'s text with the
/// realm column appended to the key list, under a new name and built concurrently. Splicing the
/// server's own text keeps operator classes, collations, orderings, INCLUDE, storage options
/// and the predicate exactly as they were; only the key list's closing parenthesis is located.
fn per_realm_index_sql(
    definition: &str,
    tablespace: Option<&str>,
    name: &str,
    table: &str,
    column: &str,
) -> Option<String> {
    let (open, close) = key_list(definition)?;
    // "CREATE UNIQUE INDEX name ON table USING method (": the access method is the last word.
    let method = definition[..open].split_whitespace().last()?;
    // What follows the keys: INCLUDE, NULLS NOT DISTINCT, WITH, then WHERE; TABLESPACE goes
    // before WHERE.
    let tail = &definition[close + 1..];
    let (options, predicate) = tail.split_at(top_level_where(tail).unwrap_or(tail.len()));
    let space = tablespace
        .map(|t| format!(" TABLESPACE {}", quote_ident(t)))
        .unwrap_or_default();
    Some(format!(
        "CREATE UNIQUE INDEX CONCURRENTLY {} ON {table} USING {method} ({}, {}){options}{space}{predicate}",
        quote_ident(name),
        &definition[open + 1..close],
        quote_ident(column),
    ))
}

/// The offset of " WHERE " in `sql` outside quotes and parentheses.
fn top_level_where(sql: &str) -> Option<usize> {
    unquoted(sql)?
        .into_iter()
        .find(|&(i, depth)| depth == 0 && sql[i..].starts_with(" WHERE "))
        .map(|(i, _)| i)
}

/// Byte offsets of the first parenthesis of `sql` outside quotes and of its match.
fn key_list(sql: &str) -> Option<(usize, usize)> {
    let b = sql.as_bytes();
    let bytes = unquoted(sql)?;
    let (open, _) = bytes.iter().copied().find(|&(i, _)| b[i] == b'(')?;
    let (close, _) = bytes
        .into_iter()
        .find(|&(i, depth)| i > open && depth == 1 && b[i] == b')')?;
    Some((open, close))
}

/// Each byte of `sql` outside quoted names and literals, with the parenthesis depth before it;
/// `None` when a quote or a parenthesis is not closed. The server doubles a quote inside a name
/// or a literal (and a backslash inside an E'…' literal), so a doubled quote never ends a run.
fn unquoted(sql: &str) -> Option<Vec<(usize, usize)>> {
    let b = sql.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    match (b.get(i), b.get(i + 1)) {
                        (None, _) => return None,
                        (Some(&c), Some(&d)) if c == q && d == q => i += 2,
                        (Some(&c), _) if c == q => break,
                        _ => i += 1,
                    }
                }
            }
            c => {
                out.push((i, depth));
                match c {
                    b'(' => depth += 1,
                    b')' => depth = depth.checked_sub(1)?,
                    _ => {}
                }
            }
        }
        i += 1;
    }
    (depth == 0).then_some(out)
}

fn cols(list: &[String]) -> String {
    list.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_integer(type_name: &str) -> bool {
    matches!(type_name, "smallint" | "integer" | "bigint")
}

/// The plan for `cat` under `cfg`.
pub fn plan(cat: &Catalog, cfg: &Config) -> Result<Plan, PlanError> {
    let rc = cfg.realm_column.as_str();
    let default_realm = cfg.backfill.default_realm.as_str();
    let mut steps = Vec::new();
    // Index names this plan has given out (free_index_name).
    let mut chosen: BTreeSet<(String, String)> = BTreeSet::new();

    // The realms table: its key type is the realm column's type.
    let realms: Option<(String, String, String)>; // schema, name, key
    let realm_type: String;
    if cfg.realms_table.is_empty() {
        realms = None;
        realm_type = "text".into();
    } else if let Some(r) = &cat.realms {
        let (key, ty) = r.key.clone().ok_or_else(|| {
            PlanError::RealmsKey(format!("{}.{}", r.schema, r.name), rc.to_string())
        })?;
        if !cat.default_realm_exists {
            steps.push(Step {
                schema: r.schema.clone(),
                table: r.name.clone(),
                phase: Phase::Realms,
                title: format!("insert the default realm `{default_realm}`"),
                lock: Lock::None,
                lock_note: "one row".into(),
                relations: vec![],
                action: Action::Sql {
                    sql: format!(
                        "INSERT INTO {} ({}) VALUES (CAST({} AS {ty})) ON CONFLICT DO NOTHING",
                        qualified(&r.schema, &r.name),
                        quote_ident(&key),
                        quote_literal(default_realm)
                    ),
                    no_fk_depends_on: None,
                },
            });
        }
        realms = Some((r.schema.clone(), r.name.clone(), key));
        realm_type = ty;
    } else {
        let (schema, name) = match cfg.realms_table.split_once('.') {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => (cat.current_schema.clone(), cfg.realms_table.clone()),
        };
        let q = qualified(&schema, &name);
        steps.push(Step {
            schema: schema.clone(),
            table: name.clone(),
            phase: Phase::Realms,
            title: format!("create the realms table with the default realm `{default_realm}`"),
            lock: Lock::None,
            lock_note: "new table".into(),
            relations: vec![],
            action: Action::Sql {
                sql: format!(
                    "CREATE TABLE IF NOT EXISTS {q} (\n    id text PRIMARY KEY,\n    name text NOT NULL,\n    created_at timestamptz NOT NULL DEFAULT now()\n);\nINSERT INTO {q} (id, name) VALUES ({lit}, {lit}) ON CONFLICT DO NOTHING",
                    lit = quote_literal(default_realm)
                ),
                no_fk_depends_on: None,
            },
        });
        realms = Some((schema, name, "id".into()));
        realm_type = "text".into();
    }
    let is_realms = |t: &Table| {
        realms
            .as_ref()
            .is_some_and(|(s, n, _)| t.schema == *s && t.name == *n)
    };

    // Which tables must become realm-scoped: the configured ones and those with the column, then
    // every table linked to them by a foreign key, until nothing changes.
    let candidates: Vec<&Table> = cat
        .tables
        .iter()
        .filter(|t| cfg.schemas.is_empty() || cfg.schemas.contains(&t.schema))
        .filter(|t| {
            !cfg.exclude
                .iter()
                .any(|e| names_table(e, &t.schema, &t.name))
        })
        .filter(|t| !is_realms(t))
        .collect();
    for entry in &cfg.realm_scoped {
        if !candidates
            .iter()
            .any(|t| names_table(entry, &t.schema, &t.name))
        {
            return Err(PlanError::UnknownTable(entry.clone()));
        }
    }
    let mut set: BTreeSet<(String, String)> = candidates
        .iter()
        .filter(|t| {
            t.column(rc).is_some()
                || cfg
                    .realm_scoped
                    .iter()
                    .any(|e| names_table(e, &t.schema, &t.name))
        })
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    loop {
        let mut added = Vec::new();
        for t in &candidates {
            let id = (t.schema.clone(), t.name.clone());
            if set.contains(&id) {
                continue;
            }
            let references = t.foreign_keys().any(|f| set.contains(&fk_target(f)));
            let referenced = candidates.iter().any(|o| {
                set.contains(&(o.schema.clone(), o.name.clone()))
                    && o.foreign_keys().any(|f| fk_target(f) == id)
            });
            if references || referenced {
                added.push(id);
            }
        }
        if added.is_empty() {
            break;
        }
        set.extend(added);
    }
    let targets: Vec<&Table> = candidates
        .iter()
        .copied()
        .filter(|t| set.contains(&(t.schema.clone(), t.name.clone())))
        .collect();

    // Partitioned tables are seen (their partitions are not: the root stands for them), but a
    // concurrent index build, a trigger and a keyset fill each work partition by partition.
    if let Some(t) = targets.iter().find(|t| t.partitioned) {
        return Err(PlanError::Partitioned(t.display()));
    }

    // Per table: the keyset column and where the realm comes from.
    struct Info<'a> {
        t: &'a Table,
        key: String,
        needs_fill: bool,
        parent: Option<&'a Constraint>,
    }
    let mut infos: Vec<Info> = Vec::new();
    for t in &targets {
        let pk_cols: Vec<String> = t
            .primary_key()
            .map(|p| p.columns.iter().filter(|c| *c != rc).cloned().collect())
            .unwrap_or_default();
        let key = match pk_cols.as_slice() {
            [k] if t.column(k).is_some_and(|c| is_integer(&c.type_name)) => k.clone(),
            _ => {
                let found = t
                    .primary_key()
                    .map(|p| format!("primary key ({})", p.columns.join(", ")))
                    .unwrap_or_else(|| "no primary key".into());
                return Err(PlanError::NoIntegerKey(t.display(), found));
            }
        };
        let needs_fill = t.column(rc).is_none_or(|c| !c.not_null);
        let parent = if needs_fill {
            derive_parent(t, cfg, &set)?
        } else {
            None
        };
        infos.push(Info {
            t,
            key,
            needs_fill,
            parent,
        });
    }

    // Parents are filled before their children: the child's trigger refuses to write NULL. Among
    // the tables that can go next, roots go first. They are cheap (no parent lookup), and a big
    // child fill writes enough WAL to start a checkpoint near its end: a table filled after that
    // writes each page it touches to WAL whole, which is when scripts/bench-backfill.sh saw the
    // writer's densest run of slow commits.
    // Where each table's parent sits in `infos` (None: a root, or a parent outside the plan).
    let parent_at: Vec<Option<usize>> = infos
        .iter()
        .map(|info| {
            let pt = fk_target(info.parent?);
            infos
                .iter()
                .position(|o| o.t.schema == pt.0 && o.t.name == pt.1)
        })
        .collect();
    let mut order: Vec<usize> = Vec::new();
    let mut placed = vec![false; infos.len()];
    while order.len() < infos.len() {
        let ready = |i: usize| !placed[i] && parent_at[i].is_none_or(|j| placed[j]);
        let next = (0..infos.len())
            .find(|&i| ready(i) && infos[i].parent.is_none())
            .or_else(|| (0..infos.len()).find(|&i| ready(i)));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => {
                let rest: Vec<String> = (0..infos.len())
                    .filter(|&i| !placed[i])
                    .map(|i| infos[i].t.display())
                    .collect();
                return Err(PlanError::Cycle(rest.join(", ")));
            }
        }
    }

    // Old rows whose realm is known without looking at them take it from the column's default,
    // kept in the catalog: since PostgreSQL 11, `ADD COLUMN … NOT NULL DEFAULT <constant>` is
    // instant and rewrites nothing (the value lives in pg_attribute.attmissingval; dropping the
    // default right after keeps it for those rows and leaves new rows to the trigger). That is
    // every row of a root whose column we add, and every row of a child whose column we add
    // when its parent is such a table and the key to it is NOT NULL and validated: each of its
    // rows then has a parent, and every parent row is in the default realm. A rewrite would
    // write each row again (the table doubles until vacuumed, ~570 bytes of WAL per row) for
    // the same values. Anything less certain (a nullable or NOT VALID key, a parent whose
    // column already existed) is derived row by row in keyset batches.
    let mut catalog_default = vec![false; infos.len()];
    for &i in &order {
        let Info { t, parent, .. } = &infos[i];
        catalog_default[i] = t.column(rc).is_none()
            && parent.is_none_or(|p| {
                p.validated
                    && p.columns
                        .iter()
                        .all(|c| t.column(c).is_some_and(|c| c.not_null))
                    && parent_at[i].is_some_and(|j| catalog_default[j])
            });
    }

    let mut tables = Vec::new();
    let rt = realm_type.as_str();
    let qrc = quote_ident(rc);
    // Phase 1, per table: column, trigger, fill, NOT NULL; or the one catalog-default step.
    for &i in &order {
        let Info {
            t,
            key,
            needs_fill,
            parent,
        } = &infos[i];
        let qt = qualified(&t.schema, &t.name);
        let rel = vec![(t.schema.clone(), t.name.clone())];
        let step = |phase, title: String, lock, note: &str, action| Step {
            schema: t.schema.clone(),
            table: t.name.clone(),
            phase,
            title,
            lock,
            lock_note: note.to_string(),
            relations: rel.clone(),
            action,
        };
        tables.push(TablePlan {
            schema: t.schema.clone(),
            table: t.name.clone(),
            key: key.clone(),
            rewrite: *needs_fill && !catalog_default[i],
            derive: match (needs_fill, parent) {
                (false, _) => Derive::Done,
                (true, None) => Derive::Default {
                    realm: default_realm.to_string(),
                },
                (true, Some(p)) => Derive::Parent {
                    constraint: p.name.clone(),
                    schema: fk_target(p).0,
                    table: fk_target(p).1,
                },
            },
        });
        let trigger = object_name(&[&t.name, rc], "fill");
        if catalog_default[i] {
            // One transaction: from its commit on, the column is NOT NULL and the trigger fills
            // every new row (NOT NULL is checked after BEFORE triggers). No IF NOT EXISTS: the
            // step commits with its ledger row, so it never runs twice, and a column that
            // appeared since the plan (its rows' realms unknown) must stop the run here rather
            // than pass as filled.
            let (_, trigger_sql) = trigger_sql(t, &trigger, rc, rt, default_realm, *parent);
            steps.push(step(
                Phase::Column,
                format!(
                    "add {rc} NOT NULL, old rows in '{default_realm}' through the catalog (no rewrite), and trigger {trigger}"
                ),
                Lock::AccessExclusive,
                "instant, catalog only",
                Action::Sql {
                    sql: format!(
                        "ALTER TABLE {qt} ADD COLUMN {qrc} {rt} NOT NULL DEFAULT CAST({lit} AS {rt});\nALTER TABLE {qt} ALTER COLUMN {qrc} DROP DEFAULT;\n{trigger_sql}",
                        lit = quote_literal(default_realm)
                    ),
                    no_fk_depends_on: None,
                },
            ));
            continue;
        }
        if t.column(rc).is_none() {
            steps.push(step(
                Phase::Column,
                format!("add the nullable column {rc}"),
                Lock::AccessExclusive,
                "instant, catalog only",
                Action::Sql {
                    sql: format!("ALTER TABLE {qt} ADD COLUMN IF NOT EXISTS {qrc} {rt}"),
                    no_fk_depends_on: None,
                },
            ));
        }
        if !needs_fill {
            continue;
        }
        if !t.triggers.contains(&trigger) {
            let (title, sql) = trigger_sql(t, &trigger, rc, rt, default_realm, *parent);
            steps.push(step(
                Phase::Trigger,
                title,
                Lock::ShareRowExclusive,
                "instant",
                Action::Sql {
                    sql,
                    no_fk_depends_on: None,
                },
            ));
        }
        let qk = quote_ident(key);
        let (title, sql) = match parent {
            None => (
                format!("fill {rc} = '{default_realm}' in keyset batches sized by time"),
                format!(
                    "UPDATE {qt} SET {qrc} = CAST({} AS {rt})\nWHERE {qk} > $1::bigint AND {qk} <= $2::bigint AND {qrc} IS NULL",
                    quote_literal(default_realm)
                ),
            ),
            Some(p) => {
                let (ps, pn) = fk_target(p);
                let join = p
                    .columns
                    .iter()
                    .zip(&p.ref_columns)
                    .map(|(c, r)| format!("p.{} = c.{}", quote_ident(r), quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                (
                    format!("fill {rc} from {ps}.{pn} through {} in keyset batches sized by time", p.name),
                    format!(
                        // A correlated lookup rather than `UPDATE … FROM parent`: each batch
                        // costs index probes for its own rows, where a join would rebuild a hash
                        // of the whole parent table for every batch. Rows the trigger already
                        // filled are skipped; a row moved to another parent while we wait on its
                        // lock is re-evaluated (EvalPlanQual) with its new parent.
                        "UPDATE {qt} AS c\nSET {qrc} = (SELECT p.{qrc} FROM {} AS p WHERE {join})\nWHERE c.{qk} > $1::bigint AND c.{qk} <= $2::bigint AND c.{qrc} IS NULL",
                        qualified(&ps, &pn)
                    ),
                )
            }
        };
        steps.push(step(
            Phase::Fill,
            title,
            Lock::RowLocks,
            "one short transaction per batch",
            Action::Fill {
                key: key.clone(),
                sql,
            },
        ));
        // PostgreSQL 18: a NOT VALID not-null constraint already on the column is validated as
        // it is (SHARE UPDATE EXCLUSIVE, a scan that reads and writes go on through). SET NOT
        // NULL would validate it too, but by a scan under ACCESS EXCLUSIVE, check or no check.
        if let Some(nn) = t.column(rc).and_then(|c| c.not_valid_not_null.as_deref()) {
            steps.push(step(
                Phase::NotNull,
                format!("validate {nn} (NOT NULL, added NOT VALID)"),
                Lock::ShareUpdateExclusive,
                "scan; reads and writes go on",
                Action::Sql {
                    sql: format!("ALTER TABLE {qt} VALIDATE CONSTRAINT {}", quote_ident(nn)),
                    no_fk_depends_on: None,
                },
            ));
            continue;
        }
        let check = object_name(&[&t.name, rc], "not_null");
        let qcheck = quote_ident(&check);
        let existing = t.constraint(&check);
        if existing.is_none() {
            steps.push(step(
                Phase::NotNull,
                format!("add CHECK ({rc} IS NOT NULL) NOT VALID"),
                Lock::AccessExclusive,
                "instant, no scan",
                Action::Sql {
                    sql: format!(
                        "ALTER TABLE {qt} ADD CONSTRAINT {qcheck} CHECK ({qrc} IS NOT NULL) NOT VALID"
                    ),
                    no_fk_depends_on: None,
                },
            ));
        }
        if existing.is_none_or(|c| !c.validated) {
            steps.push(step(
                Phase::NotNull,
                format!("validate {check}"),
                Lock::ShareUpdateExclusive,
                "scan; reads and writes go on",
                Action::Sql {
                    sql: format!("ALTER TABLE {qt} VALIDATE CONSTRAINT {qcheck}"),
                    no_fk_depends_on: None,
                },
            ));
        }
        steps.push(step(
            Phase::NotNull,
            format!("SET NOT NULL (proved by the check, no scan) and drop {check}"),
            Lock::AccessExclusive,
            "instant, no scan",
            Action::Sql {
                sql: format!(
                    "ALTER TABLE {qt} ALTER COLUMN {qrc} SET NOT NULL;\nALTER TABLE {qt} DROP CONSTRAINT IF EXISTS {qcheck}"
                ),
                no_fk_depends_on: None,
            },
        ));
    }

    // Phase 2: every table's realm column references the realms table, cascading.
    if let Some((rs, rn, rk)) = &realms {
        for &i in &order {
            let t = infos[i].t;
            let rel = vec![(t.schema.clone(), t.name.clone()), (rs.clone(), rn.clone())];
            let existing = t.foreign_keys().find(|f| {
                f.columns == [rc.to_string()] && fk_target(f) == (rs.clone(), rn.clone())
            });
            let name = existing
                .map(|f| f.name.clone())
                .unwrap_or_else(|| object_name(&[&t.name, rc], "fkey"));
            if existing.is_none() {
                steps.push(add_fk_step(
                    t,
                    Phase::RealmFk,
                    format!("add {name} → {rs}.{rn} ON DELETE CASCADE NOT VALID"),
                    &name,
                    &[rc.to_string()],
                    (rs, rn),
                    &[rk.to_string()],
                ));
            }
            if existing.is_none_or(|f| !f.validated) {
                steps.push(validate_fk_step(t, &name, rel, Phase::RealmFk));
            }
        }
    }

    // Phase 3: the unique (key, realm) indexes composite foreign keys need, built concurrently
    // only now that every fill is over.
    let mut unique_needed: BTreeMap<(String, String), Vec<Vec<String>>> = BTreeMap::new();
    for &i in &order {
        let Info { t, key, .. } = &infos[i];
        unique_needed
            .entry((t.schema.clone(), t.name.clone()))
            .or_default()
            .push(vec![key.clone(), rc.to_string()]);
    }
    for &i in &order {
        for f in old_fks(infos[i].t, rc, &set) {
            let mut c = f.ref_columns.clone();
            c.push(rc.to_string());
            let e = unique_needed.entry(fk_target(f)).or_default();
            if !e.iter().any(|x| same_set(x, &c)) {
                e.push(c);
            }
        }
    }
    // Other unique keys become unique per realm: (cols…, realm), so each realm can reuse values.
    // A partial or expression unique index is rebuilt from its own definition (it cannot back a
    // constraint or a foreign key, so nothing else depends on it); `per_realm` carries the name
    // of such a rebuilt index, while a plain key finds its index by columns below.
    let mut per_realm: Vec<(usize, &Index, Option<String>)> = Vec::new();
    let mut rebuilt: Vec<Step> = Vec::new();
    for &i in &order {
        let t = infos[i].t;
        for ix in t.indexes.iter().filter(|ix| {
            ix.unique && !ix.primary && ix.valid && !ix.columns.iter().any(|c| c == rc)
        }) {
            if ix.partial || ix.columns.iter().any(|c| c.is_empty()) {
                let mut want = ix.columns.clone();
                want.push(rc.to_string());
                let name = free_index_name(
                    cat,
                    t,
                    vec![ix.name.clone(), rc.to_string()],
                    &mut chosen,
                    |o| o.unique && o.partial == ix.partial && o.columns == want,
                );
                let qt = qualified(&t.schema, &t.name);
                let sql = ix
                    .definition
                    .as_deref()
                    .and_then(|d| per_realm_index_sql(d, ix.tablespace.as_deref(), &name, &qt, rc))
                    .ok_or_else(|| PlanError::UnsupportedUnique {
                        table: t.display(),
                        index: ix.name.clone(),
                        column: rc.to_string(),
                    })?;
                rebuilt.push(build_index_step(
                    t,
                    Phase::UniqueIndex,
                    format!(
                        "build unique index {name} concurrently (per realm: {})",
                        ix.name
                    ),
                    &name,
                    sql,
                ));
                per_realm.push((i, ix, Some(name)));
                continue;
            }
            let mut c = ix.columns.clone();
            c.push(rc.to_string());
            let e = unique_needed
                .entry((t.schema.clone(), t.name.clone()))
                .or_default();
            if !e.iter().any(|x| same_set(x, &c)) {
                e.push(c);
            }
            per_realm.push((i, ix, None));
        }
    }
    // (schema, table, column set) → the index name that will hold it.
    let mut unique_index_of: Vec<((String, String), Vec<String>, String)> = Vec::new();
    for &i in &order {
        let t = infos[i].t;
        let id = (t.schema.clone(), t.name.clone());
        for c in unique_needed.get(&id).into_iter().flatten() {
            let existing = t
                .indexes
                .iter()
                .find(|ix| ix.unique && ix.valid && !ix.partial && same_set(&ix.columns, c));
            let name = match existing {
                Some(ix) => ix.name.clone(),
                None => {
                    let mut parts = vec![t.name.clone()];
                    parts.extend(c.iter().cloned());
                    parts.push("key".into());
                    let name = free_index_name(cat, t, parts, &mut chosen, |o| {
                        o.unique && !o.partial && same_set(&o.columns, c)
                    });
                    // Where the key it widens lives (the primary key, a unique key, the key a
                    // foreign key references): the same columns without the realm column.
                    let narrower: Vec<String> = c.iter().filter(|x| *x != rc).cloned().collect();
                    let space = tablespace_of(t, |o| o.unique && same_set(&o.columns, &narrower));
                    steps.push(build_index_step(
                        t,
                        Phase::UniqueIndex,
                        format!("build unique index {name} concurrently"),
                        &name,
                        format!(
                            "CREATE UNIQUE INDEX CONCURRENTLY {} ON {} ({}){space}",
                            quote_ident(&name),
                            qualified(&t.schema, &t.name),
                            cols(c)
                        ),
                    ));
                    name
                }
            };
            unique_index_of.push((id.clone(), c.clone(), name));
        }
    }
    steps.append(&mut rebuilt);

    let mut redundant: Vec<(String, String, String)> = Vec::new();
    // Phase 4, per foreign key between realm tables that lacks the realm column: supporting
    // index, composite key NOT VALID, validate, drop the old key.
    for &i in &order {
        let t = infos[i].t;
        let qt = qualified(&t.schema, &t.name);
        for f in old_fks(t, rc, &set) {
            let (ps, pn) = fk_target(f);
            let rel = vec![(t.schema.clone(), t.name.clone()), (ps.clone(), pn.clone())];
            let mut new_cols = f.columns.clone();
            new_cols.push(rc.to_string());
            let mut new_ref = f.ref_columns.clone();
            new_ref.push(rc.to_string());
            let indexed = t.indexes.iter().any(|ix| {
                ix.valid
                    && !ix.partial
                    && ix.columns.len() >= new_cols.len()
                    && same_set(&ix.columns[..new_cols.len()], &new_cols)
            });
            // C3: a plain index on exactly the old key's columns is redundant once the
            // (cols…, realm) index leads with them; it only costs writes. Dropped at the end.
            for ix in t
                .indexes
                .iter()
                .filter(|ix| !ix.unique && !ix.primary && !ix.partial && ix.columns == f.columns)
            {
                if !redundant
                    .iter()
                    .any(|(s, tb, n)| *s == t.schema && *tb == t.name && *n == ix.name)
                {
                    redundant.push((t.schema.clone(), t.name.clone(), ix.name.clone()));
                }
            }
            if !indexed {
                let mut parts = vec![t.name.clone()];
                parts.extend(new_cols.iter().cloned());
                parts.push("idx".into());
                let name = free_index_name(cat, t, parts, &mut chosen, |o| {
                    !o.partial && o.columns == new_cols
                });
                // Where the old key's own index lives, if it has one.
                let space = tablespace_of(t, |o| !o.partial && o.columns == f.columns);
                steps.push(build_index_step(
                    t,
                    Phase::ForeignKey,
                    format!("build index {name} concurrently (cascading deletes use it)"),
                    &name,
                    format!(
                        "CREATE INDEX CONCURRENTLY {} ON {qt} ({}){space}",
                        quote_ident(&name),
                        cols(&new_cols)
                    ),
                ));
            }
            let existing = t.foreign_keys().find(|g| {
                fk_target(g) == (ps.clone(), pn.clone())
                    && g.columns.len() == new_cols.len()
                    && new_cols.iter().zip(&new_ref).all(|(c, r)| {
                        g.columns
                            .iter()
                            .zip(&g.ref_columns)
                            .any(|(gc, gr)| gc == c && gr == r)
                    })
            });
            let mut parts: Vec<&str> = vec![&t.name];
            parts.extend(new_cols.iter().map(String::as_str));
            let name = existing
                .map(|g| g.name.clone())
                .unwrap_or_else(|| object_name(&parts, "fkey"));
            if existing.is_none() {
                steps.push(add_fk_step(
                    t,
                    Phase::ForeignKey,
                    format!(
                        "add {name} ({}) → {pn} ({}) ON DELETE CASCADE NOT VALID",
                        new_cols.join(", "),
                        new_ref.join(", ")
                    ),
                    &name,
                    &new_cols,
                    (&ps, &pn),
                    &new_ref,
                ));
            }
            if existing.is_none_or(|g| !g.validated) {
                steps.push(validate_fk_step(t, &name, rel.clone(), Phase::ForeignKey));
            }
            steps.push(Step {
                schema: t.schema.clone(),
                table: t.name.clone(),
                phase: Phase::ForeignKey,
                title: format!("drop the single-column foreign key {}", f.name),
                lock: Lock::AccessExclusive,
                lock_note: format!("on {} and {pn}, instant", t.name),
                relations: rel,
                action: Action::Sql {
                    sql: format!(
                        "ALTER TABLE {qt} DROP CONSTRAINT IF EXISTS {}",
                        quote_ident(&f.name)
                    ),
                    no_fk_depends_on: None,
                },
            });
        }
        // Composite keys added by hand (or by an interrupted run) but not validated yet.
        for g in t.foreign_keys() {
            if !g.validated && g.columns.iter().any(|c| c == rc) && set.contains(&fk_target(g)) {
                let step = validate_fk_step(
                    t,
                    &g.name,
                    vec![(t.schema.clone(), t.name.clone()), fk_target(g)],
                    Phase::ForeignKey,
                );
                // Unless an earlier phase already validates it (the same statement).
                if !steps.iter().any(|s| s.sql() == step.sql()) {
                    steps.push(step);
                }
            }
        }
    }

    // Phase 5a: the old unique keys give way to their per-realm indexes (their foreign keys, if
    // any, were moved to the per-realm index in phase 4).
    for (i, ix, rebuilt_as) in &per_realm {
        let t = infos[*i].t;
        let id = (t.schema.clone(), t.name.clone());
        let mut want = ix.columns.clone();
        want.push(rc.to_string());
        let new_index = rebuilt_as.clone().unwrap_or_else(|| {
            unique_index_of
                .iter()
                .find(|(tid, c, _)| *tid == id && same_set(c, &want))
                .map(|(_, _, n)| n.clone())
                .expect("every old unique key gets a per-realm index above")
        });
        let constraint = t.constraints.iter().find(|c| {
            c.kind == ConstraintKind::Unique && c.index.as_deref() == Some(ix.name.as_str())
        });
        let qt = qualified(&t.schema, &t.name);
        match constraint {
            Some(c) => steps.push(Step {
                schema: t.schema.clone(),
                table: t.name.clone(),
                phase: Phase::UniqueKey,
                title: format!(
                    "make {} unique per realm: ({}) using {new_index}",
                    c.name,
                    want.join(", ")
                ),
                lock: Lock::AccessExclusive,
                lock_note: "instant".into(),
                relations: vec![id.clone()],
                action: Action::Sql {
                    sql: format!(
                        "ALTER TABLE {qt} DROP CONSTRAINT {c}, ADD CONSTRAINT {c} UNIQUE USING INDEX {}",
                        quote_ident(&new_index),
                        c = quote_ident(&c.name)
                    ),
                    no_fk_depends_on: Some(ix.name.clone()),
                },
            }),
            None => steps.push(drop_index_step(
                &t.schema,
                &t.name,
                Phase::UniqueKey,
                format!(
                    "drop the global unique index {} (now unique per realm: {new_index})",
                    ix.name
                ),
                &ix.name,
            )),
        }
    }

    // Phase 5: primary keys swap to (key, realm), adopting the unique index; only now no
    // foreign key depends on the old key's index any more.
    for &i in &order {
        let Info { t, key, .. } = &infos[i];
        let want = vec![key.clone(), rc.to_string()];
        let Some(pk) = t.primary_key() else { continue };
        if same_set(&pk.columns, &want) {
            continue;
        }
        let id = (t.schema.clone(), t.name.clone());
        let index = unique_index_of
            .iter()
            .find(|(tid, c, _)| *tid == id && same_set(c, &want))
            .map(|(_, _, n)| n.clone())
            .expect("every target gets a (key, realm) unique index above");
        steps.push(Step {
            schema: t.schema.clone(),
            table: t.name.clone(),
            phase: Phase::PrimaryKey,
            title: format!("swap the primary key {} to ({key}, {rc}) using {index}", pk.name),
            lock: Lock::AccessExclusive,
            lock_note: "instant, both columns already NOT NULL".into(),
            relations: vec![id],
            action: Action::Sql {
                sql: format!(
                    "ALTER TABLE {} DROP CONSTRAINT {pk}, ADD CONSTRAINT {pk} PRIMARY KEY USING INDEX {}",
                    qualified(&t.schema, &t.name),
                    quote_ident(&index),
                    pk = quote_ident(&pk.name)
                ),
                no_fk_depends_on: pk.index.clone(),
            },
        });
    }

    // Phase 6 (C3): indexes made redundant by the (cols…, realm) ones.
    for (schema, table, index) in redundant {
        steps.push(drop_index_step(
            &schema,
            &table,
            Phase::Cleanup,
            format!(
                "drop {index}, made redundant by the index leading with the same columns and {rc}"
            ),
            &index,
        ));
    }

    // Tables that need nothing are no news.
    tables.retain(|tp| {
        steps
            .iter()
            .any(|s| s.schema == tp.schema && s.table == tp.table)
    });
    Ok(Plan {
        realm_column: rc.to_string(),
        realm_type,
        tables,
        steps,
    })
}

fn fk_target(f: &Constraint) -> (String, String) {
    (
        f.ref_schema.clone().unwrap_or_default(),
        f.ref_table.clone().unwrap_or_default(),
    )
}

/// Foreign keys of `t` into realm tables that do not carry the realm column yet.
fn old_fks<'a>(
    t: &'a Table,
    rc: &'a str,
    set: &'a BTreeSet<(String, String)>,
) -> impl Iterator<Item = &'a Constraint> + 'a {
    t.foreign_keys()
        .filter(move |f| set.contains(&fk_target(f)) && !f.columns.iter().any(|c| c == rc))
}

/// The foreign key a child derives its realm through: the configured one, else the only one.
fn derive_parent<'a>(
    t: &'a Table,
    cfg: &Config,
    set: &BTreeSet<(String, String)>,
) -> Result<Option<&'a Constraint>, PlanError> {
    let rc = cfg.realm_column.as_str();
    let configured = cfg
        .backfill
        .parent
        .iter()
        .find(|(k, _)| names_table(k, &t.schema, &t.name))
        .map(|(_, v)| v);
    let candidates: Vec<&Constraint> = t
        .foreign_keys()
        .filter(|f| {
            set.contains(&fk_target(f)) && fk_target(f) != (t.schema.clone(), t.name.clone())
        })
        .collect();
    if let Some(name) = configured {
        return candidates
            .iter()
            .find(|f| f.name == *name)
            .map(|f| Some(*f))
            .ok_or_else(|| PlanError::UnknownParent {
                table: t.display(),
                constraint: name.clone(),
            });
    }
    // A composite key added by an interrupted run and the old key it replaces are one path.
    let mut paths: Vec<&Constraint> = Vec::new();
    for f in &candidates {
        let logical: Vec<&String> = f.columns.iter().filter(|c| *c != rc).collect();
        if !paths.iter().any(|g| {
            fk_target(g) == fk_target(f)
                && g.columns.iter().filter(|c| *c != rc).collect::<Vec<_>>() == logical
        }) {
            paths.push(f);
        }
    }
    // Derive through the single-column key while it exists (it is the one the app maintains).
    paths.sort_by_key(|f| f.columns.iter().any(|c| c == rc));
    match paths.len() {
        0 => Ok(None),
        1 => Ok(Some(paths[0])),
        n => Err(PlanError::AmbiguousParent {
            table: t.display(),
            count: n,
            names: paths
                .iter()
                .map(|f| format!("{} → {}", f.name, fk_target(f).1))
                .collect::<Vec<_>>()
                .join(", "),
            column: rc.to_string(),
        }),
    }
}

/// A concurrent build of `index` on `t`: SHARE UPDATE EXCLUSIVE, so reads and writes go on.
fn build_index_step(t: &Table, phase: Phase, title: String, index: &str, sql: String) -> Step {
    Step {
        schema: t.schema.clone(),
        table: t.name.clone(),
        phase,
        title,
        lock: Lock::ShareUpdateExclusive,
        lock_note: "concurrent build; reads and writes go on".into(),
        relations: vec![(t.schema.clone(), t.name.clone())],
        action: Action::ConcurrentIndex {
            index: index.to_string(),
            sql,
        },
    }
}

/// `DROP INDEX CONCURRENTLY IF EXISTS` of `index` on `schema.table`.
fn drop_index_step(schema: &str, table: &str, phase: Phase, title: String, index: &str) -> Step {
    Step {
        schema: schema.to_string(),
        table: table.to_string(),
        phase,
        title,
        lock: Lock::ShareUpdateExclusive,
        lock_note: "concurrent drop; reads and writes go on".into(),
        relations: vec![(schema.to_string(), table.to_string())],
        action: Action::DropIndexConcurrently {
            index: index.to_string(),
            sql: format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                qualified(schema, index)
            ),
        },
    }
}

/// A cascading foreign key added `NOT VALID` (a later validation proves the old rows): SHARE ROW
/// EXCLUSIVE on both tables, for an instant.
fn add_fk_step(
    t: &Table,
    phase: Phase,
    title: String,
    name: &str,
    columns: &[String],
    (ps, pn): (&str, &str),
    ref_columns: &[String],
) -> Step {
    Step {
        schema: t.schema.clone(),
        table: t.name.clone(),
        phase,
        title,
        lock: Lock::ShareRowExclusive,
        lock_note: format!("on {} and {pn}, instant", t.name),
        relations: vec![
            (t.schema.clone(), t.name.clone()),
            (ps.to_string(), pn.to_string()),
        ],
        action: Action::Sql {
            sql: format!(
                "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE CASCADE NOT VALID",
                qualified(&t.schema, &t.name),
                quote_ident(name),
                cols(columns),
                qualified(ps, pn),
                cols(ref_columns)
            ),
            no_fk_depends_on: None,
        },
    }
}

fn validate_fk_step(t: &Table, name: &str, rel: Vec<(String, String)>, phase: Phase) -> Step {
    Step {
        schema: t.schema.clone(),
        table: t.name.clone(),
        phase,
        title: format!("validate {name}"),
        lock: Lock::ShareUpdateExclusive,
        lock_note: format!(
            "on {}, ROW SHARE on {}; scan, reads and writes go on",
            t.name,
            rel.get(1).map(|r| r.1.as_str()).unwrap_or("the parent")
        ),
        relations: rel,
        action: Action::Sql {
            sql: format!(
                "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                qualified(&t.schema, &t.name),
                quote_ident(name)
            ),
            no_fk_depends_on: None,
        },
    }
}

/// The function and trigger that fill the realm of rows written by code that does not know the
/// column yet: the default realm for a root table, the parent's realm for a child. A child row
/// whose parent has no realm is refused, never written with NULL.
fn trigger_sql(
    t: &Table,
    trigger: &str,
    rc: &str,
    realm_type: &str,
    default_realm: &str,
    parent: Option<&Constraint>,
) -> (String, String) {
    let qt = qualified(&t.schema, &t.name);
    let func = qualified(&t.schema, trigger);
    let qtrig = quote_ident(trigger);
    let qrc = quote_ident(rc);
    match parent {
        None => (
            format!("install trigger {trigger}: new rows get the realm '{default_realm}'"),
            format!(
                "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $realmguard$
BEGIN
    {FILL_MARKER} {rc} belong to the default realm.
    NEW.{qrc} := CAST({lit} AS {realm_type});
    RETURN NEW;
END
$realmguard$;
CREATE OR REPLACE TRIGGER {qtrig} BEFORE INSERT ON {qt}
    FOR EACH ROW WHEN (NEW.{qrc} IS NULL) EXECUTE FUNCTION {func}()",
                lit = quote_literal(default_realm)
            ),
        ),
        Some(p) => {
            let (ps, pn) = fk_target(p);
            let qp = qualified(&ps, &pn);
            let new_null = p
                .columns
                .iter()
                .map(|c| format!("NEW.{} IS NULL", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" OR ");
            let matches = p
                .columns
                .iter()
                .zip(&p.ref_columns)
                .map(|(c, r)| format!("p.{} = NEW.{}", quote_ident(r), quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let key_text = p
                .columns
                .iter()
                .map(|c| format!("NEW.{}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let col_list = p.columns.join(", ");
            let update_of = cols(&p.columns);
            (
                format!("install trigger {trigger}: new rows take the realm of their {pn} row"),
                format!(
                    "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $realmguard$
DECLARE
    parents bigint;
    realms bigint;
    found {realm_type};
BEGIN
    {FILL_MARKER} {rc} take their parent's realm.
    IF NEW.{qrc} IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.{qrc} IS DISTINCT FROM OLD.{qrc}) THEN
        RETURN NEW;  -- the writer chose the realm itself
    END IF;
    IF {new_null} THEN
        RAISE EXCEPTION 'realmguard: cannot derive %.% for a row whose % is NULL', TG_TABLE_NAME, {rc_lit}, {cols_lit}
            USING ERRCODE = 'not_null_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.{qrc} IS NOT NULL
       AND EXISTS (SELECT 1 FROM {qp} p WHERE {matches} AND p.{qrc} = OLD.{qrc}) THEN
        NEW.{qrc} := OLD.{qrc};  -- same realm as before, the parent is there
        RETURN NEW;
    END IF;
    SELECT count(*), count(DISTINCT p.{qrc}), (array_agg(p.{qrc}) FILTER (WHERE p.{qrc} IS NOT NULL))[1]
      INTO parents, realms, found
      FROM {qp} p WHERE {matches};
    IF parents = 0 THEN
        RAISE EXCEPTION 'insert or update on table \"%\" violates foreign key constraint %', TG_TABLE_NAME, {fk_lit}
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (%s)=(%s) is not present in table %s.', {cols_lit}, concat_ws(', ', {key_text}), {pn_lit});
    ELSIF realms = 0 THEN
        RAISE EXCEPTION 'realmguard: the % row (%) has no % yet; refusing to write NULL', {pn_lit}, concat_ws(', ', {key_text}), {rc_lit}
            USING ERRCODE = 'not_null_violation';
    ELSIF realms > 1 THEN
        RAISE EXCEPTION 'realmguard: % (%) exists in % realms; write % explicitly', {pn_lit}, concat_ws(', ', {key_text}), realms, {rc_lit}
            USING ERRCODE = 'cardinality_violation';
    END IF;
    NEW.{qrc} := found;
    RETURN NEW;
END
$realmguard$;
CREATE OR REPLACE TRIGGER {qtrig} BEFORE INSERT OR UPDATE OF {update_of} ON {qt}
    FOR EACH ROW EXECUTE FUNCTION {func}()",
                    rc_lit = quote_literal(rc),
                    cols_lit = quote_literal(&col_list),
                    fk_lit = quote_literal(&p.name),
                    pn_lit = quote_literal(&pn),
                ),
            )
        }
    }
}

/// The comment every fill trigger's function carries: how `backfill finish` (and the planner,
/// through `model::triggers`) tells the triggers a backfill installed from the application's own.
pub const FILL_MARKER: &str = "-- realmguard backfill: rows written without";

/// The steps of `backfill finish`: each fill trigger dropped in its own short transaction
/// (DROP TRIGGER takes ACCESS EXCLUSIVE on its table), its function with the last trigger that
/// uses it. Never CASCADE: a function some other trigger still uses stops the step instead.
pub fn finish_steps(triggers: &[Trigger]) -> Vec<Step> {
    triggers
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let last_user = !triggers[i + 1..].iter().any(|o| o.function == f.function);
            let mut sql = format!(
                "DROP TRIGGER IF EXISTS {} ON {}",
                quote_ident(&f.name),
                qualified(&f.schema, &f.table)
            );
            let mut title = format!("drop the fill trigger {}", f.name);
            if last_user {
                let func = qualified(&f.function.0, &f.function.1);
                sql += &format!(";\nDROP FUNCTION IF EXISTS {func}()");
                title += &format!(" and its function {func}()");
            }
            Step {
                schema: f.schema.clone(),
                table: f.table.clone(),
                phase: Phase::Finish,
                title,
                lock: Lock::AccessExclusive,
                lock_note: "instant".into(),
                relations: vec![(f.schema.clone(), f.table.clone())],
                action: Action::Sql {
                    sql,
                    no_fk_depends_on: None,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::view::{Column, Realms};

    fn col(name: &str, ty: &str, not_null: bool) -> Column {
        Column {
            name: name.into(),
            type_name: ty.into(),
            not_null,
            not_valid_not_null: None,
        }
    }

    fn pk(table: &str, cols: &[&str]) -> Constraint {
        Constraint {
            name: format!("{table}_pkey"),
            kind: ConstraintKind::Primary,
            validated: true,
            columns: cols.iter().map(|s| s.to_string()).collect(),
            ref_schema: None,
            ref_table: None,
            ref_columns: vec![],
            on_delete: None,
            index: Some(format!("{table}_pkey")),
        }
    }

    fn fk(name: &str, cols: &[&str], parent: &str, refs: &[&str]) -> Constraint {
        Constraint {
            name: name.into(),
            kind: ConstraintKind::Foreign,
            validated: true,
            columns: cols.iter().map(|s| s.to_string()).collect(),
            ref_schema: Some("public".into()),
            ref_table: Some(parent.into()),
            ref_columns: refs.iter().map(|s| s.to_string()).collect(),
            on_delete: Some('a'),
            index: Some(format!("{parent}_pkey")),
        }
    }

    fn table(name: &str, columns: Vec<Column>, constraints: Vec<Constraint>) -> Table {
        Table {
            schema: "public".into(),
            name: name.into(),
            columns,
            indexes: vec![Index {
                name: format!("{name}_pkey"),
                unique: true,
                primary: true,
                valid: true,
                partial: false,
                definition: None,
                tablespace: None,
                columns: vec!["id".into()],
            }],
            constraints,
            ..Table::default()
        }
    }

    /// groups(id) ← memberships(group_id), the example of `docs/online-ddl.md`, without a realms table.
    fn legacy() -> Catalog {
        Catalog {
            current_schema: "public".into(),
            tables: vec![
                table(
                    "groups",
                    vec![col("id", "bigint", true), col("name", "text", true)],
                    vec![pk("groups", &["id"])],
                ),
                table(
                    "memberships",
                    vec![col("id", "bigint", true), col("group_id", "bigint", true)],
                    vec![
                        pk("memberships", &["id"]),
                        fk(
                            "memberships_group_id_fkey",
                            &["group_id"],
                            "groups",
                            &["id"],
                        ),
                    ],
                ),
            ],
            ..Catalog::default()
        }
    }

    /// [`legacy`] plus users(id) ← memberships(user_id): memberships has two parents.
    fn legacy_with_users() -> Catalog {
        let mut cat = legacy();
        cat.tables.push(table(
            "users",
            vec![col("id", "bigint", true)],
            vec![pk("users", &["id"])],
        ));
        let m = &mut cat.tables[1];
        m.columns.push(col("user_id", "bigint", true));
        m.constraints.push(fk(
            "memberships_user_id_fkey",
            &["user_id"],
            "users",
            &["id"],
        ));
        cat
    }

    /// `cat` with a nullable realm column on every table, as an earlier attempt by hand leaves
    /// it: nothing is certain about the old rows, so every table is filled row by row.
    fn with_nullable_realm(mut cat: Catalog) -> Catalog {
        for t in &mut cat.tables {
            t.columns.push(col("realm_id", "text", false));
        }
        cat
    }

    /// [`legacy`] with `memberships.group_id` nullable: groups keeps its old rows in the catalog,
    /// memberships is filled row by row (a row without a group has no realm to take).
    fn legacy_nullable_child() -> Catalog {
        let mut cat = legacy();
        cat.tables[1].columns[1].not_null = false;
        cat
    }

    /// `cat` with `relations` filled from its tables and their indexes, as `model::read` fills it.
    fn with_relations(mut cat: Catalog) -> Catalog {
        for t in &cat.tables {
            cat.relations.insert((t.schema.clone(), t.name.clone()));
            for i in &t.indexes {
                cat.relations.insert((t.schema.clone(), i.name.clone()));
            }
        }
        cat
    }

    /// `public.realms` exists, keyed by `id` of `key_type`, and holds the default realm.
    fn with_realms(cat: &mut Catalog, key_type: &str) {
        cat.realms = Some(Realms {
            schema: "public".into(),
            name: "realms".into(),
            key: Some(("id".into(), key_type.into())),
        });
        cat.default_realm_exists = true;
    }

    fn cfg(toml: &str) -> Config {
        Config::parse(toml).unwrap()
    }

    fn titles(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| format!("{} {} {}", s.table, s.phase, s.title))
            .collect()
    }

    fn position(p: &Plan, table: &str, needle: &str) -> usize {
        p.steps
            .iter()
            .position(|s| {
                s.table == table && (s.title.contains(needle) || s.sql().contains(needle))
            })
            .unwrap_or_else(|| panic!("no step `{needle}` on {table}:\n{:#?}", titles(p)))
    }

    #[test]
    fn roots_are_filled_before_any_child() {
        // "users" comes last in catalog order and is no parent of the derivation, yet as a root
        // it is filled before the memberships fill (which may start a checkpoint).
        let cat = with_nullable_realm(legacy_with_users());
        let p = plan(
            &cat,
            &cfg("realm_scoped = [\"groups\"]\n[backfill.parent]\nmemberships = \"memberships_group_id_fkey\"\n"),
        )
        .unwrap();
        let fills: Vec<&str> = p
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Fill)
            .map(|s| s.table.as_str())
            .collect();
        assert_eq!(fills, ["groups", "users", "memberships"]);
    }

    #[test]
    fn legacy_pair_follows_the_documented_order() {
        let p = plan(
            &legacy_nullable_child(),
            &cfg("realm_scoped = [\"groups\"]"),
        )
        .unwrap();
        // The realms table comes first, then the parent entirely before the child's column.
        assert_eq!(p.steps[0].phase, Phase::Realms);
        assert!(p.steps[0]
            .sql()
            .contains("CREATE TABLE IF NOT EXISTS public.realms"));
        assert!(p.steps[0].sql().contains("'hub'"));
        let g_col = position(&p, "groups", "NOT NULL DEFAULT");
        let m_col = position(&p, "memberships", "ADD COLUMN");
        let m_trig = position(&p, "memberships", "install trigger");
        let m_fill = position(&p, "memberships", "keyset");
        let g_idx = position(&p, "groups", "CREATE UNIQUE INDEX CONCURRENTLY");
        let m_fk_idx = position(&p, "memberships", "CREATE INDEX CONCURRENTLY");
        let m_fk = position(&p, "memberships", "FOREIGN KEY (group_id, realm_id)");
        let m_val = position(
            &p,
            "memberships",
            "validate memberships_group_id_realm_id_fkey",
        );
        let m_drop = position(
            &p,
            "memberships",
            "DROP CONSTRAINT IF EXISTS memberships_group_id_fkey",
        );
        let g_pk = position(&p, "groups", "PRIMARY KEY USING INDEX");
        let m_pk = position(&p, "memberships", "PRIMARY KEY USING INDEX");
        assert!(g_col < m_col && m_col < m_trig && m_trig < m_fill);
        let m_nn = position(&p, "memberships", "SET NOT NULL");
        // Every fill is over before any index contains the realm column (pitfall 3).
        assert!(m_fill < m_nn && m_nn < g_idx);
        assert!(g_idx < m_fk && m_fk_idx < m_fk && m_fk < m_val && m_val < m_drop);
        // The primary keys swap only after the old foreign key is gone (pitfall 1).
        assert!(m_drop < g_pk && m_drop < m_pk);
        // Never DROP … CASCADE: the only CASCADE is the foreign keys' ON DELETE.
        for s in &p.steps {
            assert!(
                !s.sql().replace("ON DELETE CASCADE", "").contains("CASCADE"),
                "{}",
                s.sql()
            );
        }
    }

    #[test]
    fn old_rows_of_a_certain_realm_stay_in_the_catalog() {
        let p = plan(&legacy(), &cfg("realm_scoped = [\"groups\"]")).unwrap();
        // No rewrite anywhere: one column step per table, which also installs the trigger.
        assert!(p.tables.iter().all(|t| !t.rewrite), "{:#?}", p.tables);
        assert!(
            p.steps
                .iter()
                .all(|s| !matches!(s.phase, Phase::Trigger | Phase::Fill | Phase::NotNull)),
            "{:#?}",
            titles(&p)
        );
        let g = &p.steps[position(&p, "groups", "ADD COLUMN")];
        let m = &p.steps[position(&p, "memberships", "ADD COLUMN")];
        assert_eq!(g.lock, Lock::AccessExclusive);
        for (step, table) in [(g, "groups"), (m, "memberships")] {
            let sql = step.sql();
            assert!(sql.starts_with(&format!(
                "ALTER TABLE public.{table} ADD COLUMN realm_id text NOT NULL DEFAULT CAST('hub' AS text);\nALTER TABLE public.{table} ALTER COLUMN realm_id DROP DEFAULT;\n"
            )), "{sql}");
            assert!(sql.contains(&format!("CREATE OR REPLACE TRIGGER {table}_realm_id_fill")));
        }
        // The child's trigger derives new rows from the parent, which got its column first.
        assert!(m
            .sql()
            .contains("FROM public.groups p WHERE p.id = NEW.group_id"));
        assert!(
            p.steps.iter().position(|s| std::ptr::eq(s, g))
                < p.steps.iter().position(|s| std::ptr::eq(s, m))
        );

        // Anything less than certain is filled row by row: a child whose key to the parent is
        // nullable or NOT VALID (a row may have no parent), or whose parent already has a
        // column (its rows may be in any realm).
        let mut not_valid = legacy();
        not_valid.tables[1].constraints[1].validated = false;
        let mut parent_has_column = legacy();
        parent_has_column.tables[0]
            .columns
            .push(col("realm_id", "text", false));
        for cat in [legacy_nullable_child(), not_valid, parent_has_column] {
            let p = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap();
            let m = p.tables.iter().find(|t| t.table == "memberships").unwrap();
            assert!(m.rewrite);
            let col = &p.steps[position(&p, "memberships", "ADD COLUMN")];
            assert!(
                col.sql()
                    .ends_with("ADD COLUMN IF NOT EXISTS realm_id text"),
                "{}",
                col.sql()
            );
            position(&p, "memberships", "keyset");
        }
    }

    #[test]
    fn nothing_realm_scoped_plans_only_nothing() {
        let p = plan(&legacy(), &cfg("realms_table = \"\"")).unwrap();
        assert!(p.steps.is_empty(), "{:#?}", titles(&p));
    }

    #[test]
    fn fills_use_the_default_realm_and_the_parent() {
        let p = plan(
            &with_nullable_realm(legacy()),
            &cfg("realm_scoped = [\"memberships\"]\n[backfill]\ndefault_realm = \"main\""),
        )
        .unwrap();
        let g = &p.steps[position(&p, "groups", "keyset")];
        assert!(
            g.sql().contains("SET realm_id = CAST('main' AS text)"),
            "{}",
            g.sql()
        );
        let m = &p.steps[position(&p, "memberships", "keyset")];
        assert!(
            m.sql()
                .contains("FROM public.groups AS p WHERE p.id = c.group_id"),
            "{}",
            m.sql()
        );
        assert!(m.sql().contains("p.id = c.group_id"), "{}", m.sql());
        assert!(matches!(&m.action, Action::Fill { key, .. } if key == "id"));
        let trig = &p.steps[position(&p, "memberships", "install trigger")];
        assert!(trig.sql().contains("refusing to write NULL"));
        assert!(trig.sql().contains("BEFORE INSERT OR UPDATE OF group_id"));
        assert_eq!(
            p.tables[1].derive,
            Derive::Parent {
                constraint: "memberships_group_id_fkey".into(),
                schema: "public".into(),
                table: "groups".into()
            }
        );
    }

    #[test]
    fn a_not_valid_not_null_is_validated_in_place_of_the_check() {
        let mut cat = with_nullable_realm(legacy());
        cat.tables[1].columns.last_mut().unwrap().not_valid_not_null = Some("m_realm_nn".into());
        let p = plan(&cat, &cfg("realm_scoped = [\"memberships\"]")).unwrap();
        let vi = position(&p, "memberships", "m_realm_nn");
        let v = &p.steps[vi];
        assert_eq!(
            v.sql(),
            "ALTER TABLE public.memberships VALIDATE CONSTRAINT m_realm_nn"
        );
        assert_eq!(v.lock, Lock::ShareUpdateExclusive);
        assert!(v.phase == Phase::NotNull && position(&p, "memberships", "keyset") < vi);
        let m: Vec<&str> = p
            .steps
            .iter()
            .filter(|s| s.table == "memberships")
            .map(|s| s.sql())
            .collect();
        assert!(
            !m.iter()
                .any(|s| s.contains("SET NOT NULL") || s.contains("IS NOT NULL) NOT VALID")),
            "{m:#?}"
        );
        // groups, without such a constraint, keeps the check route.
        position(&p, "groups", "SET NOT NULL");
    }

    #[test]
    fn finish_drops_each_trigger_alone_and_a_shared_function_once() {
        let t = |table: &str, trigger: &str, function: &str| Trigger {
            schema: "app".into(),
            table: table.into(),
            name: trigger.into(),
            function: ("app".into(), function.into()),
            fills_realm: true,
        };
        let steps = finish_steps(&[
            t("Groups", "groups_realm_id_fill", "groups_realm_id_fill"),
            t("users", "a", "shared"),
            t("users", "b", "shared"),
        ]);
        let sql: Vec<&str> = steps.iter().map(|s| s.sql()).collect();
        assert_eq!(
            sql,
            [
                "DROP TRIGGER IF EXISTS groups_realm_id_fill ON app.\"Groups\";\nDROP FUNCTION IF EXISTS app.groups_realm_id_fill()",
                "DROP TRIGGER IF EXISTS a ON app.users",
                "DROP TRIGGER IF EXISTS b ON app.users;\nDROP FUNCTION IF EXISTS app.shared()",
            ]
        );
        assert!(steps
            .iter()
            .all(|s| s.phase == Phase::Finish && s.lock == Lock::AccessExclusive));
        assert!(finish_steps(&[]).is_empty());
    }

    #[test]
    fn realm_column_takes_the_realms_key_type() {
        let mut cat = legacy();
        with_realms(&mut cat, "uuid");
        let p = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap();
        assert_eq!(p.realm_type, "uuid");
        assert!(p.steps.iter().all(|s| s.phase != Phase::Realms));
        assert!(p.steps[0].sql().starts_with(
            "ALTER TABLE public.groups ADD COLUMN realm_id uuid NOT NULL DEFAULT CAST('hub' AS uuid);"
        ));
        let fk = &p.steps[position(&p, "memberships", "memberships_realm_id_fkey")];
        assert!(fk
            .sql()
            .contains("REFERENCES public.realms (id) ON DELETE CASCADE NOT VALID"));
    }

    #[test]
    fn two_parents_need_the_config() {
        let cat = legacy_with_users();
        let err = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("memberships_group_id_fkey") && msg.contains("memberships_user_id_fkey"),
            "{msg}"
        );
        assert!(msg.contains("[backfill.parent]"), "{msg}");
        let p = plan(
            &cat,
            &cfg("realm_scoped = [\"groups\"]\n[backfill.parent]\nmemberships = \"memberships_user_id_fkey\""),
        )
        .unwrap();
        let column = &p.steps[position(&p, "memberships", "ADD COLUMN")];
        assert!(column
            .sql()
            .contains("FROM public.users p WHERE p.id = NEW.user_id"));
        // users is pulled in through the foreign key, and both keys get converted.
        assert!(p.tables.iter().any(|t| t.table == "users"));
        position(&p, "memberships", "FOREIGN KEY (user_id, realm_id)");
        position(&p, "memberships", "FOREIGN KEY (group_id, realm_id)");
        let err = plan(
            &cat,
            &cfg("realm_scoped = [\"groups\"]\n[backfill.parent]\nmemberships = \"nope\""),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn converted_tables_plan_to_nothing() {
        let mut cat = legacy();
        with_realms(&mut cat, "text");
        for t in &mut cat.tables {
            t.columns.push(col("realm_id", "text", true));
            t.constraints.retain(|c| c.kind != ConstraintKind::Foreign);
            let n = t.name.clone();
            t.constraints[0].columns.push("realm_id".into());
            t.indexes[0].columns.push("realm_id".into());
            t.constraints.push(Constraint {
                on_delete: Some('c'),
                ..fk(
                    &format!("{n}_realm_id_fkey"),
                    &["realm_id"],
                    "realms",
                    &["id"],
                )
            });
        }
        let m = &mut cat.tables[1];
        m.constraints.push(Constraint {
            on_delete: Some('c'),
            ..fk(
                "memberships_group_id_realm_id_fkey",
                &["group_id", "realm_id"],
                "groups",
                &["id", "realm_id"],
            )
        });
        m.indexes.push(Index {
            name: "memberships_group_id_realm_id_idx".into(),
            unique: false,
            primary: false,
            valid: true,
            partial: false,
            definition: None,
            tablespace: None,
            columns: vec!["group_id".into(), "realm_id".into()],
        });
        let c = cfg("realm_scoped = [\"groups\"]");
        let p = plan(&cat, &c).unwrap();
        assert!(p.steps.is_empty(), "{:#?}", titles(&p));
    }

    #[test]
    fn an_invalid_leftover_index_is_rebuilt_not_trusted() {
        let mut cat = legacy();
        for t in &mut cat.tables {
            t.columns.push(col("realm_id", "text", true));
        }
        cat.tables[0].indexes.push(Index {
            name: "groups_id_realm_id_key".into(),
            unique: true,
            primary: false,
            valid: false,
            partial: false,
            definition: None,
            tablespace: None,
            columns: vec!["id".into(), "realm_id".into()],
        });
        let p = plan(
            &cat,
            &cfg("realm_scoped = [\"groups\"]\nrealms_table = \"\""),
        )
        .unwrap();
        let s = &p.steps[position(&p, "groups", "CREATE UNIQUE INDEX CONCURRENTLY")];
        assert!(
            matches!(&s.action, Action::ConcurrentIndex { index, .. } if index == "groups_id_realm_id_key")
        );
    }

    #[test]
    fn tables_without_an_integer_key_are_refused() {
        let mut cat = legacy();
        cat.tables[0].columns[0].type_name = "uuid".into();
        let err = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap_err();
        assert!(err.to_string().contains("public.groups"), "{err}");
        let err = plan(&legacy(), &cfg("realm_scoped = [\"nope\"]")).unwrap_err();
        assert_eq!(err, PlanError::UnknownTable("nope".into()));
    }

    #[test]
    fn self_references_and_cycles() {
        let mut cat = legacy();
        let g = &mut cat.tables[0];
        g.columns.push(col("parent_id", "bigint", false));
        g.constraints.push(fk(
            "groups_parent_id_fkey",
            &["parent_id"],
            "groups",
            &["id"],
        ));
        let p = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap();
        // A self reference is converted but is no derivation path: groups stays a root.
        assert!(matches!(p.tables[0].derive, Derive::Default { .. }));
        position(&p, "groups", "FOREIGN KEY (parent_id, realm_id)");
        // Two tables deriving from each other cannot be ordered.
        let mut cat = legacy();
        cat.tables[0].columns.push(col("m_id", "bigint", false));
        cat.tables[0]
            .constraints
            .push(fk("groups_m_id_fkey", &["m_id"], "memberships", &["id"]));
        let err = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap_err();
        assert!(matches!(err, PlanError::Cycle(_)), "{err}");
    }

    #[test]
    fn other_unique_keys_become_unique_per_realm() {
        let mut cat = legacy();
        let g = &mut cat.tables[0];
        g.columns.push(col("code", "text", true));
        g.columns.push(col("slug", "text", true));
        g.constraints.push(Constraint {
            name: "groups_name_key".into(),
            kind: ConstraintKind::Unique,
            validated: true,
            columns: vec!["name".into()],
            ref_schema: None,
            ref_table: None,
            ref_columns: vec![],
            on_delete: None,
            index: Some("groups_name_key".into()),
        });
        for (name, column) in [("groups_name_key", "name"), ("groups_slug_idx", "slug")] {
            g.indexes.push(Index {
                name: name.into(),
                unique: true,
                primary: false,
                valid: true,
                partial: false,
                definition: None,
                tablespace: None,
                columns: vec![column.into()],
            });
        }
        let p = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap();
        let build = position(
            &p,
            "groups",
            "groups_name_realm_id_key ON public.groups (name, realm_id)",
        );
        let swap = position(
            &p,
            "groups",
            "DROP CONSTRAINT groups_name_key, ADD CONSTRAINT groups_name_key UNIQUE USING INDEX groups_name_realm_id_key",
        );
        let drop = position(
            &p,
            "groups",
            "DROP INDEX CONCURRENTLY IF EXISTS public.groups_slug_idx",
        );
        let m_fill = position(&p, "memberships", "ADD COLUMN");
        let m_drop = position(
            &p,
            "memberships",
            "DROP CONSTRAINT IF EXISTS memberships_group_id_fkey",
        );
        assert!(m_fill < build && m_drop < swap && build < drop);
        assert!(matches!(
            &p.steps[swap].action,
            Action::Sql { no_fk_depends_on: Some(i), .. } if i == "groups_name_key"
        ));
        // A partial one is rebuilt from its definition with the realm column, then dropped.
        let slug = cat.tables[0].indexes.last_mut().unwrap();
        slug.partial = true;
        slug.definition = Some(
            "CREATE UNIQUE INDEX groups_slug_idx ON public.groups USING btree (lower(slug)) WHERE (slug <> ''::text)"
                .into(),
        );
        let p = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap();
        let build = position(
            &p,
            "groups",
            "CREATE UNIQUE INDEX CONCURRENTLY groups_slug_idx_realm_id ON public.groups USING btree (lower(slug), realm_id) WHERE (slug <> ''::text)",
        );
        let drop = position(
            &p,
            "groups",
            "DROP INDEX CONCURRENTLY IF EXISTS public.groups_slug_idx",
        );
        assert!(m_fill < build && build < drop);
        // Without a definition to rebuild from, the plan says what to do by hand.
        cat.tables[0].indexes.last_mut().unwrap().definition = None;
        let err = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap_err();
        assert!(err.to_string().contains("groups_slug_idx"), "{err}");
    }

    #[test]
    fn per_realm_index_keeps_everything_but_the_name_and_adds_the_column() {
        let def = r#"CREATE UNIQUE INDEX "odd (name" ON public."t(" USING btree (lower((a || ')'::text)) COLLATE "C" DESC, "b)" text_pattern_ops) INCLUDE (c) WITH (fillfactor='90') WHERE (d <> E'\\''x)')"#;
        assert_eq!(
            per_realm_index_sql(def, None, "n", "public.\"t(\"", "realm_id").unwrap(),
            r#"CREATE UNIQUE INDEX CONCURRENTLY n ON public."t(" USING btree (lower((a || ')'::text)) COLLATE "C" DESC, "b)" text_pattern_ops, realm_id) INCLUDE (c) WITH (fillfactor='90') WHERE (d <> E'\\''x)')"#
        );
        // The tablespace pg_get_indexdef leaves out goes back in, before the top-level WHERE
        // (not before a " WHERE " inside a literal or a quoted name).
        let def =
            r#"CREATE UNIQUE INDEX i ON public."a WHERE b" USING btree (x) WHERE (y <> ' WHERE ')"#;
        assert_eq!(
            per_realm_index_sql(def, Some("fast disk"), "n", "public.\"a WHERE b\"", "r").unwrap(),
            r#"CREATE UNIQUE INDEX CONCURRENTLY n ON public."a WHERE b" USING btree (x, r) TABLESPACE "fast disk" WHERE (y <> ' WHERE ')"#
        );
        assert!(per_realm_index_sql(
            "CREATE UNIQUE INDEX i ON t USING btree (lower(x))",
            Some("s"),
            "n",
            "t",
            "r"
        )
        .unwrap()
        .ends_with("(lower(x), r) TABLESPACE s"));
        // An unbalanced text is not guessed at.
        assert_eq!(
            per_realm_index_sql(
                "CREATE UNIQUE INDEX i ON t USING btree (a",
                None,
                "n",
                "t",
                "r"
            ),
            None
        );
    }

    #[test]
    fn single_column_fk_indexes_made_redundant_are_dropped_last() {
        let mut cat = legacy();
        cat.tables[1].indexes.push(Index {
            name: "memberships_group_id_idx".into(),
            unique: false,
            primary: false,
            valid: true,
            partial: false,
            definition: None,
            tablespace: None,
            columns: vec!["group_id".into()],
        });
        let p = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap();
        let last = p.steps.last().unwrap();
        assert_eq!(last.phase, Phase::Cleanup);
        assert_eq!(
            last.sql(),
            "DROP INDEX CONCURRENTLY IF EXISTS public.memberships_group_id_idx"
        );
        assert!(position(&p, "memberships", "PRIMARY KEY USING INDEX") < p.steps.len() - 1);
    }

    #[test]
    fn someone_elses_index_never_lends_its_name_to_ours() {
        let index = |name: &str, unique: bool, valid: bool, cols: &[&str]| Index {
            name: name.into(),
            unique,
            primary: false,
            valid,
            partial: false,
            definition: None,
            tablespace: None,
            columns: cols.iter().map(|c| c.to_string()).collect(),
        };
        let build = |p: &Plan| {
            p.steps[position(p, "groups", "CREATE UNIQUE INDEX")]
                .sql()
                .to_string()
        };
        // An unrelated index holds the name the plan would use: the plan takes the next one,
        // since the executor would take an index under its planned name as already built.
        let mut cat = legacy();
        cat.tables[0]
            .indexes
            .push(index("groups_id_realm_id_key", false, true, &["name"]));
        let p = plan(&with_relations(cat), &cfg("realm_scoped = [\"groups\"]")).unwrap();
        assert!(
            build(&p).contains("INDEX CONCURRENTLY groups_id_realm_id_key_1 ON"),
            "{}",
            build(&p)
        );
        // A leftover of an interrupted run (same table, same shape, invalid) keeps the name: its
        // step drops and rebuilds it.
        let mut cat = legacy();
        cat.tables[0].indexes.push(index(
            "groups_id_realm_id_key",
            true,
            false,
            &["id", "realm_id"],
        ));
        let p = plan(&with_relations(cat), &cfg("realm_scoped = [\"groups\"]")).unwrap();
        assert!(
            build(&p).contains("INDEX CONCURRENTLY groups_id_realm_id_key ON"),
            "{}",
            build(&p)
        );
        // A name at the length limit keeps its number.
        let long = "g".repeat(70);
        let mut cat = legacy();
        cat.tables[0].name = long.clone();
        let taken = object_name(&[&long, "id", "realm_id"], "key");
        cat.tables[0]
            .indexes
            .push(index(&taken, false, true, &["name"]));
        let cat = with_relations(cat);
        let mut chosen = BTreeSet::new();
        let parts = vec![long.clone(), "id".into(), "realm_id".into(), "key".into()];
        let named = free_index_name(&cat, &cat.tables[0], parts.clone(), &mut chosen, |_| true);
        assert_eq!(named.len(), 63);
        assert!(named.ends_with("_1") && named != taken, "{named}");
        // A name this plan already gave out is taken too (two long names cut to the same one).
        let again = free_index_name(&cat, &cat.tables[0], parts, &mut chosen, |_| true);
        assert!(again.ends_with("_2"), "{again}");
        // So is any relation of the schema the model has no table for (a view, a partition's
        // index…), and a valid index of the planned shape is not taken for a leftover.
        let mut cat = legacy();
        cat.relations
            .insert(("public".into(), "groups_id_realm_id_key".into()));
        let p = plan(&with_relations(cat), &cfg("realm_scoped = [\"groups\"]")).unwrap();
        assert!(
            build(&p).contains("groups_id_realm_id_key_1 ON"),
            "{}",
            build(&p)
        );
        let mut cat = legacy();
        cat.tables[0]
            .indexes
            .push(index("groups_id_realm_id_key", true, true, &["id", "name"]));
        let p = plan(&with_relations(cat), &cfg("realm_scoped = [\"groups\"]")).unwrap();
        assert!(
            build(&p).contains("groups_id_realm_id_key_1 ON"),
            "{}",
            build(&p)
        );
    }

    #[test]
    fn names_are_truncated_like_postgres() {
        let long = "x".repeat(80);
        assert_eq!(object_name(&[&long], "realm_id").len(), 63);
        assert_eq!(
            object_name(&["groups", "realm_id"], "fkey"),
            "groups_realm_id_fkey"
        );
    }
}
