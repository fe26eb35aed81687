//! Phase 1, per table (parents first): the realm column, the fill trigger, the keyset fill and
//! NOT NULL through a validated check; or, when every old row's realm is certain, the one
//! instant step that adds the column NOT NULL with the realm kept in the catalog.

use super::{
    cols, fk_target, Action, Ctx, Derive, Info, Lock, Phase, Step, TablePlan, FILL_MARKER,
};
use crate::backfill::view::{Constraint, Table};
use crate::db::{comment_text, dollar_quote, qualified, quote_ident, quote_literal};
use crate::names::object_name;

/// Phase 1 for every table, in fill order; each table's line of the plan.
pub(super) fn phase(ctx: &mut Ctx) -> Vec<TablePlan> {
    let order = ctx.order.clone();
    order.iter().map(|&i| table_steps(ctx, i)).collect()
}

/// A step on `t` that names only `t` as the relation whose lock holders a wait reports.
fn table_step(
    t: &Table,
    phase: Phase,
    title: String,
    lock: Lock,
    note: &str,
    action: Action,
) -> Step {
    Step {
        schema: t.schema.clone(),
        table: t.name.clone(),
        phase,
        title,
        lock,
        lock_note: note.to_string(),
        relations: vec![(t.schema.clone(), t.name.clone())],
        partition_of: None,
        action,
    }
}

fn sql(sql: String) -> Action {
    Action::Sql {
        sql,
        no_fk_depends_on: None,
    }
}

/// Phase 1 for `infos[i]`.
fn table_steps(ctx: &mut Ctx, i: usize) -> TablePlan {
    let (rcs, default_realm) = (ctx.cols, ctx.default_realm);
    let rt = ctx.realm_type.as_str();
    let Info {
        t,
        key,
        needs_fill,
        parent,
    } = &ctx.infos[i];
    let (t, parent) = (*t, *parent);
    // The table's own realm column (a legacy table gets the first name), and the parent's,
    // which may be spelled differently.
    let rc = t.realm_column(rcs);
    let qrc = quote_ident(rc);
    let prc = parent.map_or(rc, |p| super::rc_at(ctx.cat, rcs, &fk_target(p)));
    let steps = &mut ctx.steps;
    let qt = qualified(&t.schema, &t.name);
    let step = |phase, title: String, lock, note: &str, action| {
        table_step(t, phase, title, lock, note, action)
    };
    let plan = TablePlan {
        schema: t.schema.clone(),
        table: t.name.clone(),
        key: key.clone(),
        rewrite: *needs_fill && !ctx.catalog_default[i],
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
    };
    let trigger = object_name(&[&t.name, rc], "fill");
    if ctx.catalog_default[i] {
        // One transaction: from its commit on, the column is NOT NULL and the trigger fills
        // every new row (NOT NULL is checked after BEFORE triggers). No IF NOT EXISTS: the
        // step commits with its ledger row, so it never runs twice, and a column that
        // appeared since the plan (its rows' realms unknown) must stop the run here rather
        // than pass as filled.
        let (_, trigger_sql) = trigger_sql(t, &trigger, (rc, prc), rt, default_realm, parent);
        steps.push(step(
            Phase::Column,
            format!(
                "add {rc} NOT NULL, old rows in '{default_realm}' through the catalog (no rewrite), and trigger {trigger}"
            ),
            Lock::AccessExclusive,
            "instant, catalog only",
            sql(format!(
                "ALTER TABLE {qt} ADD COLUMN {qrc} {rt} NOT NULL DEFAULT CAST({lit} AS {rt});\nALTER TABLE {qt} ALTER COLUMN {qrc} DROP DEFAULT;\n{trigger_sql}",
                lit = quote_literal(default_realm)
            )),
        ));
        return plan;
    }
    if t.column(rc).is_none() {
        steps.push(step(
            Phase::Column,
            format!("add the nullable column {rc}"),
            Lock::AccessExclusive,
            "instant, catalog only",
            sql(format!(
                "ALTER TABLE {qt} ADD COLUMN IF NOT EXISTS {qrc} {rt}"
            )),
        ));
    }
    if !needs_fill {
        return plan;
    }
    if !t.triggers.contains(&trigger) {
        let (title, body) = trigger_sql(t, &trigger, (rc, prc), rt, default_realm, parent);
        steps.push(step(
            Phase::Trigger,
            title,
            Lock::ShareRowExclusive,
            "instant",
            sql(body),
        ));
    }
    if t.partitioned {
        // Each partition is filled on its own, over its own keys: a batch locks rows of one
        // partition only, and its progress is the partition's.
        for part in &t.partitions {
            let target = (part.schema.as_str(), part.name.as_str());
            let mut s = fill_step(t, target, key, (rc, prc), rt, default_realm, parent);
            on_partition(&mut s, t, target);
            steps.push(s);
        }
    } else {
        let target = (t.schema.as_str(), t.name.as_str());
        steps.push(fill_step(
            t,
            target,
            key,
            (rc, prc),
            rt,
            default_realm,
            parent,
        ));
    }
    not_null_steps(t, rc, steps);
    plan
}

/// Make `s`, planned for the partitioned table `t`, a step on its partition `part`: the
/// partition is the table it runs on and whose lock holders are named, `t` stands for it.
pub(super) fn on_partition(s: &mut Step, t: &Table, (schema, name): (&str, &str)) {
    s.schema = schema.to_string();
    s.table = name.to_string();
    s.relations = vec![(schema.to_string(), name.to_string())];
    s.partition_of = Some((t.schema.clone(), t.name.clone()));
}

/// The keyset fill of `t`'s old rows: the default realm for a root, the parent's for a child.
fn fill_step(
    t: &Table,
    (schema, name): (&str, &str),
    key: &str,
    (rc, prc): (&str, &str),
    rt: &str,
    default_realm: &str,
    parent: Option<&Constraint>,
) -> Step {
    let qt = qualified(schema, name);
    let qrc = quote_ident(rc);
    let qprc = quote_ident(prc);
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
                    "UPDATE {qt} AS c\nSET {qrc} = (SELECT p.{qprc} FROM {} AS p WHERE {join})\nWHERE c.{qk} > $1::bigint AND c.{qk} <= $2::bigint AND c.{qrc} IS NULL",
                    qualified(&ps, &pn)
                ),
            )
        }
    };
    table_step(
        t,
        Phase::Fill,
        title,
        Lock::RowLocks,
        "one short transaction per batch",
        Action::Fill {
            key: key.to_string(),
            sql,
        },
    )
}

/// NOT NULL once the fill is done: a NOT VALID not-null constraint validated as it is, else a
/// check added NOT VALID, validated, and SET NOT NULL proved by it.
fn not_null_steps(t: &Table, rc: &str, steps: &mut Vec<Step>) {
    let qt = qualified(&t.schema, &t.name);
    let qrc = quote_ident(rc);
    let step = |phase, title: String, lock, note: &str, action| {
        table_step(t, phase, title, lock, note, action)
    };
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
        return;
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
        // A partitioned table: each partition's copy of the check first, one scan each under
        // its own SHARE UPDATE EXCLUSIVE; the parent's validation then finds them all valid
        // and scans nothing.
        for part in &t.partitions {
            let mut s = step(
                Phase::NotNull,
                format!("validate {check} on partition {}", part.name),
                Lock::ShareUpdateExclusive,
                "scan; reads and writes go on",
                Action::Sql {
                    sql: format!(
                        "ALTER TABLE {} VALIDATE CONSTRAINT {qcheck}",
                        qualified(&part.schema, &part.name)
                    ),
                    no_fk_depends_on: None,
                },
            );
            on_partition(&mut s, t, (&part.schema, &part.name));
            steps.push(s);
        }
        let note = if t.partitioned {
            "on the table and its partitions; already valid on each, no scan"
        } else {
            "scan; reads and writes go on"
        };
        steps.push(step(
            Phase::NotNull,
            format!("validate {check}"),
            Lock::ShareUpdateExclusive,
            note,
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

/// The function and trigger that fill the realm of rows written by code that does not know the
/// column yet: the default realm for a root table, the parent's realm for a child. A child row
/// whose parent has no realm is refused, never written with NULL.
fn trigger_sql(
    t: &Table,
    trigger: &str,
    (rc, prc): (&str, &str),
    realm_type: &str,
    default_realm: &str,
    parent: Option<&Constraint>,
) -> (String, String) {
    let qt = qualified(&t.schema, &t.name);
    let func = qualified(&t.schema, trigger);
    let qtrig = quote_ident(trigger);
    let qrc = quote_ident(rc);
    let rc_comment = comment_text(rc);
    match parent {
        None => (
            format!("install trigger {trigger}: new rows get the realm '{default_realm}'"),
            format!(
                "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS {body};
CREATE OR REPLACE TRIGGER {qtrig} BEFORE INSERT ON {qt}
    FOR EACH ROW WHEN (NEW.{qrc} IS NULL) EXECUTE FUNCTION {func}()",
                body = dollar_quote(&format!(
                    "
BEGIN
    {FILL_MARKER} {rc_comment} belong to the default realm.
    NEW.{qrc} := CAST({lit} AS {realm_type});
    RETURN NEW;
END
",
                    lit = quote_literal(default_realm)
                )),
            ),
        ),
        Some(p) => {
            let (ps, pn) = fk_target(p);
            let qp = qualified(&ps, &pn);
            let update_of = cols(&p.columns);
            (
                format!("install trigger {trigger}: new rows take the realm of their {pn} row"),
                format!(
                    "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS {body};
CREATE OR REPLACE TRIGGER {qtrig} BEFORE INSERT OR UPDATE OF {update_of} ON {qt}
    FOR EACH ROW EXECUTE FUNCTION {func}()",
                    body = dollar_quote(&child_body(p, (rc, prc), realm_type, &qp, &pn)),
                ),
            )
        }
    }
}

/// The PL/pgSQL body of a child's fill function (see `trigger_sql`); every name in it is
/// quoted, and the comment line carries none that could end it.
fn child_body(
    p: &Constraint,
    (rc, prc): (&str, &str),
    realm_type: &str,
    qp: &str,
    pn: &str,
) -> String {
    let qrc = quote_ident(rc);
    let qprc = quote_ident(prc);
    let rc_comment = comment_text(rc);
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
    format!(
        "
DECLARE
    parents bigint;
    realms bigint;
    found {realm_type};
BEGIN
    {FILL_MARKER} {rc_comment} take their parent's realm.
    IF NEW.{qrc} IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.{qrc} IS DISTINCT FROM OLD.{qrc}) THEN
        RETURN NEW;  -- the writer chose the realm itself
    END IF;
    IF {new_null} THEN
        RAISE EXCEPTION 'realmguard: cannot derive %.% for a row whose % is NULL', TG_TABLE_NAME, {rc_lit}, {cols_lit}
            USING ERRCODE = 'not_null_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.{qrc} IS NOT NULL
       AND EXISTS (SELECT 1 FROM {qp} p WHERE {matches} AND p.{qprc} = OLD.{qrc}) THEN
        NEW.{qrc} := OLD.{qrc};  -- same realm as before, the parent is there
        RETURN NEW;
    END IF;
    SELECT count(*), count(DISTINCT p.{qprc}), (array_agg(p.{qprc}) FILTER (WHERE p.{qprc} IS NOT NULL))[1]
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
",
        rc_lit = quote_literal(rc),
        cols_lit = quote_literal(&col_list),
        fk_lit = quote_literal(&p.name),
        pn_lit = quote_literal(pn),
    )
}
