//! The planner's ordering and naming rules, on catalogs built by hand.

use super::keys::{free_index_name, per_realm_index_sql};
use super::*;
use crate::backfill::view::{Column, ConstraintKind, Index, Realms};
use crate::catalog::Trigger;
use crate::names::object_name;
use std::collections::BTreeSet;

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
        .position(|s| s.table == table && (s.title.contains(needle) || s.sql().contains(needle)))
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
fn a_column_key_with_more_than_its_columns_is_rebuilt_from_its_definition() {
    let mut cat = legacy();
    let g = &mut cat.tables[0];
    g.columns.push(col("code", "text", true));
    g.indexes.push(Index {
        name: "groups_code".into(),
        unique: true,
        primary: false,
        valid: true,
        partial: false,
        definition: Some(
            "CREATE UNIQUE INDEX groups_code ON public.groups USING btree (code) NULLS NOT DISTINCT"
                .into(),
        ),
        tablespace: None,
        columns: vec!["code".into()],
    });
    let p = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap();
    position(
        &p,
        "groups",
        "CREATE UNIQUE INDEX CONCURRENTLY groups_code_realm_id ON public.groups USING btree (code, realm_id) NULLS NOT DISTINCT",
    );
    // Its definition plain, it is built from its columns as before.
    cat.tables[0].indexes.last_mut().unwrap().definition =
        Some("CREATE UNIQUE INDEX groups_code ON public.groups USING btree (code)".into());
    let p = plan(&cat, &cfg("realm_scoped = [\"groups\"]")).unwrap();
    position(
        &p,
        "groups",
        "CREATE UNIQUE INDEX CONCURRENTLY groups_code_realm_id_key ON public.groups (code, realm_id)",
    );
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

mod partitioned;
