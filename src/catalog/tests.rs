use super::read::realms_from;
use super::*;

#[test]
fn full_form_drops_only_the_scope_filter() {
    for sql in [TABLES_SQL, CONSTRAINTS_SQL, INDEXES_SQL] {
        let scope_lines = sql.lines().filter(|l| l.trim_end().ends_with("-- scope"));
        assert_eq!(scope_lines.count(), 1);
        let full = full_form(sql);
        assert!(!full.lines().any(|l| l.trim_end().ends_with("-- scope")));
        assert!(full.contains("$1::oid[] IS NULL"));
        let scoped_only = sql.matches(SCOPED_READ_ONLY).count();
        assert_eq!(full.lines().count(), sql.lines().count() - scoped_only);
        assert!(!full.contains(SCOPED_READ_ONLY));
    }
}

#[test]
fn the_scoped_statement_splices_every_part_and_keeps_no_oid_array_parameter() {
    let sql = scoped_statement();
    for part in [
        "{realms}",
        "{touched}",
        "{named}",
        "{tables}",
        "{constraints}",
        "{indexes}",
        "{index_defs}",
    ] {
        assert!(SCOPED_SQL.contains(part), "{part}");
        assert!(!sql.contains(part), "{part}");
    }
    assert!(!sql.contains("$1::oid[]"));
    // Each file's filter now reads an earlier part: three on the scope, one on `wanted`.
    assert_eq!(
        sql.matches("= ANY (ARRAY(SELECT oid FROM scope))").count(),
        3
    );
    assert_eq!(
        sql.matches("= ANY (ARRAY(SELECT oid FROM wanted))").count(),
        1
    );
    // Only the read of tables given by name looks them up by name; the guard's does not.
    assert!(sql.contains("unnest($3::text[], $4::text[])"));
    assert!(!guard_prepare_sql("realms").contains("unnest('{}'::text[]"));
    assert!(!guard_prepare_plain_sql("realms").contains("unnest('{}'::text[]"));
    assert!(sql.contains("FROM pg_lock_status") || sql.contains("FROM pg_locks l"));
    // Lines only the full read needs are left out, and each part keeps one name column.
    assert!(!sql.contains(FULL_READ_ONLY) && sql.contains(SCOPED_READ_ONLY));
    assert_eq!(full_form(INDEXES_SQL).matches(" AS name").count(), 1);
}

#[test]
fn realms_resolve_to_found_missing_or_disabled() {
    assert_eq!(
        realms_from("", Some(1), None, None).0,
        RealmsTable::Disabled
    );
    assert_eq!(
        realms_from("app.realms", Some(7), Some("text".into()), None),
        (RealmsTable::Found(7), Some("text".into()))
    );
    assert_eq!(
        realms_from("realms", None, None, Some("app".into())).0,
        RealmsTable::Missing {
            schema: "app".into(),
            name: "realms".into()
        }
    );
}

#[test]
fn int2vector_text_parses() {
    assert_eq!(int2vector("1 0 3"), vec![1, 0, 3]);
    assert_eq!(int2vector(""), Vec::<AttNum>::new());
}

#[test]
fn qualified_names_split_at_the_first_dot() {
    assert_eq!(split_qualified("realms"), (None, "realms"));
    assert_eq!(split_qualified("app.realms"), (Some("app"), "realms"));
    assert_eq!(split_qualified("app.my.realms"), (Some("app"), "my.realms"));
}

#[test]
fn the_guard_statement_is_prepared_without_parameters() {
    let sql = guard_prepare_plain_sql("app.realms");
    // Every parameter written in as a literal: no `$n` left (the statements hold no dollar
    // quotes), so PostgreSQL runs it on the one generic plan made at the priming EXECUTE.
    let prepare = &sql[sql.find("PREPARE").unwrap()..sql.find(GUARD_EXECUTE_SQL).unwrap()];
    assert!(!prepare.contains('$'), "{prepare}");
    assert!(prepare.starts_with("PREPARE realmguard_guard AS\n"));
    assert!(prepare.contains("ELSE n.nspname = 'app'::text END"));
    assert!(prepare.contains("WHERE true::bool"));
    assert!(sql.starts_with("BEGIN;\nSET LOCAL enable_seqscan = off;\n"));
    assert!(sql.ends_with(&format!("{GUARD_EXECUTE_SQL};\nCOMMIT")));
    // No realms table: the name is NULL, and the default schema still comes back.
    assert!(guard_prepare_plain_sql("").contains("WHERE c.relname = NULL::text"));
}

#[test]
fn the_guard_function_reads_the_scope_only_of_changed_tables() {
    let sql = guard_prepare_sql("app.realms");
    let body = &sql[sql.find("AS $realmguard$").unwrap()..sql.find("END\n$realmguard$").unwrap()];
    // The only dollar signs are the body's quotes: the arguments are literals, the changed
    // tables the function's own variables.
    assert_eq!(body.matches('$').count(), 2, "{body}");
    assert!(body.contains("ELSE n.nspname = 'app'::text END"));
    // The lock read runs once, before the early return; the scoped read takes its answer.
    // (Its own locks: the index definitions' part reads the others', to skip busy tables.)
    let own = "l.pid = pg_backend_pid()";
    assert_eq!(body.matches(own).count(), 1);
    let early = body
        .find("IF rg_oids IS NULL THEN RETURN NEXT; RETURN; END IF;")
        .unwrap();
    assert!(body.find(own).unwrap() < early);
    assert!(body[early..].contains(GUARD_TOUCHED));
    // The index definitions: read by a statement of their own, only when some are wanted.
    let defs = body.find("IF cardinality(rg_wanted) > 0 THEN").unwrap();
    assert_eq!(body.matches("pg_get_indexdef").count(), 1);
    assert!(body.find("pg_get_indexdef").unwrap() > defs);
    assert!(body[early..defs].contains(NO_DEFS_SQL));
    assert!(sql.contains("SET enable_seqscan = off SET plan_cache_mode = force_generic_plan"));
    assert!(sql.ends_with(&format!(
        "PREPARE realmguard_guard AS SELECT * FROM pg_temp.realmguard_guard();\n{GUARD_EXECUTE_SQL};\nCOMMIT"
    )));
}

#[test]
fn literals_are_bound_in_one_pass() {
    assert_eq!(
        bind_literals(
            "-- $1 is\nSELECT $1::text, $2, $x, $10, $\n",
            &["'$2'", "b"]
        ),
        "SELECT '$2'::text, b, $x, $10, $\n"
    );
}
