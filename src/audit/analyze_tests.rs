//! The binding rules on the project's own schema (migrations/): each rule with a violating query
//! and its near misses.

use super::super::schema::{apply_text, RealmSchema};
use crate::config::Config;
use crate::lint::model;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fn schema_with(extra: &str, cfg: &Config) -> RealmSchema {
    let mut m = model::Schema::default();
    for text in [
        include_str!("../../migrations/0001_realms.sql"),
        include_str!("../../migrations/0002_users.sql"),
        include_str!("../../migrations/0003_groups.sql"),
        include_str!("../../migrations/0004_memberships.sql"),
        include_str!("../../migrations/0005_policy_statements.sql"),
        extra,
    ] {
        apply_text(&mut m, text);
    }
    RealmSchema::from_model(&m, cfg)
}

fn findings_with(sql: &str, extra: &str, cfg: &Config) -> Vec<super::rules::Raw> {
    let schema = schema_with(extra, cfg);
    let sql = crate::audit::sources::rewrite_placeholders(sql);
    let stmts = Parser::parse_sql(&PostgreSqlDialect {}, &sql).unwrap();
    stmts
        .iter()
        .flat_map(|s| super::statement(&schema, &cfg.realm_setting, s).findings)
        .collect()
}

/// `rule table` of each finding.
fn found(sql: &str) -> Vec<String> {
    findings_with(sql, "", &Config::default())
        .into_iter()
        .map(|f| {
            if f.alias.is_empty() {
                format!("{} {}", f.rule, f.table)
            } else {
                format!("{} {} {}", f.rule, f.table, f.alias)
            }
        })
        .collect()
}

fn clean(sql: &str) {
    assert_eq!(found(sql), Vec::<String>::new(), "{sql}");
}

#[test]
fn a_lookup_without_the_realm_is_reported_and_with_it_is_clean() {
    assert_eq!(
        found("SELECT * FROM groups WHERE id = $1"),
        vec!["query-missing-realm-filter groups"]
    );
    clean("SELECT * FROM groups WHERE id = $1 AND realm_id = $2");
    clean("SELECT * FROM groups WHERE realm_id = $2 AND id = $1");
    clean("SELECT * FROM groups WHERE $1 = realm_id");
    clean("SELECT * FROM groups WHERE realm_id IS NOT DISTINCT FROM $1");
    clean("SELECT * FROM groups WHERE realm_id = 'hub'");
    clean("SELECT * FROM groups WHERE realm_id = $1::text");
    clean("SELECT * FROM groups WHERE (id = $1 AND (realm_id = current_setting('app.realm_id')))");
}

#[test]
fn a_binding_under_or_binds_nothing() {
    assert_eq!(
        found("SELECT * FROM groups WHERE realm_id = $1 OR id = $2"),
        vec!["query-missing-realm-filter groups"]
    );
    assert_eq!(
        found("SELECT * FROM groups WHERE NOT (realm_id <> $1)"),
        vec!["query-missing-realm-filter groups"]
    );
    // A comparison with a column of the same row, or a call over columns, is no realm value.
    assert_eq!(
        found("SELECT * FROM groups WHERE realm_id = lower(name)"),
        vec!["query-missing-realm-filter groups"]
    );
}

#[test]
fn the_classic_join_on_id_only_is_a_join_without_realm() {
    let sql =
        "SELECT g.name FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.realm_id = $1";
    let f = findings_with(sql, "", &Config::default());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].rule, f[0].table.as_str(), f[0].alias.as_str()),
        ("join-without-realm", "groups", "g")
    );
    assert_eq!(f[0].help, "add `AND g.realm_id = m.realm_id` to the join");
    assert_eq!((f[0].span.start.line, f[0].span.start.column), (1, 39));
    clean("SELECT g.name FROM memberships m JOIN groups g ON g.id = m.group_id AND g.realm_id = m.realm_id WHERE m.realm_id = $1");
    // The join condition in WHERE (a comma join) is judged the same way.
    assert_eq!(
        found("SELECT g.name FROM memberships m, groups g WHERE g.id = m.group_id AND m.realm_id = $1"),
        vec!["join-without-realm groups g"]
    );
    clean("SELECT 1 FROM memberships m JOIN groups g USING (realm_id) WHERE m.realm_id = $1 AND g.id = m.group_id");
    assert_eq!(
        found("SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.realm_id = $1"),
        vec!["join-without-realm users u"]
    );
}

#[test]
fn an_inner_join_binds_both_sides_a_left_join_only_the_joined_one() {
    clean("SELECT 1 FROM memberships m JOIN groups g ON g.realm_id = m.realm_id AND g.id = m.group_id WHERE g.realm_id = $1");
    clean("SELECT 1 FROM users u LEFT JOIN memberships m ON m.user_id = u.id AND m.realm_id = u.realm_id WHERE u.realm_id = $1");
    assert_eq!(
        found("SELECT 1 FROM users u LEFT JOIN memberships m ON m.user_id = u.id AND m.realm_id = $1 AND u.realm_id = $1"),
        vec!["query-missing-realm-filter users u"]
    );
}

#[test]
fn a_join_of_five_realm_tables_bound_through_each_other() {
    clean(
        "SELECT s.id FROM membership_statements s
         JOIN memberships m ON m.id = s.membership_id AND m.realm_id = s.realm_id
         JOIN users u ON u.id = m.user_id AND u.realm_id = m.realm_id
         JOIN groups g ON g.id = m.group_id AND g.realm_id = m.realm_id
         JOIN policy_statement_types t ON t.id = s.statement_type_id AND t.realm_id = s.realm_id
         WHERE s.realm_id = $1",
    );
    // Two references bound only to each other are bound to no realm.
    assert_eq!(
        found("SELECT 1 FROM memberships m JOIN groups g ON g.realm_id = m.realm_id AND g.id = m.group_id"),
        vec!["query-missing-realm-filter memberships m", "query-missing-realm-filter groups g"]
    );
}

#[test]
fn an_unqualified_column_belongs_to_the_one_table_that_has_it() {
    clean("SELECT * FROM memberships m JOIN realms r ON r.id = m.realm_id WHERE realm_id = $1");
    // Ambiguous between two realm tables: PostgreSQL refuses it, and it binds nothing.
    assert_eq!(
        found("SELECT 1 FROM memberships m JOIN groups g ON g.id = m.group_id AND g.realm_id = m.realm_id WHERE realm_id = $1"),
        vec!["query-missing-realm-filter memberships m", "query-missing-realm-filter groups g"]
    );
}

#[test]
fn schema_qualified_names_and_aliases() {
    clean("SELECT * FROM public.groups WHERE public.groups.realm_id = $1");
    clean("SELECT * FROM public.groups WHERE groups.realm_id = $1");
    clean("SELECT * FROM public.groups AS x WHERE x.realm_id = $1");
    assert_eq!(
        found("SELECT * FROM public.groups x WHERE groups.realm_id = $1"),
        vec!["query-missing-realm-filter groups x"]
    );
}

#[test]
fn quoted_camel_case_names_as_prisma_writes_them() {
    let cfg = Config::parse("realm_column = \"realmId\"").unwrap();
    let extra = r#"CREATE TABLE "Group" (id text, "realmId" text NOT NULL, name text, PRIMARY KEY (id, "realmId"));"#;
    let q = r#"SELECT "public"."Group"."id", "public"."Group"."name" FROM "public"."Group" WHERE ("public"."Group"."realmId" = $1 AND "public"."Group"."id" = $2) LIMIT $3 OFFSET $4"#;
    assert!(findings_with(q, extra, &cfg).is_empty());
    let q = r#"SELECT "public"."Group"."id" FROM "public"."Group" WHERE "public"."Group"."id" = $1 LIMIT $2"#;
    let f = findings_with(q, extra, &cfg);
    assert_eq!((f.len(), f[0].rule), (1, "query-missing-realm-filter"));
    assert!(f[0].help.contains(r#""Group"."realmId""#), "{}", f[0].help);
    // Unquoted realmid is another column.
    let q = r#"SELECT * FROM "Group" WHERE realmId = $1"#;
    assert_eq!(findings_with(q, extra, &cfg).len(), 1);
}

#[test]
fn each_subquery_is_its_own_level() {
    // Bound in the subquery, not in the outer level.
    assert_eq!(
        found("SELECT * FROM groups g WHERE g.id IN (SELECT group_id FROM memberships WHERE realm_id = $1)"),
        vec!["query-missing-realm-filter groups g"]
    );
    // Bound outside, not in the subquery.
    assert_eq!(
        found("SELECT * FROM groups g WHERE g.realm_id = $1 AND g.id IN (SELECT group_id FROM memberships WHERE user_id = $2)"),
        vec!["query-missing-realm-filter memberships"]
    );
    // A correlated subquery may bind to the bound outer reference (it is a parameter there).
    clean("SELECT * FROM users u WHERE u.realm_id = $1 AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.realm_id = u.realm_id)");
    assert_eq!(
        found("SELECT * FROM users u WHERE u.realm_id = $1 AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id)"),
        vec!["query-missing-realm-filter memberships m"]
    );
    // A scalar subquery in the projection.
    assert_eq!(
        found("SELECT g.name, (SELECT count(*) FROM memberships m WHERE m.group_id = g.id) FROM groups g WHERE g.realm_id = $1"),
        vec!["query-missing-realm-filter memberships m"]
    );
}

#[test]
fn a_bound_scalar_subquery_is_a_realm_value() {
    clean("SELECT * FROM groups WHERE realm_id = (SELECT realm_id FROM users WHERE id = $1 AND realm_id = $2)");
    clean("SELECT * FROM groups WHERE realm_id = (SELECT id FROM realms WHERE name = $1)");
    assert_eq!(
        found("SELECT * FROM groups WHERE realm_id = (SELECT realm_id FROM users WHERE id = $1)"),
        vec![
            "query-missing-realm-filter groups",
            "query-missing-realm-filter users"
        ]
    );
}

#[test]
fn in_and_any_bind_as_multi_realm() {
    assert_eq!(
        found("SELECT * FROM groups WHERE realm_id IN ($1, $2)"),
        vec!["query-multi-realm groups"]
    );
    assert_eq!(
        found("SELECT * FROM groups WHERE realm_id = ANY($1)"),
        vec!["query-multi-realm groups"]
    );
    assert_eq!(
        found(
            "SELECT * FROM groups WHERE realm_id IN (SELECT id FROM realms WHERE kind = 'worker')"
        ),
        vec!["query-multi-realm groups"]
    );
    // A single binding wins; a join through a multi-realm reference is multi-realm too.
    clean("SELECT * FROM groups WHERE realm_id IN ($1, $2) AND realm_id = $3");
    assert_eq!(
        found("SELECT 1 FROM memberships m JOIN groups g ON g.id = m.group_id AND g.realm_id = m.realm_id WHERE m.realm_id = ANY($1)"),
        vec!["query-multi-realm memberships m", "query-multi-realm groups g"]
    );
    assert_eq!(
        found("SELECT * FROM groups WHERE realm_id NOT IN ($1)"),
        vec!["query-missing-realm-filter groups"]
    );
}

#[test]
fn ctes_and_union_branches() {
    clean("WITH mine AS (SELECT * FROM groups WHERE realm_id = $1) SELECT * FROM mine JOIN memberships m ON m.group_id = mine.id AND m.realm_id = mine.realm_id");
    assert_eq!(
        found("WITH g AS (SELECT * FROM groups) SELECT * FROM g WHERE g.realm_id = $1"),
        vec!["query-missing-realm-filter groups"]
    );
    assert_eq!(
        found("SELECT id FROM groups WHERE realm_id = $1 UNION ALL SELECT id FROM users WHERE email = $2"),
        vec!["query-missing-realm-filter users"]
    );
    // A CTE named like a table shadows it.
    clean("WITH groups AS (SELECT 1 AS id) SELECT * FROM groups");
    clean("WITH RECURSIVE tree AS (SELECT id, parent_id FROM groups WHERE realm_id = $1 AND id = $2 UNION ALL SELECT g.id, g.parent_id FROM groups g JOIN tree t ON g.parent_id = t.id WHERE g.realm_id = $1) SELECT * FROM tree");
}

#[test]
fn lateral_subqueries_see_the_references_before_them() {
    clean("SELECT u.id, c.n FROM users u, LATERAL (SELECT count(*) AS n FROM memberships m WHERE m.user_id = u.id AND m.realm_id = u.realm_id) c WHERE u.realm_id = $1");
    assert_eq!(
        found("SELECT u.id, c.n FROM users u CROSS JOIN LATERAL (SELECT count(*) AS n FROM memberships m WHERE m.user_id = u.id) c WHERE u.realm_id = $1"),
        vec!["query-missing-realm-filter memberships m"]
    );
}

#[test]
fn update_from_and_delete_using() {
    assert_eq!(
        found("UPDATE memberships m SET group_id = g.id FROM groups g WHERE g.name = $1 AND m.id = $2 AND m.realm_id = $3"),
        vec!["query-missing-realm-filter groups g"]
    );
    clean("UPDATE memberships m SET group_id = g.id FROM groups g WHERE g.name = $1 AND g.realm_id = m.realm_id AND m.id = $2 AND m.realm_id = $3");
    assert_eq!(
        found(
            "DELETE FROM memberships m USING groups g WHERE m.group_id = g.id AND g.realm_id = $1"
        ),
        vec!["join-without-realm memberships m"]
    );
    clean("DELETE FROM memberships WHERE id = $1 AND realm_id = $2");
    assert_eq!(
        found("UPDATE users SET display_name = $1 WHERE id = $2"),
        vec!["query-missing-realm-filter users"]
    );
}

#[test]
fn inserts_name_the_realm_column_and_read_bound_rows() {
    assert_eq!(
        found("INSERT INTO groups (name) VALUES ($1)"),
        vec!["insert-without-realm groups"]
    );
    assert_eq!(
        found("INSERT INTO groups VALUES ($1, $2, $3)"),
        vec!["insert-without-realm groups"]
    );
    clean("INSERT INTO groups (realm_id, name) VALUES ($1, $2) RETURNING id");
    assert_eq!(
        found("INSERT INTO memberships (realm_id, user_id, group_id) SELECT $1, u.id, $2 FROM users u WHERE u.email = $3"),
        vec!["insert-without-realm users u"]
    );
    clean("INSERT INTO memberships (realm_id, user_id, group_id) SELECT u.realm_id, u.id, $2 FROM users u WHERE u.email = $3 AND u.realm_id = $1");
    clean("INSERT INTO realms (id, name) VALUES ($1, $2)");
}

#[test]
fn on_conflict_and_realm_column_updates() {
    clean("INSERT INTO users (realm_id, email) VALUES ($1, $2) ON CONFLICT (realm_id, email) DO UPDATE SET display_name = EXCLUDED.display_name, realm_id = EXCLUDED.realm_id");
    assert_eq!(
        found("INSERT INTO users (realm_id, email) VALUES ($1, $2) ON CONFLICT (realm_id, email) DO UPDATE SET realm_id = $3"),
        vec!["realm-column-updated users"]
    );
    assert_eq!(
        found("UPDATE groups SET realm_id = $1 WHERE id = $2 AND realm_id = $3"),
        vec!["realm-column-updated groups"]
    );
}

#[test]
fn session_wide_realm_settings() {
    assert_eq!(
        found("SET app.realm_id = 'hub'"),
        vec!["session-realm-setting "]
    );
    assert_eq!(
        found("SET SESSION app.realm_id TO 'hub'"),
        vec!["session-realm-setting "]
    );
    clean("SET LOCAL app.realm_id = 'hub'");
    clean("SET search_path = app");
    assert_eq!(
        found("SELECT set_config('app.realm_id', $1, false)"),
        vec!["session-realm-setting "]
    );
    clean("SELECT set_config('app.realm_id', $1, true)");
}

#[test]
fn unknown_tables_and_dynamic_sql_are_opaque() {
    assert_eq!(
        found("SELECT * FROM group_view WHERE id = $1"),
        vec!["query-opaque group_view"]
    );
    clean("SELECT * FROM pg_catalog.pg_class");
    clean("SELECT * FROM generate_series(1, 3) g");
    assert_eq!(found("EXECUTE get_group (1)"), vec!["query-opaque "]);
}

#[test]
fn sqlc_placeholders_are_parameters() {
    clean("SELECT * FROM groups WHERE id = @id AND realm_id = @realm_id");
    clean("SELECT * FROM groups WHERE id = sqlc.arg(id) AND realm_id = sqlc.arg(realm_id)");
    assert_eq!(
        found("SELECT * FROM groups WHERE realm_id IN (sqlc.slice(realms))"),
        vec!["query-multi-realm groups"]
    );
}

#[test]
fn non_realm_tables_never_produce_findings() {
    clean("SELECT * FROM realms");
    clean("DELETE FROM realms WHERE id = $1");
    clean("UPDATE realms SET name = $1");
    clean("CREATE TABLE x (id int)");
    clean("BEGIN");
}
