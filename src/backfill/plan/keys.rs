//! Phases 3 and 5: the unique (key, realm) indexes, built concurrently once every fill is over
//! (other unique keys widened to (cols…, realm), partial and expression ones rebuilt from their
//! definition); then the old unique keys and the primary keys swap to them.

use super::{cols, fk_target, old_fks, same_set, Action, Ctx, Info, Lock, Phase, PlanError, Step};
use crate::backfill::view::{Catalog, Constraint, ConstraintKind, Index, Partition, Table};
use crate::db::{dollar_quote, qualified, quote_ident, quote_literal};
use crate::names::{object_name, MAX_IDENT};
use std::collections::{BTreeMap, BTreeSet};

/// What phase 3 decided for phase 5.
pub(super) struct UniqueIndexes<'a> {
    /// Each old unique key made unique per realm: its table (in `infos`), its index, and the
    /// name of its rebuilt index when it is partial or on an expression.
    per_realm: Vec<(usize, &'a Index, Option<String>)>,
    /// (schema, table), column set → the index name that will hold it.
    index_of: Vec<((String, String), Vec<String>, String)>,
    /// A partitioned table's new unique key: (schema, table), column set → each partition and
    /// the index built on it, which the key swap adopts (see `partitioned_swap`).
    partition_indexes: Vec<PartitionIndexes>,
}

type PartitionIndexes = ((String, String), Vec<String>, Vec<(Partition, String)>);

/// Phase 3: the unique (key, realm) indexes composite foreign keys need, built concurrently
/// only now that every fill is over.
pub(super) fn unique_indexes<'a>(ctx: &mut Ctx<'a>) -> Result<UniqueIndexes<'a>, PlanError> {
    let (cat, rcs, order, infos, set) = (ctx.cat, ctx.cols, &ctx.order, &ctx.infos, &ctx.set);
    let (steps, chosen) = (&mut ctx.steps, &mut ctx.chosen);
    let mut unique_needed: BTreeMap<(String, String), Vec<Vec<String>>> = BTreeMap::new();
    for &i in order {
        let Info { t, key, .. } = &infos[i];
        unique_needed
            .entry((t.schema.clone(), t.name.clone()))
            .or_default()
            .push(vec![key.clone(), t.realm_column(rcs).to_string()]);
    }
    for &i in order {
        let t = infos[i].t;
        for f in old_fks(t, t.realm_column(rcs), set) {
            let mut c = f.ref_columns.clone();
            // The referenced table's own realm column, which may be spelled differently.
            c.push(super::rc_at(cat, rcs, &fk_target(f)).to_string());
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
    for &i in order {
        let t = infos[i].t;
        let rc = t.realm_column(rcs);
        for ix in t.indexes.iter().filter(|ix| {
            ix.unique && !ix.primary && ix.valid && !ix.columns.iter().any(|c| c == rc)
        }) {
            // A plain column key with more to it than its columns (NULLS NOT DISTINCT, INCLUDE,
            // an operator class or ordering, storage options) is rebuilt from its definition
            // too, which keeps them; built from its columns it would lose them.
            let more = ix
                .definition
                .as_deref()
                .is_some_and(|d| !plain_definition(d, &ix.columns));
            if ix.partial || ix.columns.iter().any(|c| c.is_empty()) || more {
                let mut want = ix.columns.clone();
                want.push(rc.to_string());
                let name =
                    free_index_name(cat, t, vec![ix.name.clone(), rc.to_string()], chosen, |o| {
                        o.unique && o.partial == ix.partial && o.columns == want
                    });
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
    let mut partition_indexes: Vec<PartitionIndexes> = Vec::new();
    for &i in order {
        let t = infos[i].t;
        let id = (t.schema.clone(), t.name.clone());
        for c in unique_needed.get(&id).into_iter().flatten() {
            if t.partitioned {
                // Only the primary key can hold it (the scope phase refused other unique keys
                // and referenced partitioned tables); already there, nothing is built.
                if t.primary_key().is_some_and(|p| same_set(&p.columns, c)) {
                    continue;
                }
                let space = tablespace_of(t, |o| o.primary);
                let mut built = Vec::new();
                for part in &t.partitions {
                    let pt = super::foreign_keys::partition_table(part);
                    let mut parts = vec![part.name.clone()];
                    parts.extend(c.iter().cloned());
                    parts.push("key".into());
                    let name = free_index_name(cat, &pt, parts, chosen, |_| false);
                    let mut s = build_index_step(
                        &pt,
                        Phase::UniqueIndex,
                        format!(
                            "build unique index {name} concurrently on partition {}",
                            part.name
                        ),
                        &name,
                        format!(
                            "CREATE UNIQUE INDEX CONCURRENTLY {} ON {} ({}){space}",
                            quote_ident(&name),
                            qualified(&part.schema, &part.name),
                            cols(c)
                        ),
                    );
                    s.partition_of = Some(id.clone());
                    steps.push(s);
                    built.push((part.clone(), name));
                }
                partition_indexes.push((id.clone(), c.clone(), built));
                continue;
            }
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
                    let name = free_index_name(cat, t, parts, chosen, |o| {
                        o.unique && !o.partial && same_set(&o.columns, c)
                    });
                    // Where the key it widens lives (the primary key, a unique key, the key a
                    // foreign key references): the same columns without the realm column.
                    let narrower: Vec<String> = c
                        .iter()
                        .filter(|x| *x != t.realm_column(rcs))
                        .cloned()
                        .collect();
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
    Ok(UniqueIndexes {
        per_realm,
        index_of: unique_index_of,
        partition_indexes,
    })
}

/// Phase 5a: the old unique keys give way to their per-realm indexes (their foreign keys, if
/// any, were moved to the per-realm index in phase 4).
pub(super) fn unique_keys(ctx: &mut Ctx, u: &UniqueIndexes) {
    let (rcs, infos, steps) = (ctx.cols, &ctx.infos, &mut ctx.steps);
    let (per_realm, unique_index_of) = (&u.per_realm, &u.index_of);
    for (i, ix, rebuilt_as) in per_realm {
        let t = infos[*i].t;
        let rc = t.realm_column(rcs);
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
        // The per-realm index may already back a constraint (the primary key is (id, realm)
        // and a UNIQUE (id) was kept beside it): it cannot be adopted twice, and it already
        // makes the key unique per realm, so the old key is only dropped.
        let taken = t
            .constraints
            .iter()
            .find(|o| o.index.as_deref() == Some(new_index.as_str()));
        match (constraint, taken) {
            (Some(c), Some(o)) => steps.push(Step {
                schema: t.schema.clone(),
                table: t.name.clone(),
                phase: Phase::UniqueKey,
                title: format!(
                    "drop {}: {} already makes ({}) unique",
                    c.name,
                    o.name,
                    want.join(", ")
                ),
                lock: Lock::AccessExclusive,
                lock_note: "instant".into(),
                relations: vec![id.clone()],
                partition_of: None,
                action: Action::Sql {
                    sql: format!("ALTER TABLE {qt} DROP CONSTRAINT {}", quote_ident(&c.name)),
                    no_fk_depends_on: Some(ix.name.clone()),
                },
            }),
            (Some(c), None) => steps.push(Step {
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
                partition_of: None,
                action: Action::Sql {
                    sql: format!(
                        "ALTER TABLE {qt} DROP CONSTRAINT {c}, ADD CONSTRAINT {c} UNIQUE USING INDEX {}",
                        quote_ident(&new_index),
                        c = quote_ident(&c.name)
                    ),
                    no_fk_depends_on: Some(ix.name.clone()),
                },
            }),
            (None, _) => steps.push(drop_index_step(
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
}

/// Phase 5: primary keys swap to (key, realm), adopting the unique index; only now no foreign
/// key depends on the old key's index any more.
pub(super) fn primary_keys(ctx: &mut Ctx, u: &UniqueIndexes) {
    let (rcs, order, infos, steps) = (ctx.cols, &ctx.order, &ctx.infos, &mut ctx.steps);
    let deferred = &ctx.deferred;
    let unique_index_of = &u.index_of;
    for &i in order {
        let Info { t, key, .. } = &infos[i];
        let rc = t.realm_column(rcs);
        let want = vec![key.clone(), rc.to_string()];
        let Some(pk) = t.primary_key() else { continue };
        if same_set(&pk.columns, &want) {
            continue;
        }
        let id = (t.schema.clone(), t.name.clone());
        if t.partitioned {
            let built = u
                .partition_indexes
                .iter()
                .find(|(tid, c, _)| *tid == id && same_set(c, &want))
                .map(|(_, _, b)| b.as_slice())
                .unwrap_or_default();
            let keys: Vec<&super::Deferred> = deferred.iter().filter(|d| d.target == id).collect();
            steps.push(partitioned_swap(t, pk, &want, built, &keys));
            for d in keys {
                steps.push(Step {
                    schema: d.child.0.clone(),
                    table: d.child.1.clone(),
                    phase: Phase::ForeignKey,
                    title: format!("validate {}", d.name),
                    lock: Lock::ShareUpdateExclusive,
                    lock_note: format!(
                        "on {}, ROW SHARE on {}; scan, reads and writes go on",
                        d.child.1, t.name
                    ),
                    relations: vec![d.child.clone(), id.clone()],
                    action: Action::Sql {
                        sql: format!(
                            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                            qualified(&d.child.0, &d.child.1),
                            quote_ident(&d.name)
                        ),
                        no_fk_depends_on: None,
                    },
                    partition_of: None,
                });
            }
            continue;
        }
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
            partition_of: None,
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
}

/// The primary key swap of a partitioned table, which cannot adopt an index (`ADD PRIMARY KEY
/// USING INDEX` is refused on a partitioned table): in one transaction, the old key dropped (with
/// its partitions' copies), the new one added on `t` only (an index on `t` alone, invalid,
/// nothing built), each partition's concurrently built index made its primary key and attached
/// to it, as pg_dump restores one. The parent's index is valid once every partition's is
/// attached; a partition that has none (created during the run) rolls the whole swap back.
/// ACCESS EXCLUSIVE on `t` and every partition, for an instant.
fn partitioned_swap(
    t: &Table,
    pk: &Constraint,
    want: &[String],
    built: &[(Partition, String)],
    keys: &[&super::Deferred],
) -> Step {
    let qt = qualified(&t.schema, &t.name);
    let qpk = quote_ident(&pk.name);
    let mut sql = String::new();
    // The old keys that depend on the old primary key's index go first (never CASCADE); their
    // composite replacements are added NOT VALID at the end of the same transaction, so no
    // moment goes unchecked for new rows.
    for d in keys {
        sql += &format!(
            "ALTER TABLE {} DROP CONSTRAINT {};\n",
            qualified(&d.child.0, &d.child.1),
            quote_ident(&d.old)
        );
    }
    sql += &format!(
        "ALTER TABLE {qt} DROP CONSTRAINT {qpk};\nALTER TABLE ONLY {qt} ADD CONSTRAINT {qpk} PRIMARY KEY ({})",
        cols(want)
    );
    for (part, index) in built {
        let ppk = object_name(&[&part.name], "pkey");
        sql += &format!(
            ";\nALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {};\nALTER INDEX {} ATTACH PARTITION {}",
            qualified(&part.schema, &part.name),
            quote_ident(&ppk),
            quote_ident(index),
            qualified(&t.schema, &pk.name),
            qualified(&part.schema, &ppk)
        );
    }
    let message = format!(
        "realmguard: a partition of {} has no ({}) index to attach to {} (created or attached during the run?): detach it, run again, and attach it back",
        t.display(),
        want.join(", "),
        pk.name
    );
    sql += &format!(
        ";\nDO {}",
        dollar_quote(&format!(
            "\nBEGIN\n    IF NOT (SELECT indisvalid FROM pg_index WHERE indexrelid = {}::regclass) THEN\n        RAISE EXCEPTION USING MESSAGE = {};\n    END IF;\nEND\n",
            quote_literal(&qualified(&t.schema, &pk.name)),
            quote_literal(&message)
        ))
    );
    for d in keys {
        sql += ";\n";
        sql += &super::foreign_keys::add_fk_sql(
            (&d.child.0, &d.child.1),
            &d.name,
            &d.columns,
            (&d.target.0, &d.target.1),
            &d.ref_columns,
            true,
        );
    }
    let mut relations = vec![(t.schema.clone(), t.name.clone())];
    relations.extend(keys.iter().map(|d| d.child.clone()));
    let children: Vec<&str> = keys.iter().map(|d| d.child.1.as_str()).collect();
    Step {
        schema: t.schema.clone(),
        table: t.name.clone(),
        phase: Phase::PrimaryKey,
        title: if keys.is_empty() {
            format!(
                "swap the primary key {} to ({}) adopting each partition's index",
                pk.name,
                want.join(", ")
            )
        } else {
            format!(
                "swap the primary key {} to ({}) adopting each partition's index; replace {} NOT VALID",
                pk.name,
                want.join(", "),
                keys.iter()
                    .map(|d| format!("{} with {}", d.old, d.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        lock: Lock::AccessExclusive,
        lock_note: if children.is_empty() {
            "on the table and its partitions, instant, nothing built".into()
        } else {
            format!(
                "on the table, its partitions and {}, instant, nothing built",
                children.join(", ")
            )
        },
        relations,
        action: Action::Sql {
            sql,
            // The keys it drops itself depend on the old key; any other stops the DROP
            // (never CASCADE).
            no_fk_depends_on: if keys.is_empty() {
                pk.index.clone()
            } else {
                None
            },
        },
        partition_of: None,
    }
}

/// The name for an index the plan builds on `t`: `parts` joined PostgreSQL style, with a number
/// appended while a relation of the schema or an index planned earlier (`chosen`) has it. The
/// executor takes an index already under the planned name as built (valid) or as its own
/// leftover to drop and rebuild (invalid), so an existing name is only reused for an invalid
/// index on `t` that `ours` says has the planned shape — an interrupted build — and never for
/// someone else's index, which would be trusted or dropped.
pub(super) fn free_index_name(
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

/// " TABLESPACE x" for a new index that takes the place of (or widens) the index on `t` that
/// `source` picks, when that one is not in the database's default tablespace; else "".
pub(super) fn tablespace_of(t: &Table, source: impl Fn(&Index) -> bool) -> String {
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
pub(super) fn per_realm_index_sql(
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

/// Whether `pg_get_indexdef`'s text of a unique index is a btree on exactly `columns`, each
/// with its defaults, and nothing after the key list.
fn plain_definition(definition: &str, columns: &[String]) -> bool {
    let Some((open, close)) = key_list(definition) else {
        return false;
    };
    definition[..open].trim_end().ends_with(" USING btree")
        && definition[close + 1..].trim().is_empty()
        && definition[open + 1..close] == cols(columns)
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

/// A concurrent build of `index` on `t`: SHARE UPDATE EXCLUSIVE, so reads and writes go on.
pub(super) fn build_index_step(
    t: &Table,
    phase: Phase,
    title: String,
    index: &str,
    sql: String,
) -> Step {
    Step {
        schema: t.schema.clone(),
        table: t.name.clone(),
        phase,
        title,
        lock: Lock::ShareUpdateExclusive,
        lock_note: "concurrent build; reads and writes go on".into(),
        relations: vec![(t.schema.clone(), t.name.clone())],
        partition_of: None,
        action: Action::ConcurrentIndex {
            index: index.to_string(),
            sql,
        },
    }
}

/// `DROP INDEX CONCURRENTLY IF EXISTS` of `index` on `schema.table`.
pub(super) fn drop_index_step(
    schema: &str,
    table: &str,
    phase: Phase,
    title: String,
    index: &str,
) -> Step {
    Step {
        schema: schema.to_string(),
        table: table.to_string(),
        phase,
        title,
        lock: Lock::ShareUpdateExclusive,
        lock_note: "concurrent drop; reads and writes go on".into(),
        relations: vec![(schema.to_string(), table.to_string())],
        partition_of: None,
        action: Action::DropIndexConcurrently {
            index: index.to_string(),
            sql: format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                qualified(schema, index)
            ),
        },
    }
}
