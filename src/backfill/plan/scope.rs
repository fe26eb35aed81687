//! Which tables the plan converts and in what order: the realms table (created or given the
//! default realm), the realm-scoped set and everything linked to it by a foreign key, each
//! table's keyset column and parent, parents before children, and which old rows can keep
//! their realm in the catalog.

use super::{fk_target, is_integer, Action, Info, Lock, Phase, PlanError, Step};
use crate::backfill::view::{Catalog, Constraint, Table};
use crate::config::Config;
use crate::db::{qualified, quote_ident, quote_literal};
use crate::names::names_table;
use std::collections::BTreeSet;

type Realms = Option<(String, String, String)>;
type Names = BTreeSet<(String, String)>;

/// The realms table (schema, name, key column) and the realm column's type, with the step that
/// creates it or inserts the default realm.
pub(super) fn realms(
    cat: &Catalog,
    cfg: &Config,
    steps: &mut Vec<Step>,
) -> Result<(Realms, String), PlanError> {
    let rc = cfg.realm_column.first();
    let default_realm = cfg.backfill.default_realm.as_str();
    // The realms table: its key type is the realm column's type.
    let realms: Realms; // schema, name, key
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
                partition_of: None,
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
            partition_of: None,
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
    Ok((realms, realm_type))
}

/// Which tables must become realm-scoped: the configured ones and those with the column, then
/// every table linked to them by a foreign key, until nothing changes.
pub(super) fn targets<'a>(
    cat: &'a Catalog,
    cfg: &Config,
    realms: Option<&(String, String, String)>,
) -> Result<(Names, Vec<&'a Table>), PlanError> {
    let cols = &cfg.realm_column;
    let is_realms = |t: &Table| realms.is_some_and(|(s, n, _)| t.schema == *s && t.name == *n);

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
            cols.all().iter().any(|c| t.column(c).is_some())
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

    // Partitioned tables are converted partition by partition (docs/backfill-design.md,
    // "Partitioned tables"): one level of plain partitions; the composite keys that reference
    // one are added in its primary-key swap, which is built for keys of plain tables only.
    for t in targets.iter().filter(|t| t.partitioned) {
        if let Some(p) = t.partitions.iter().find(|p| p.partitioned) {
            return Err(PlanError::SubPartitioned(t.display(), p.display()));
        }
        let id = (t.schema.clone(), t.name.clone());
        let referencing: Vec<String> = targets
            .iter()
            .filter(|o| o.partitioned)
            .flat_map(|o| {
                o.foreign_keys()
                    .filter(|f| fk_target(f) == id)
                    .map(move |f| format!("{} on {}", f.name, o.display()))
            })
            .collect();
        if !referencing.is_empty() {
            return Err(PlanError::PartitionedReferenced(
                t.display(),
                referencing.join(", "),
            ));
        }
    }

    Ok((set, targets))
}

/// Per table: the keyset column and where the realm comes from.
pub(super) fn infos<'a>(
    targets: &[&'a Table],
    cfg: &Config,
    set: &BTreeSet<(String, String)>,
) -> Result<Vec<Info<'a>>, PlanError> {
    let mut infos: Vec<Info> = Vec::new();
    for t in targets {
        let rc = t.realm_column(&cfg.realm_column);
        let pk_cols: Vec<String> = t
            .primary_key()
            .map(|p| p.columns.iter().filter(|c| *c != rc).cloned().collect())
            .unwrap_or_default();
        if t.partitioned {
            partition_check(t, rc, &pk_cols)?;
        }
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
        if t.partitioned && needs_fill && t.partition_key.iter().any(|c| c == rc) {
            return Err(PlanError::PartitionedByRealm {
                table: t.display(),
                column: rc.to_string(),
            });
        }
        let parent = if needs_fill {
            derive_parent(t, cfg, set)?
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

    Ok(infos)
}

/// What the planner needs of a partitioned table beyond an ordinary one: every partition key
/// column in the new primary key (PostgreSQL requires it of a unique key on a partitioned table),
/// and no unique key beside the primary key (see docs/backfill-design.md, "Partitioned tables").
fn partition_check(t: &Table, rc: &str, pk_cols: &[String]) -> Result<(), PlanError> {
    let id = match pk_cols {
        [k] if t.column(k).is_some_and(|c| is_integer(&c.type_name)) => Some(k.as_str()),
        _ => None,
    };
    if t.partition_key
        .iter()
        .any(|c| c != rc && Some(c.as_str()) != id)
    {
        return Err(PlanError::PartitionKey {
            table: t.display(),
            key: t
                .partition_key
                .iter()
                .map(|c| if c.is_empty() { "an expression" } else { c })
                .collect::<Vec<_>>()
                .join(", "),
            id: id.unwrap_or("id").to_string(),
            column: rc.to_string(),
        });
    }
    if let Some(ix) = t
        .indexes
        .iter()
        .find(|ix| ix.unique && !ix.primary && !ix.columns.iter().any(|c| c == rc))
    {
        return Err(PlanError::PartitionedUnique(t.display(), ix.name.clone()));
    }
    Ok(())
}

// Parents are filled before their children: the child's trigger refuses to write NULL. Among
// the tables that can go next, roots go first. They are cheap (no parent lookup), and a big
// child fill writes enough WAL to start a checkpoint near its end: a table filled after that
// writes each page it touches to WAL whole, which is when scripts/bench-backfill.sh saw the
// writer's densest run of slow commits.
// Where each table's parent sits in `infos` (None: a root, or a parent outside the plan).
#[allow(clippy::type_complexity)]
pub(super) fn order(infos: &[Info]) -> Result<(Vec<Option<usize>>, Vec<usize>), PlanError> {
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

    Ok((parent_at, order))
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
pub(super) fn catalog_default(
    infos: &[Info],
    order: &[usize],
    parent_at: &[Option<usize>],
    cols: &crate::config::RealmColumns,
) -> Vec<bool> {
    let mut catalog_default = vec![false; infos.len()];
    for &i in order {
        let Info { t, parent, .. } = &infos[i];
        catalog_default[i] = t.column(t.realm_column(cols)).is_none()
            && parent.is_none_or(|p| {
                p.validated
                    && p.columns
                        .iter()
                        .all(|c| t.column(c).is_some_and(|c| c.not_null))
                    && parent_at[i].is_some_and(|j| catalog_default[j])
            });
    }

    catalog_default
}

/// The foreign key a child derives its realm through: the configured one, else the only one.
fn derive_parent<'a>(
    t: &'a Table,
    cfg: &Config,
    set: &BTreeSet<(String, String)>,
) -> Result<Option<&'a Constraint>, PlanError> {
    let rc = t.realm_column(&cfg.realm_column);
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
