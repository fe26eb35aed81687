//! verify against real catalogs: each rule violated and nearly violated, awkward names, partitions,
//! the read-only role, the scoped form the migrate guard uses, the output formats, and the
//! project's own migrations.

use crate::common::{project_dir, TempDir, TestDb};
use realmguard::config::Config;
use realmguard::rules::Severity;
use realmguard::verify::{self, Report, Violation};

/// The realms table every schema below hangs off.
const REALMS: &str = "CREATE TABLE realms (id text PRIMARY KEY, name text NOT NULL);";

/// A realm-safe table `name` with an `id`, the realm column and a realm foreign key, plus `extra`
/// column definitions.
fn good(name: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE {name} (id bigint NOT NULL, realm_id text NOT NULL REFERENCES realms (id) ON DELETE CASCADE{extra}, PRIMARY KEY (id, realm_id));"
    )
}

async fn db_with(tag: &str, sql: &str) -> TestDb {
    let db = TestDb::new(tag).await;
    db.exec(REALMS).await;
    db.exec(sql).await;
    db
}

async fn run_verify(db: &TestDb, cfg: &Config) -> Report {
    let mut c = db.conn().await;
    verify::verify(&mut c, cfg).await.expect("verify")
}

async fn violations(db: &TestDb) -> Vec<Violation> {
    run_verify(db, &Config::default()).await.violations
}

/// (rule, schema.table, constraint) of every violation.
fn brief(vs: &[Violation]) -> Vec<(String, String, Option<String>)> {
    vs.iter()
        .map(|v| {
            (
                v.rule.clone(),
                format!("{}.{}", v.schema, v.table),
                v.constraint.clone(),
            )
        })
        .collect()
}

fn of<'a>(vs: &'a [Violation], rule: &str) -> Vec<&'a Violation> {
    vs.iter().filter(|v| v.rule == rule).collect()
}

/// Run every fix, statement by statement (CONCURRENTLY cannot run inside a transaction block).
async fn apply_fixes(db: &TestDb, vs: &[Violation]) {
    let mut c = db.conn().await;
    for v in verify::fixes_in_repair_order(vs) {
        let Some(fix) = &v.fix else { continue };
        for stmt in fix.split(";\n") {
            let sql: String = stmt
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            if sql.trim().is_empty() {
                continue;
            }
            sqlx::raw_sql(&sql)
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("fix for {} failed: {e}\n{sql}", v.rule));
        }
    }
}

#[tokio::test]
async fn realm_column_missing_only_for_listed_tables() {
    let db = db_with(
        "v_rcm",
        "CREATE TABLE legacy (id bigint PRIMARY KEY); CREATE TABLE lookup (id bigint PRIMARY KEY);",
    )
    .await;
    let cfg = Config::parse("realm_scoped = [\"public.legacy\"]").unwrap();
    let r = run_verify(&db, &cfg).await;
    assert_eq!(
        brief(&r.violations),
        [("realm-column-missing".into(), "public.legacy".into(), None)]
    );
    assert_eq!(r.summary.realm_scoped, 1);
    apply_fixes(&db, &r.violations).await;
    assert_eq!(
        db.scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'legacy'::regclass AND attname = 'realm_id'").await,
        "text"
    );
    // Near miss: nothing listed, so neither table is realm-scoped.
    assert!(violations(&db).await.iter().all(|v| v.table != "lookup"));
}

#[tokio::test]
async fn realm_column_nullable_and_its_fix() {
    let db = db_with(
        "v_rcn",
        "CREATE TABLE a (id bigint, realm_id text REFERENCES realms ON DELETE CASCADE, PRIMARY KEY (id, realm_id));
         CREATE TABLE b (id bigint, realm_id text, PRIMARY KEY (id, realm_id));
         ALTER TABLE b ADD FOREIGN KEY (realm_id) REFERENCES realms ON DELETE CASCADE;",
    )
    .await;
    // a's key makes realm_id NOT NULL implicitly, so make one really nullable.
    db.exec("CREATE TABLE c (id bigint PRIMARY KEY, realm_id text REFERENCES realms ON DELETE CASCADE);").await;
    let vs = violations(&db).await;
    let n = of(&vs, "realm-column-nullable");
    assert_eq!(n.len(), 1, "{vs:#?}");
    assert_eq!(n[0].table, "c");
    apply_fixes(&db, &n.iter().map(|v| (*v).clone()).collect::<Vec<_>>()).await;
    assert!(of(&violations(&db).await, "realm-column-nullable").is_empty());
}

/// PostgreSQL 18 can add NOT NULL as NOT VALID, and then sets `attnotnull` although old rows may
/// still be NULL: verify must not take that for a NOT NULL column. (Run on 18 by
/// scripts/test-pg-versions.sh; older servers have no such constraint.)
#[tokio::test]
async fn a_not_valid_not_null_leaves_the_realm_column_nullable() {
    let db = db_with(
        "v_nvnn",
        "CREATE TABLE c (id bigint PRIMARY KEY, realm_id text REFERENCES realms ON DELETE CASCADE);",
    )
    .await;
    if db.server_version().await < 180000 {
        eprintln!("skipped: NOT VALID not-null constraints need PostgreSQL 18");
        return;
    }
    db.exec(
        "INSERT INTO c VALUES (1, NULL);
         ALTER TABLE c ADD CONSTRAINT c_realm_nn NOT NULL realm_id NOT VALID;",
    )
    .await;
    assert_eq!(
        db.scalar("SELECT attnotnull::text FROM pg_attribute WHERE attrelid = 'c'::regclass AND attname = 'realm_id'").await,
        "true",
        "the server marks the column NOT NULL"
    );
    let n = of(&violations(&db).await, "realm-column-nullable")
        .iter()
        .map(|v| v.table.clone())
        .collect::<Vec<_>>();
    assert_eq!(n, ["c"]);
    // Once validated, it is a NOT NULL like any other.
    db.exec(
        "INSERT INTO realms VALUES ('hub', 'Hub');
         UPDATE c SET realm_id = 'hub';
         ALTER TABLE c VALIDATE CONSTRAINT c_realm_nn;",
    )
    .await;
    assert!(of(&violations(&db).await, "realm-column-nullable").is_empty());
}

#[tokio::test]
async fn composite_primary_key_variants() {
    let db = db_with(
        "v_cpk",
        &[
            "CREATE TABLE id_only (id bigint PRIMARY KEY, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE);",
            "CREATE TABLE no_key (id bigint NOT NULL, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE);",
            "CREATE TABLE too_wide (id bigint, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, v int, PRIMARY KEY (id, realm_id, v));",
            // near misses: reversed order; a table without id keyed on something plus realm
            "CREATE TABLE reversed (id bigint, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, PRIMARY KEY (realm_id, id));",
            "CREATE TABLE settings (realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, key text, PRIMARY KEY (key, realm_id));",
        ]
        .join("\n"),
    )
    .await;
    let vs = violations(&db).await;
    let mut tables: Vec<&str> = of(&vs, "composite-primary-key")
        .iter()
        .map(|v| v.table.as_str())
        .collect();
    tables.sort();
    assert_eq!(tables, ["id_only", "no_key", "too_wide"], "{vs:#?}");
    apply_fixes(&db, &vs).await;
    let after = violations(&db).await;
    assert!(of(&after, "composite-primary-key").is_empty(), "{after:#?}");
    assert_eq!(
        db.scalar("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'id_only'::regclass AND contype = 'p'").await,
        "PRIMARY KEY (id, realm_id)"
    );
}

#[tokio::test]
async fn unique_without_realm_including_partial_and_expression_indexes() {
    let db = db_with(
        "v_uwr",
        &[
            good("users", ", email text, deleted boolean, code text"),
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED;".into(),
            "CREATE UNIQUE INDEX users_lower_email ON users (lower(email)) WHERE NOT deleted;".into(),
            // near misses: realm column included, in any position, also partial/expression
            "ALTER TABLE users ADD CONSTRAINT users_code_key UNIQUE (realm_id, code);".into(),
            "CREATE UNIQUE INDEX users_lower_code ON users (lower(code), realm_id) WHERE NOT deleted;".into(),
            "CREATE INDEX users_email_idx ON users (email);".into(),
        ]
        .join("\n"),
    )
    .await;
    let vs = violations(&db).await;
    let mut names: Vec<&str> = of(&vs, "unique-without-realm")
        .iter()
        .map(|v| v.constraint.as_deref().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["users_email_key", "users_lower_email"]);
    // The scoped read (one statement answering JSON) finds the same, fixes included (the
    // expression index's is written from its definition text); so does the migrate guard's read
    // of what the current transaction changed.
    let mut c = db.conn().await;
    let users = [("public".to_string(), "users".to_string())];
    let scoped = verify::verify_tables(&mut c, &Config::default(), &users)
        .await
        .unwrap();
    assert_eq!(scoped.violations, vs);
    assert_eq!(scoped.queries, 1);
    sqlx::raw_sql("BEGIN; COMMENT ON TABLE users IS 'touched'")
        .execute(&mut c)
        .await
        .unwrap();
    let (touched, changed) = verify::verify_changed(&mut c, &Config::default())
        .await
        .unwrap();
    // The guard plans its read without sequential scans, and sets that back for the rest of the
    // migration's transaction.
    let seqscan: String = sqlx::query_scalar("SHOW enable_seqscan")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(seqscan, "on");
    sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
    assert_eq!(touched, users);
    assert_eq!(changed.violations, vs);
    apply_fixes(&db, &vs).await;
    assert!(of(&violations(&db).await, "unique-without-realm").is_empty());
    assert_eq!(
        db.scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'users_email_key'"
        )
        .await,
        "UNIQUE (email, realm_id) DEFERRABLE INITIALLY DEFERRED",
        "the rebuilt constraint keeps its timing"
    );
    assert_eq!(
        db.scalar("SELECT pg_get_indexdef('users_lower_email_realm'::regclass)").await,
        "CREATE UNIQUE INDEX users_lower_email_realm ON public.users USING btree (lower(email), realm_id) WHERE (NOT deleted)"
    );
}

#[tokio::test]
async fn realm_fk_missing_and_disabled() {
    let db = db_with(
        "v_rfm",
        "CREATE TABLE loose (id bigint, realm_id text NOT NULL, PRIMARY KEY (id, realm_id));",
    )
    .await;
    db.exec(&good("tight", "")).await;
    let vs = violations(&db).await;
    assert_eq!(
        brief(
            &of(&vs, "realm-fk-missing")
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        ),
        [("realm-fk-missing".into(), "public.loose".into(), None)]
    );
    let off = run_verify(&db, &Config::parse("realms_table = \"\"").unwrap()).await;
    assert!(off.violations.is_empty(), "{:#?}", off.violations);
    apply_fixes(&db, &vs).await;
    assert!(violations(&db).await.is_empty());
}

#[tokio::test]
async fn foreign_key_rules_on_composite_keys_in_any_order() {
    let db = db_with(
        "v_fk",
        &[
            good("groups", ", UNIQUE (id)"),
            // fk-missing-realm: references groups (id) only
            good("m1", ", group_id bigint REFERENCES groups (id) ON DELETE CASCADE"),
            // fk-not-cascade: composite, but RESTRICT (and deferrable)
            good("m2", ", group_id bigint, FOREIGN KEY (group_id, realm_id) REFERENCES groups (id, realm_id) ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED"),
            // fk-cross-realm: the realm column mapped is another one
            good("m3", ", group_id bigint, group_realm text NOT NULL, FOREIGN KEY (group_realm, group_id) REFERENCES groups (realm_id, id) ON DELETE CASCADE"),
            "CREATE INDEX ON m1 (group_id); CREATE INDEX ON m2 (realm_id, group_id); CREATE INDEX ON m3 (group_id, group_realm);".into(),
            // near miss for all four: reversed composite key, cascading, indexed by a wider index
            good("ok", ", group_id bigint, FOREIGN KEY (realm_id, group_id) REFERENCES groups (realm_id, id) ON DELETE CASCADE"),
            "CREATE INDEX ok_idx ON ok (group_id, realm_id, id);".into(),
            // fk-unindexed only
            good("m4", ", group_id bigint, FOREIGN KEY (group_id, realm_id) REFERENCES groups (id, realm_id) ON DELETE CASCADE"),
        ]
        .join("\n"),
    )
    .await;
    let vs = violations(&db).await;
    let got: Vec<(String, String)> = vs
        .iter()
        .map(|v| (v.rule.clone(), v.table.clone()))
        .collect();
    let want: Vec<(String, String)> = [
        ("fk-missing-realm", "m1"),
        ("fk-not-cascade", "m2"),
        ("fk-cross-realm", "m3"),
        ("fk-unindexed", "m4"),
        // the UNIQUE (id) that m1's foreign key needs is itself a finding
        ("unique-without-realm", "groups"),
    ]
    .iter()
    .map(|(r, t)| (r.to_string(), t.to_string()))
    .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted, "{vs:#?}");
    // Severities: fk-cross-realm and fk-unindexed are warnings.
    for v in &vs {
        let w = matches!(v.rule.as_str(), "fk-cross-realm" | "fk-unindexed");
        assert_eq!(v.severity == Severity::Warning, w, "{v:?}");
    }
    // One round of fixes converges: m1's new composite key comes with its index.
    apply_fixes(&db, &vs).await;
    let after = violations(&db).await;
    assert_eq!(
        brief(&after),
        [(
            "fk-cross-realm".into(),
            "public.m3".into(),
            Some("m3_group_realm_group_id_fkey".into())
        )],
        "only the warning without a fix is left"
    );
    // m2's swapped key kept its name and its deferrable mode.
    assert_eq!(
        db.scalar("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'm2_group_id_realm_id_fkey'").await,
        "FOREIGN KEY (group_id, realm_id) REFERENCES groups(id, realm_id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED"
    );
}

#[tokio::test]
async fn fk_missing_realm_is_reported_on_tables_that_are_not_realm_scoped() {
    let db = db_with(
        "v_fkany",
        &[
            good("groups", ", UNIQUE (id)"),
            "CREATE TABLE audit (id bigint PRIMARY KEY, group_id bigint REFERENCES groups (id));"
                .into(),
        ]
        .join("\n"),
    )
    .await;
    let vs = violations(&db).await;
    let fk = of(&vs, "fk-missing-realm");
    assert_eq!(
        brief(&fk.iter().map(|v| (*v).clone()).collect::<Vec<_>>()),
        [(
            "fk-missing-realm".into(),
            "public.audit".into(),
            Some("audit_group_id_fkey".into())
        )]
    );
    assert!(fk[0].fix.is_none(), "audit has no realm column to carry");
    // The unique (id) the foreign key hangs on is reported too, naming the key that pins it.
    let u = of(&vs, "unique-without-realm");
    assert_eq!(u.len(), 1);
    assert!(
        u[0].fix
            .as_deref()
            .unwrap()
            .starts_with("-- first move the foreign keys that depend on the old key (fk-missing-realm): audit.audit_group_id_fkey\n"),
        "{:?}",
        u[0].fix
    );
}

#[tokio::test]
async fn not_valid_constraints_and_invalid_indexes() {
    let db = db_with(
        "v_nv",
        &[
            good("groups", ", n int"),
            "INSERT INTO realms VALUES ('hub', 'Hub'); INSERT INTO groups VALUES (1, 'hub', 1), (2, 'hub', 1);".into(),
            "ALTER TABLE groups ADD CONSTRAINT n_positive CHECK (n > 0) NOT VALID;".into(),
            // near miss: a validated check
            "ALTER TABLE groups ADD CONSTRAINT n_small CHECK (n < 100);".into(),
        ]
        .join("\n"),
    )
    .await;
    // A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind.
    let mut c = db.conn().await;
    let err =
        sqlx::raw_sql("CREATE UNIQUE INDEX CONCURRENTLY groups_n_realm ON groups (n, realm_id)")
            .execute(&mut c)
            .await;
    assert!(err.is_err(), "duplicates must make the build fail");
    drop(c);
    let vs = violations(&db).await;
    assert_eq!(
        brief(&vs),
        [
            (
                "constraint-not-validated".into(),
                "public.groups".into(),
                Some("n_positive".into())
            ),
            (
                "invalid-index".into(),
                "public.groups".into(),
                Some("groups_n_realm".into())
            ),
        ]
    );
    db.exec("UPDATE groups SET n = id").await;
    apply_fixes(&db, &vs).await;
    assert!(violations(&db).await.is_empty());
}

#[tokio::test]
async fn realms_table_missing_is_a_warning_and_rls_can_be_turned_on() {
    let db = db_with("v_rtm", &good("groups", "")).await;
    let cfg = Config::parse("realms_table = \"app.tenants\"").unwrap();
    let r = run_verify(&db, &cfg).await;
    assert!(r.ok);
    assert_eq!(
        brief(&r.violations),
        [("realms-table-missing".into(), "app.tenants".into(), None)]
    );
    // A bare name resolves through search_path; realms exists, so no warning.
    assert!(violations(&db).await.is_empty());

    let cfg = Config::parse("[rules]\nrls-disabled = \"error\"").unwrap();
    let r = run_verify(&db, &cfg).await;
    assert_eq!(
        brief(&r.violations),
        [("rls-disabled".into(), "public.groups".into(), None)]
    );
    db.exec("ALTER TABLE groups ENABLE ROW LEVEL SECURITY")
        .await;
    assert!(run_verify(&db, &cfg).await.ok);
}

#[tokio::test]
async fn quoted_mixed_case_and_space_names_in_several_schemas() {
    let db = db_with(
        "v_names",
        r#"CREATE SCHEMA "Billing Dept";
           CREATE SCHEMA app;
           CREATE TABLE "Billing Dept"."Invoices" ("id" bigint PRIMARY KEY, "realm_id" text NOT NULL REFERENCES realms ON DELETE RESTRICT, UNIQUE ("id", "realm_id"));
           CREATE TABLE app."Invoice Lines" (id bigint, realm_id text REFERENCES realms ON DELETE CASCADE, "Invoice Id" bigint REFERENCES "Billing Dept"."Invoices" (id), PRIMARY KEY (id, realm_id));
           CREATE TABLE app."user" (id bigint, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, "E-mail" text UNIQUE, PRIMARY KEY (id, realm_id));"#,
    )
    .await;
    let vs = violations(&db).await;
    let got = brief(&vs);
    let want: Vec<(String, String, Option<String>)> = vec![
        (
            "composite-primary-key".into(),
            "Billing Dept.Invoices".into(),
            Some("Invoices_pkey".into()),
        ),
        (
            "fk-not-cascade".into(),
            "Billing Dept.Invoices".into(),
            Some("Invoices_realm_id_fkey".into()),
        ),
        (
            "fk-missing-realm".into(),
            "app.Invoice Lines".into(),
            Some("Invoice Lines_Invoice Id_fkey".into()),
        ),
        (
            "unique-without-realm".into(),
            "app.user".into(),
            Some("user_E-mail_key".into()),
        ),
    ];
    for w in &want {
        assert!(got.contains(w), "missing {w:?} in {got:#?}");
    }
    // Repeat the fixes until clean: each round's SQL must run as printed, quoting included.
    for _ in 0..3 {
        let vs = violations(&db).await;
        if vs.iter().all(|v| v.fix.is_none()) {
            break;
        }
        apply_fixes(&db, &vs).await;
    }
    let left = violations(&db).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test]
async fn partitioned_tables_are_checked_once_at_the_parent() {
    let db = db_with(
        "v_part",
        &[
            "CREATE TABLE events (id bigint, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, at date NOT NULL, PRIMARY KEY (id, realm_id, at)) PARTITION BY RANGE (at);",
            "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');",
            "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
            "CREATE TABLE bad_events (id bigint, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);",
            "CREATE TABLE bad_events_2025 PARTITION OF bad_events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');",
        ]
        .join("\n"),
    )
    .await;
    let r = run_verify(&db, &Config::default()).await;
    assert_eq!(
        brief(&r.violations),
        [(
            "composite-primary-key".into(),
            "public.bad_events".into(),
            Some("bad_events_pkey".into())
        )]
    );
    assert_eq!(
        r.summary.tables, 3,
        "realms, events, bad_events; partitions are not counted"
    );
    assert_eq!(r.summary.realm_scoped, 2);
    apply_fixes(&db, &r.violations).await;
    assert!(violations(&db).await.is_empty());
}

#[tokio::test]
async fn views_matviews_excluded_tables_and_the_realmguard_schema_are_ignored() {
    let db = db_with(
        "v_ign",
        "CREATE TABLE t (id bigint PRIMARY KEY, realm_id text);
         CREATE VIEW v AS SELECT id, realm_id FROM t;
         CREATE MATERIALIZED VIEW mv AS SELECT id, realm_id FROM t;
         CREATE SCHEMA realmguard;
         CREATE TABLE realmguard.ledger (id bigint PRIMARY KEY, realm_id text);
         CREATE SCHEMA other;
         CREATE TABLE other.t2 (id bigint PRIMARY KEY, realm_id text);",
    )
    .await;
    let cfg = Config::parse("exclude = [\"t\"]\nschemas = [\"public\"]").unwrap();
    let r = run_verify(&db, &cfg).await;
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert_eq!(r.summary.tables, 1, "only realms is checked");
    // Without the exclusions, t and other.t2 are found, and still nothing else.
    let r = run_verify(&db, &Config::default()).await;
    let mut tables: Vec<String> = r
        .violations
        .iter()
        .map(|v| format!("{}.{}", v.schema, v.table))
        .collect();
    tables.dedup();
    assert_eq!(tables, ["other.t2", "public.t"]);
}

#[tokio::test]
async fn a_role_that_reads_no_table_data_gets_the_same_report() {
    let db = db_with(
        "v_ro",
        &[
            good("groups", ", UNIQUE (id), name text UNIQUE"),
            "CREATE UNIQUE INDEX groups_lower_name ON groups (lower(name)) WHERE name IS NOT NULL;"
                .into(),
            good("m", ", group_id bigint REFERENCES groups (id)"),
        ]
        .join("\n"),
    )
    .await;
    let role = format!("ro_{}", db.name.trim_start_matches("rg_"));
    db.exec(&format!(
        "CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw';
         REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;"
    ))
    .await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    url.set_password(Some("pw")).unwrap();
    let mut ro = <sqlx::PgConnection as sqlx::Connection>::connect(url.as_str())
        .await
        .expect("the role can connect");
    let denied = sqlx::raw_sql("SELECT * FROM groups").execute(&mut ro).await;
    assert!(denied.is_err(), "the role must not read table data");
    let as_ro = verify::verify(&mut ro, &Config::default()).await.unwrap();
    let as_owner = violations(&db).await;
    assert!(!as_owner.is_empty());
    assert_eq!(as_ro.violations, as_owner);
    db.exec(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\";"))
        .await;
}

#[tokio::test]
async fn project_migrations_produce_no_error_and_no_warning() {
    let db = TestDb::new("v_proj").await;
    let mut files: Vec<_> = std::fs::read_dir(project_dir().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        db.exec(&std::fs::read_to_string(&f).unwrap()).await;
    }
    let cfg = Config::load(Some(&project_dir().join("schema/realmguard.toml"))).unwrap();
    let r = run_verify(&db, &cfg).await;
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(r.summary.realm_scoped >= 5, "{:?}", r.summary);
    // The same through the binary: exit 0, and the one-line summary.
    let run = db.run(&project_dir(), &["verify"]).await;
    run.expect_code(0);
    assert_eq!(
        run.stdout.trim(),
        realmguard::verify::summary_line(&r),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn queries_do_not_grow_with_the_catalog() {
    let small = db_with("v_q1", &good("g0", "")).await;
    let big = TestDb::new("v_q2").await;
    big.exec(REALMS).await;
    let mut sql = String::new();
    for i in 0..60 {
        sql.push_str(&good(&format!("g{i}"), ", p bigint"));
        if i > 0 {
            sql.push_str(&format!(
                "ALTER TABLE g{i} ADD FOREIGN KEY (p, realm_id) REFERENCES g{} (id, realm_id) ON DELETE CASCADE;",
                i - 1
            ));
        }
    }
    big.exec(&sql).await;
    let a = run_verify(&small, &Config::default()).await;
    let b = run_verify(&big, &Config::default()).await;
    assert_eq!(b.summary.tables, 61);
    assert_eq!(a.queries, b.queries);
    let mut c = big.conn().await;
    let s = verify::verify_tables(
        &mut c,
        &Config::default(),
        &[("public".into(), "g5".into())],
    )
    .await
    .unwrap();
    let s2 = verify::verify_tables(
        &mut c,
        &Config::default(),
        &(0..40)
            .map(|i| ("public".into(), format!("g{i}")))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert_eq!(s.queries, s2.queries);
    assert!(s.queries <= a.queries + 1, "{} vs {}", s.queries, a.queries);
}

#[tokio::test]
async fn scoped_verify_sees_the_neighbours_and_ignores_missing_tables() {
    let db = db_with(
        "v_scope",
        &[
            good("groups", ", UNIQUE (id)"),
            good("members", ", group_id bigint REFERENCES groups (id) ON DELETE CASCADE"),
            "CREATE INDEX ON members (group_id);".into(),
            "CREATE TABLE unrelated (id bigint PRIMARY KEY, realm_id text NOT NULL);".into(),
            "CREATE TABLE parts (id bigint, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);".into(),
            "CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');".into(),
        ]
        .join("\n"),
    )
    .await;
    let cfg = Config::default();
    let mut c = db.conn().await;
    // Touching the parent shows the child's foreign key problem.
    let r = verify::verify_tables(
        &mut c,
        &cfg,
        &[
            ("public".into(), "groups".into()),
            ("public".into(), "no such table".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        brief(&r.violations),
        [
            (
                "unique-without-realm".into(),
                "public.groups".into(),
                Some("groups_id_key".into())
            ),
            (
                "fk-missing-realm".into(),
                "public.members".into(),
                Some("members_group_id_fkey".into())
            )
        ]
    );
    assert_eq!(
        r.summary.tables, 3,
        "groups, members, and realms which groups references"
    );
    // Touching the realms table does not pull in every table that references it.
    let r = verify::verify_tables(&mut c, &cfg, &[("public".into(), "realms".into())])
        .await
        .unwrap();
    assert_eq!(r.summary.tables, 1, "{:?}", r.checked);
    // A partition stands for its parent.
    let r = verify::verify_tables(&mut c, &cfg, &[("public".into(), "parts_1".into())])
        .await
        .unwrap();
    assert_eq!(
        brief(&r.violations),
        [(
            "composite-primary-key".into(),
            "public.parts".into(),
            Some("parts_pkey".into())
        )]
    );
    // Every scoped finding is also a full finding.
    let full = verify::verify(&mut c, &cfg).await.unwrap();
    let r = verify::verify_tables(&mut c, &cfg, &[("public".into(), "unrelated".into())])
        .await
        .unwrap();
    assert!(!r.violations.is_empty());
    for v in &r.violations {
        assert!(full.violations.contains(v), "{v:?}");
        assert_eq!(v.table, "unrelated");
    }
    // Inside a transaction the scoped form sees uncommitted DDL (the migrate guard relies on it).
    sqlx::raw_sql("BEGIN; ALTER TABLE unrelated DROP CONSTRAINT unrelated_pkey;")
        .execute(&mut c)
        .await
        .unwrap();
    let r = verify::verify_tables(&mut c, &cfg, &[("public".into(), "unrelated".into())])
        .await
        .unwrap();
    assert!(r
        .violations
        .iter()
        .any(|v| v.rule == "composite-primary-key" && v.message.contains("no primary key")));
    sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
}

/// The schema behind the output snapshots: one error, one warning, one clean table.
async fn snapshot_db(tag: &str) -> TestDb {
    db_with(
        tag,
        &[
            good("groups", ""),
            good("members", ", group_id bigint, FOREIGN KEY (group_id, realm_id) REFERENCES groups (id, realm_id) ON DELETE CASCADE"),
            "CREATE TABLE \"Audit Log\" (id bigint PRIMARY KEY, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE);".into(),
        ]
        .join("\n"),
    )
    .await
}

#[tokio::test]
async fn json_output_and_exit_code() {
    let db = snapshot_db("v_json").await;
    let dir = TempDir::new("v_json");
    let run = db.run(dir.path(), &["verify", "--format", "json"]).await;
    run.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    insta::assert_json_snapshot!("verify_json", v);
}

#[tokio::test]
async fn junit_output() {
    let db = snapshot_db("v_junit").await;
    let dir = TempDir::new("v_junit");
    let run = db.run(dir.path(), &["verify", "--format", "junit"]).await;
    run.expect_code(1);
    insta::assert_snapshot!("verify_junit", run.stdout);
}

#[tokio::test]
async fn text_output_warnings_only_exit_zero_and_bad_config_exit_two() {
    let db = db_with(
        "v_text",
        &[
            good("groups", ""),
            good("members", ", group_id bigint, FOREIGN KEY (group_id, realm_id) REFERENCES groups (id, realm_id) ON DELETE CASCADE"),
        ]
        .join("\n"),
    )
    .await;
    let dir = TempDir::new("v_text");
    let run = db.run(dir.path(), &["verify"]).await;
    run.expect_code(0);
    insta::assert_snapshot!("verify_text_warning", run.stdout);

    dir.write(&[("bad.toml", "[rules]\nfk-unindexd = \"off\"\n")]);
    db.run(dir.path(), &["verify", "--config", "bad.toml"])
        .await
        .expect_one_line_error();
    dir.write(&[("off.toml", "[rules]\nfk-unindexed = \"off\"\n")]);
    let run = db
        .run(dir.path(), &["verify", "--config", "off.toml"])
        .await;
    run.expect_code(0);
    assert_eq!(
        run.stdout.trim(),
        "verify: 3 tables (2 realm-scoped): 0 errors, 0 warnings"
    );
}

#[tokio::test]
async fn no_connection_is_one_line_and_exit_two() {
    let dir = TempDir::new("v_noconn");
    let out = crate::common::realmguard_cmd(dir.path())
        .env("DATABASE_URL", "postgres://bob:s3cret@127.0.0.1:1/app")
        .args(["verify", "--format", "json"])
        .output()
        .await
        .unwrap();
    let run = crate::common::Run::from(out);
    run.expect_one_line_error();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    run.expect_not_printed("s3cret");
}

#[tokio::test]
async fn a_legacy_schema_with_data_is_repaired_by_one_round_of_fixes() {
    let db = TestDb::new("v_legacy").await;
    db.exec(
        "CREATE TABLE realms (id text PRIMARY KEY);
         INSERT INTO realms VALUES ('hub'), ('w1');
         CREATE TABLE groups (id bigserial PRIMARY KEY, realm_id text REFERENCES realms, name text UNIQUE,
                              parent_id bigint REFERENCES groups (id));
         CREATE TABLE memberships (id bigserial PRIMARY KEY, realm_id text REFERENCES realms,
                                   group_id bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE);
         INSERT INTO groups (realm_id, name, parent_id) VALUES ('hub', 'a', NULL), ('hub', 'b', 1), ('w1', 'c', NULL);
         INSERT INTO memberships (realm_id, group_id) VALUES ('hub', 1), ('hub', 2), ('w1', 3);",
    )
    .await;
    let vs = violations(&db).await;
    let rules: std::collections::BTreeSet<&str> = vs.iter().map(|v| v.rule.as_str()).collect();
    for r in [
        "composite-primary-key",
        "fk-missing-realm",
        "fk-not-cascade",
        "realm-column-nullable",
        "unique-without-realm",
        "fk-unindexed",
    ] {
        assert!(rules.contains(r), "{r} missing from {rules:?}");
    }
    apply_fixes(&db, &vs).await;
    let after = violations(&db).await;
    assert!(after.is_empty(), "{after:#?}");
    assert_eq!(db.count("SELECT * FROM groups").await, 3);
    assert_eq!(db.count("SELECT * FROM memberships").await, 3);
    // Deleting a realm now cascades through the composite keys.
    db.exec("DELETE FROM realms WHERE id = 'w1'").await;
    assert_eq!(db.count("SELECT * FROM groups").await, 2);
    assert_eq!(db.count("SELECT * FROM memberships").await, 2);
    // And the same name may now exist once per realm.
    db.exec("INSERT INTO groups (realm_id, name) VALUES ('hub', 'c')")
        .await;
}

#[tokio::test]
async fn verify_does_not_wait_behind_a_lock_held_on_a_table() {
    let db = db_with(
        "v_lock",
        &[
            good("groups", ", name text UNIQUE"),
            "CREATE UNIQUE INDEX groups_lower_name ON groups (lower(name)) WHERE name <> '';"
                .into(),
        ]
        .join("\n"),
    )
    .await;
    // A migration holding ACCESS EXCLUSIVE on the table whose definitions verify deparses.
    let mut holder = db.conn().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE groups IN ACCESS EXCLUSIVE MODE;")
        .execute(&mut holder)
        .await
        .unwrap();
    let mut c = db.conn().await;
    sqlx::raw_sql("SET lock_timeout = '3s'")
        .execute(&mut c)
        .await
        .unwrap();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        verify::verify(&mut c, &Config::default()),
    )
    .await
    .expect("verify must not queue behind the lock")
    .expect("and must not hit lock_timeout");
    let u = of(&r.violations, "unique-without-realm");
    assert_eq!(u.len(), 2);
    // The plain key's fix is written from column names; the expression key's text could not be
    // read without the lock, so that one goes without a fix rather than waiting.
    let fixed: Vec<&str> = u
        .iter()
        .filter(|v| v.fix.is_some())
        .map(|v| v.constraint.as_deref().unwrap())
        .collect();
    assert_eq!(fixed, ["groups_name_key"]);
    // The scoped form, as the migrate guard runs it on its second connection, does not wait either.
    let s = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        verify::verify_tables(
            &mut c,
            &Config::default(),
            &[("public".into(), "groups".into())],
        ),
    )
    .await
    .expect("scoped verify must not queue behind the lock")
    .unwrap();
    assert_eq!(of(&s.violations, "unique-without-realm").len(), 2);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    // Once the lock is gone, the expression index gets its fix too.
    let r = verify::verify(&mut c, &Config::default()).await.unwrap();
    assert!(of(&r.violations, "unique-without-realm")
        .iter()
        .all(|v| v.fix.is_some()));
}
