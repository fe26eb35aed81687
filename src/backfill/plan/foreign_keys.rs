//! Phases 2, 4 and 6: every table's realm column references the realms table; each foreign key
//! between realm tables becomes composite (supporting index, key NOT VALID, validation, the old
//! key dropped); and the plain indexes that made redundant are dropped last.

use super::keys::{build_index_step, drop_index_step, free_index_name, tablespace_of};
use super::{cols, fk_target, old_fks, same_set, Action, Ctx, Lock, Phase, Step};
use crate::backfill::view::{Partition, Table};
use crate::db::{qualified, quote_ident};
use crate::names::object_name;

/// Phase 2: every table's realm column references the realms table, cascading.
pub(super) fn realm_fks(ctx: &mut Ctx) {
    let (rcs, order, infos, steps) = (ctx.cols, &ctx.order, &ctx.infos, &mut ctx.steps);
    if let Some((rs, rn, rk)) = &ctx.realms {
        for &i in order {
            let t = infos[i].t;
            let rc = t.realm_column(rcs);
            let rel = vec![(t.schema.clone(), t.name.clone()), (rs.clone(), rn.clone())];
            let existing = t.foreign_keys().find(|f| {
                f.columns == [rc.to_string()] && fk_target(f) == (rs.clone(), rn.clone())
            });
            let name = existing
                .map(|f| f.name.clone())
                .unwrap_or_else(|| object_name(&[&t.name, rc], "fkey"));
            if existing.is_none() && t.partitioned {
                steps.extend(partitioned_fk_steps(
                    t,
                    Phase::RealmFk,
                    &name,
                    &[rc.to_string()],
                    (rs, rn),
                    &[rk.to_string()],
                ));
                continue;
            }
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
}

/// Phase 4, per foreign key between realm tables that lacks the realm column: supporting index,
/// composite key NOT VALID, validate, drop the old key. Returns the plain indexes made redundant
/// (schema, table, index), dropped in phase 6.
pub(super) fn composite_fks(ctx: &mut Ctx) -> Vec<(String, String, String)> {
    let (cat, rcs, order, infos, set) = (ctx.cat, ctx.cols, &ctx.order, &ctx.infos, &ctx.set);
    let (steps, chosen) = (&mut ctx.steps, &mut ctx.chosen);
    let mut redundant: Vec<(String, String, String)> = Vec::new();
    // Phase 4, per foreign key between realm tables that lacks the realm column: supporting
    // index, composite key NOT VALID, validate, drop the old key.
    for &i in order {
        let t = infos[i].t;
        let rc = t.realm_column(rcs);
        let qt = qualified(&t.schema, &t.name);
        for f in old_fks(t, rc, set) {
            let (ps, pn) = fk_target(f);
            let rel = vec![(t.schema.clone(), t.name.clone()), (ps.clone(), pn.clone())];
            let mut new_cols = f.columns.clone();
            new_cols.push(rc.to_string());
            let mut new_ref = f.ref_columns.clone();
            new_ref.push(super::rc_at(cat, rcs, &(ps.clone(), pn.clone())).to_string());
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
                let name = free_index_name(cat, t, parts, chosen, |o| {
                    !o.partial && o.columns == new_cols
                });
                // Where the old key's own index lives, if it has one.
                let space = tablespace_of(t, |o| !o.partial && o.columns == f.columns);
                if t.partitioned {
                    steps.extend(partitioned_index_steps(
                        cat, t, &name, &new_cols, &space, chosen,
                    ));
                } else {
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
            if existing.is_none() && cat.table(&ps, &pn).is_some_and(|p| p.partitioned) {
                // Added NOT VALID in the partitioned parent's key swap, with the old key
                // dropped there (see `Deferred`); validated after it.
                ctx.deferred.push(super::Deferred {
                    child: (t.schema.clone(), t.name.clone()),
                    old: f.name.clone(),
                    name,
                    columns: new_cols,
                    target: (ps, pn),
                    ref_columns: new_ref,
                });
                continue;
            }
            if existing.is_none() && t.partitioned {
                steps.extend(partitioned_fk_steps(
                    t,
                    Phase::ForeignKey,
                    &name,
                    &new_cols,
                    (&ps, &pn),
                    &new_ref,
                ));
            } else if existing.is_none() {
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
            if existing.is_some_and(|g| !g.validated) || (existing.is_none() && !t.partitioned) {
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
                partition_of: None,
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

    redundant
}

/// Phase 6 (C3): indexes made redundant by the (cols…, realm) ones.
pub(super) fn cleanup(ctx: &mut Ctx, redundant: Vec<(String, String, String)>) {
    let (cat, rcs, steps) = (ctx.cat, ctx.cols, &mut ctx.steps);
    for (schema, table, index) in redundant {
        let rc = super::rc_at(cat, rcs, &(schema.clone(), table.clone()));
        if cat.table(&schema, &table).is_some_and(|t| t.partitioned) {
            // A partitioned index cannot be dropped CONCURRENTLY: a plain DROP INDEX, which
            // takes ACCESS EXCLUSIVE on the table and its partitions for an instant.
            steps.push(Step {
                schema: schema.clone(),
                table: table.clone(),
                phase: Phase::Cleanup,
                title: format!(
                    "drop {index} (partitioned: not concurrently), made redundant by the index leading with the same columns and {rc}"
                ),
                lock: Lock::AccessExclusive,
                lock_note: "on the table and its partitions, instant".into(),
                relations: vec![(schema.clone(), table.clone())],
                action: Action::Sql {
                    sql: format!("DROP INDEX IF EXISTS {}", qualified(&schema, &index)),
                    no_fk_depends_on: None,
                },
                partition_of: None,
            });
            continue;
        }
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
        partition_of: None,
        action: Action::Sql {
            sql: add_fk_sql(
                (&t.schema, &t.name),
                name,
                columns,
                (ps, pn),
                ref_columns,
                true,
            ),
            no_fk_depends_on: None,
        },
    }
}

/// `ALTER TABLE child ADD CONSTRAINT name FOREIGN KEY (columns) REFERENCES parent (ref_columns)
/// ON DELETE CASCADE`, `NOT VALID` when asked: the one shape of every key the backfill adds.
pub(super) fn add_fk_sql(
    (cs, cn): (&str, &str),
    name: &str,
    columns: &[String],
    (ps, pn): (&str, &str),
    ref_columns: &[String],
    not_valid: bool,
) -> String {
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE CASCADE{}",
        qualified(cs, cn),
        quote_ident(name),
        cols(columns),
        qualified(ps, pn),
        cols(ref_columns),
        if not_valid { " NOT VALID" } else { "" }
    )
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
        partition_of: None,
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

/// A partition of `t` as a table of its own, for the step builders that take one.
pub(super) fn partition_table(part: &Partition) -> Table {
    Table {
        schema: part.schema.clone(),
        name: part.name.clone(),
        ..Table::default()
    }
}

/// A foreign key of the partitioned table `t` (docs/backfill-design.md, "Partitioned tables"):
/// PostgreSQL 15 refuses `NOT VALID` on a partitioned table, so each partition gets the key
/// `NOT VALID` and validates it (a scan per partition, reads and writes go on), and only then is
/// the key added to `t`, which adopts the validated partition keys without a scan.
fn partitioned_fk_steps(
    t: &Table,
    phase: Phase,
    name: &str,
    columns: &[String],
    (ps, pn): (&str, &str),
    ref_columns: &[String],
) -> Vec<Step> {
    let mut out = Vec::new();
    for part in &t.partitions {
        let pt = partition_table(part);
        let mut parts: Vec<&str> = vec![&part.name];
        parts.extend(columns.iter().map(String::as_str));
        let pname = object_name(&parts, "fkey");
        let mut add = add_fk_step(
            &pt,
            phase,
            format!(
                "add {pname} ({}) → {pn} ({}) ON DELETE CASCADE NOT VALID on partition {}",
                columns.join(", "),
                ref_columns.join(", "),
                part.name
            ),
            &pname,
            columns,
            (ps, pn),
            ref_columns,
        );
        add.partition_of = Some((t.schema.clone(), t.name.clone()));
        out.push(add);
        let mut validate = validate_fk_step(
            &pt,
            &pname,
            vec![
                (part.schema.clone(), part.name.clone()),
                (ps.to_string(), pn.to_string()),
            ],
            phase,
        );
        validate.partition_of = Some((t.schema.clone(), t.name.clone()));
        out.push(validate);
    }
    out.push(Step {
        schema: t.schema.clone(),
        table: t.name.clone(),
        phase,
        title: format!(
            "add {name} ({}) → {pn} ({}) ON DELETE CASCADE, adopting the partitions' validated keys",
            columns.join(", "),
            ref_columns.join(", ")
        ),
        // Measured on PostgreSQL 15: SHARE ROW EXCLUSIVE on the table and its partitions, and
        // ACCESS EXCLUSIVE on the referenced table, whose triggers for each partition's own key
        // are dropped as the keys are adopted.
        lock: Lock::AccessExclusive,
        lock_note: format!(
            "on {pn}, SHARE ROW EXCLUSIVE on {} and its partitions; instant, no scan",
            t.name
        ),
        relations: vec![
            (t.schema.clone(), t.name.clone()),
            (ps.to_string(), pn.to_string()),
        ],
        action: Action::Sql {
            sql: add_fk_sql((&t.schema, &t.name), name, columns, (ps, pn), ref_columns, false),
            no_fk_depends_on: None,
        },
        partition_of: None,
    });
    out
}

/// An index of the partitioned table `t` built without blocking writes: created `ON ONLY` `t`
/// (invalid, nothing built), built `CONCURRENTLY` on each partition, each attached; the parent
/// index is valid once the last is. Returns the steps.
pub(super) fn partitioned_index_steps(
    cat: &crate::backfill::view::Catalog,
    t: &Table,
    name: &str,
    columns: &[String],
    space: &str,
    chosen: &mut std::collections::BTreeSet<(String, String)>,
) -> Vec<Step> {
    let mut out = vec![Step {
        schema: t.schema.clone(),
        table: t.name.clone(),
        phase: Phase::ForeignKey,
        title: format!(
            "create index {name} on only {} (built per partition)",
            t.name
        ),
        lock: Lock::Share,
        lock_note: "on the table only, instant: nothing is built".into(),
        relations: vec![(t.schema.clone(), t.name.clone())],
        action: Action::Sql {
            sql: format!(
                "CREATE INDEX {} ON ONLY {} ({}){space}",
                quote_ident(name),
                qualified(&t.schema, &t.name),
                cols(columns)
            ),
            no_fk_depends_on: None,
        },
        partition_of: None,
    }];
    for part in &t.partitions {
        let pt = partition_table(part);
        let mut parts = vec![part.name.clone()];
        parts.extend(columns.iter().cloned());
        parts.push("idx".into());
        let pidx = free_index_name(cat, &pt, parts, chosen, |_| false);
        let mut build = build_index_step(
            &pt,
            Phase::ForeignKey,
            format!("build index {pidx} concurrently on partition {}", part.name),
            &pidx,
            format!(
                "CREATE INDEX CONCURRENTLY {} ON {} ({}){space}",
                quote_ident(&pidx),
                qualified(&part.schema, &part.name),
                cols(columns)
            ),
        );
        build.partition_of = Some((t.schema.clone(), t.name.clone()));
        out.push(build);
        out.push(attach_index_step(t, part, name, &pidx, Phase::ForeignKey));
    }
    out
}

/// The index an `ON ONLY` step of [`partitioned_index_steps`] creates, read back from its SQL:
/// it stays invalid until its last partition is attached, and a resumed run's preflight must
/// take it as the run's own work, not someone's failed build.
pub fn on_only_index(sql: &str) -> Option<String> {
    let rest = sql.strip_prefix("CREATE INDEX ")?;
    let name = if let Some(quoted) = rest.strip_prefix('"') {
        // quote_ident's output: a doubled quote inside, a single one at the end.
        let mut out = String::new();
        let mut chars = quoted.chars().peekable();
        loop {
            match chars.next()? {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    out.push('"');
                }
                '"' => break,
                c => out.push(c),
            }
        }
        let tail: String = chars.collect();
        tail.starts_with(" ON ONLY ").then_some(out)?
    } else {
        let (name, tail) = rest.split_once(' ')?;
        tail.starts_with("ON ONLY ").then(|| name.to_string())?
    };
    Some(name)
}

/// `ALTER INDEX parent ATTACH PARTITION part_index`: measured on PostgreSQL 15, ACCESS EXCLUSIVE
/// on the partition's index (which writes to the partition use) and SHARE UPDATE EXCLUSIVE on the
/// parent's, for an instant.
pub(super) fn attach_index_step(
    t: &Table,
    part: &Partition,
    parent_index: &str,
    index: &str,
    phase: Phase,
) -> Step {
    Step {
        schema: part.schema.clone(),
        table: part.name.clone(),
        phase,
        title: format!("attach {index} to {parent_index}"),
        lock: Lock::AccessExclusive,
        lock_note: format!("on {index}, instant"),
        relations: vec![(part.schema.clone(), part.name.clone())],
        action: Action::Sql {
            sql: format!(
                "ALTER INDEX {} ATTACH PARTITION {}",
                qualified(&t.schema, parent_index),
                qualified(&part.schema, index)
            ),
            no_fk_depends_on: None,
        },
        partition_of: Some((t.schema.clone(), t.name.clone())),
    }
}
