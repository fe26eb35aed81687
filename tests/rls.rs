//! Row level security against real catalogs: each rls-* rule violated and nearly violated, the
//! fixes applied and verified, the project's own migrations under `verify --rls`, and `realm
//! probe` finding each kind of leak and leaving nothing behind. Roles are cluster-wide: every
//! test role carries the test database's name and is dropped at the end.

use crate::common::{project_dir, TestDb};
use realmguard::config::Config;
use realmguard::verify::{self, Report, Violation};

const REALMS: &str = "CREATE TABLE realms (id text PRIMARY KEY, name text NOT NULL DEFAULT '');
INSERT INTO realms (id) VALUES ('a'), ('b');";

/// A realm table `name` with rows in realms a and b.
fn table(name: &str) -> String {
    format!(
        "CREATE TABLE {name} (id bigint NOT NULL, realm_id text NOT NULL REFERENCES realms (id) ON DELETE CASCADE, owner text, PRIMARY KEY (id, realm_id));
         INSERT INTO {name} (id, realm_id) VALUES (1, 'a'), (2, 'b');"
    )
}

const GOOD: &str = "realm_id = (SELECT current_setting('app.realm_id', true))";

/// `name` under RLS, forced, with the realm policy written the right way.
fn guarded(name: &str) -> String {
    format!(
        "{}
         CREATE POLICY {name}_realm ON {name} USING ({GOOD}) WITH CHECK ({GOOD});
         ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;
         ALTER TABLE {name} FORCE ROW LEVEL SECURITY;",
        table(name)
    )
}

/// A test database with the realms table, `sql`, and an application role of its own (NOLOGIN,
/// granted the tables), whose name is returned.
async fn db_with(tag: &str, sql: &str) -> (TestDb, String) {
    let db = TestDb::new(tag).await;
    let role = format!("app_{}", db.name);
    db.exec(&format!("CREATE ROLE \"{role}\" NOLOGIN")).await;
    db.exec(REALMS).await;
    db.exec(sql).await;
    db.exec(&format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{role}\""
    ))
    .await;
    (db, role)
}

async fn drop_role(db: &TestDb, role: &str) {
    db.exec(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\";"))
        .await;
}

/// The realms of the rows `role` sees in `table` with the setting at `realm`.
async fn sees(db: &TestDb, role: &str, realm: &str, table: &str) -> String {
    let mut c = db.conn().await;
    sqlx::raw_sql(&format!(
        "BEGIN; SET LOCAL ROLE \"{role}\"; SELECT set_config('app.realm_id', '{realm}', true);"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    let seen: Option<String> =
        sqlx::query_scalar(&format!("SELECT string_agg(realm_id, ',') FROM {table}"))
            .fetch_one(&mut c)
            .await
            .unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
    seen.unwrap_or_default()
}

fn cfg(role: &str) -> Config {
    Config::parse(&format!("[rls]\nenabled = true\napp_role = \"{role}\"")).unwrap()
}

async fn run_verify(db: &TestDb, cfg: &Config) -> Report {
    let mut c = db.conn().await;
    verify::verify(&mut c, cfg).await.expect("verify")
}

/// (rule, table, policy) of every rls-* violation.
fn brief(vs: &[Violation]) -> Vec<(String, String, Option<String>)> {
    let mut out: Vec<_> = vs
        .iter()
        .filter(|v| v.rule.starts_with("rls-"))
        .map(|v| (v.rule.clone(), v.table.clone(), v.constraint.clone()))
        .collect();
    out.sort();
    out
}

fn row(rule: &str, table: &str, policy: Option<&str>) -> (String, String, Option<String>) {
    (rule.into(), table.into(), policy.map(str::to_string))
}

/// Run every fix in repair order, one statement at a time.
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
async fn disabled_not_forced_and_no_policy_then_fixed() {
    let sql = [
        table("t_off"),
        table("t_nopolicy"),
        "ALTER TABLE t_nopolicy ENABLE ROW LEVEL SECURITY;".into(),
        table("t_unforced"),
        format!("CREATE POLICY p ON t_unforced USING ({GOOD}) WITH CHECK ({GOOD});"),
        "ALTER TABLE t_unforced ENABLE ROW LEVEL SECURITY;".into(),
        guarded("t_good"),
    ]
    .join("\n");
    let (db, role) = db_with("rls_base", &sql).await;
    // Off unless asked for: the plain verify is clean.
    assert!(brief(&run_verify(&db, &Config::default()).await.violations).is_empty());
    let r = run_verify(&db, &cfg(&role)).await;
    assert_eq!(
        brief(&r.violations),
        [
            row("rls-disabled", "t_off", None),
            row("rls-not-forced", "t_nopolicy", None),
            row("rls-not-forced", "t_unforced", None),
            row("rls-policy-missing", "t_nopolicy", None),
        ]
    );
    assert!(!r.ok);
    apply_fixes(&db, &r.violations).await;
    let r = run_verify(&db, &cfg(&role)).await;
    assert!(brief(&r.violations).is_empty(), "{:#?}", r.violations);
    // The fixed tables hold: the role at realm a sees a's row only.
    for t in ["t_off", "t_nopolicy", "t_unforced"] {
        assert_eq!(sees(&db, &role, "a", t).await, "a", "{t}");
    }
    drop_role(&db, &role).await;
}

#[tokio::test]
async fn a_policy_that_does_not_bind_the_realm_and_near_misses() {
    let sql = [
        table("t_true"),
        "CREATE POLICY p ON t_true USING (true);".into(),
        table("t_check_true"),
        format!("CREATE POLICY p ON t_check_true USING ({GOOD}) WITH CHECK (true);"),
        table("t_other_setting"),
        "CREATE POLICY p ON t_other_setting USING (realm_id = (SELECT current_setting('app.tenant', true)));".into(),
        // Near misses: a SELECT-only realm policy (nothing can be written), the USING used as the
        // check, a restrictive realm policy over a permissive `true`, a uuid-free cast.
        table("t_select_only"),
        format!("CREATE POLICY p ON t_select_only FOR SELECT USING ({GOOD});"),
        table("t_using_only"),
        format!("CREATE POLICY p ON t_using_only USING ({GOOD});"),
        table("t_restrictive"),
        "CREATE POLICY open ON t_restrictive USING (true) WITH CHECK (true);".into(),
        format!("CREATE POLICY realm ON t_restrictive AS RESTRICTIVE USING ({GOOD}) WITH CHECK ({GOOD});"),
    ]
    .join("\n");
    let (db, role) = db_with("rls_notrealm", &sql).await;
    for t in [
        "t_true",
        "t_check_true",
        "t_other_setting",
        "t_select_only",
        "t_using_only",
        "t_restrictive",
    ] {
        db.exec(&format!(
            "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY; ALTER TABLE {t} FORCE ROW LEVEL SECURITY;"
        ))
        .await;
    }
    let r = run_verify(&db, &cfg(&role)).await;
    assert_eq!(
        brief(&r.violations),
        [
            row("rls-policy-not-realm", "t_check_true", None),
            row("rls-policy-not-realm", "t_other_setting", None),
            row("rls-policy-not-realm", "t_true", None),
        ]
    );
    let check_true = r
        .violations
        .iter()
        .find(|v| v.table == "t_check_true")
        .unwrap();
    assert!(
        check_true.message.contains("INSERT (WITH CHECK)")
            && !check_true.message.contains("SELECT"),
        "{}",
        check_true.message
    );
    apply_fixes(&db, &r.violations).await;
    let r = run_verify(&db, &cfg(&role)).await;
    assert!(brief(&r.violations).is_empty(), "{:#?}", r.violations);
    drop_role(&db, &role).await;
}

#[tokio::test]
async fn permissive_bypass_fail_open_per_row_and_missing_ok() {
    let sql = [
        guarded("t_bypass"),
        "CREATE POLICY mine ON t_bypass FOR SELECT USING (owner = current_user);".into(),
        guarded("t_open"),
        format!("DROP POLICY t_open_realm ON t_open; CREATE POLICY p ON t_open USING ({GOOD} OR (SELECT current_setting('app.realm_id', true)) IS NULL);"),
        guarded("t_per_row"),
        "DROP POLICY t_per_row_realm ON t_per_row; CREATE POLICY p ON t_per_row USING (realm_id = current_setting('app.realm_id'));".into(),
        // Near misses: the extra policy is restrictive, or applies to another role only.
        guarded("t_restrictive"),
        "CREATE POLICY mine ON t_restrictive AS RESTRICTIVE FOR SELECT USING (owner = current_user);".into(),
        guarded("t_other_role"),
        "CREATE POLICY mine ON t_other_role FOR SELECT TO pg_monitor USING (true);".into(),
    ]
    .join("\n");
    let (db, role) = db_with("rls_bypass", &sql).await;
    let r = run_verify(&db, &cfg(&role)).await;
    assert_eq!(
        brief(&r.violations),
        [
            row("rls-permissive-bypass", "t_bypass", Some("mine")),
            row("rls-permissive-bypass", "t_open", Some("p")),
            row("rls-setting-missing-ok", "t_per_row", Some("p")),
            row("rls-setting-per-row", "t_per_row", Some("p")),
        ]
    );
    // Warnings only on t_per_row; the bypasses are errors.
    assert_eq!((r.summary.errors, r.summary.warnings), (2, 2));
    apply_fixes(&db, &r.violations).await;
    let r = run_verify(&db, &cfg(&role)).await;
    assert!(brief(&r.violations).is_empty(), "{:#?}", r.violations);
    drop_role(&db, &role).await;
}

#[tokio::test]
async fn the_application_role_must_not_bypass() {
    let (db, role) = db_with("rls_role", &[guarded("t1"), guarded("t2")].join("\n")).await;
    // Near miss: a plain role with grants.
    assert!(brief(&run_verify(&db, &cfg(&role)).await.violations).is_empty());
    // A role not in the cluster: the role checks are skipped, nothing else changes.
    assert!(brief(&run_verify(&db, &cfg("no_such_role_rg")).await.violations).is_empty());

    db.exec(&format!("ALTER ROLE \"{role}\" BYPASSRLS")).await;
    let r = run_verify(&db, &cfg(&role)).await;
    assert_eq!(
        brief(&r.violations),
        [
            row("rls-app-role-bypass", "t1", None),
            row("rls-app-role-bypass", "t2", None)
        ]
    );
    apply_fixes(&db, &r.violations).await;

    db.exec(&format!("ALTER TABLE t1 OWNER TO \"{role}\""))
        .await;
    let owner = format!("own_{}", db.name);
    db.exec(&format!(
        "CREATE ROLE \"{owner}\" NOLOGIN; ALTER TABLE t2 OWNER TO \"{owner}\"; GRANT \"{owner}\" TO \"{role}\";"
    ))
    .await;
    let r = run_verify(&db, &cfg(&role)).await;
    assert_eq!(
        brief(&r.violations),
        [
            row("rls-app-role-bypass", "t1", None),
            row("rls-app-role-bypass", "t2", None)
        ]
    );
    assert!(r.violations.iter().any(|v| v.message.contains("owns")));
    assert!(r.violations.iter().any(|v| v.message.contains("member")));
    apply_fixes(&db, &r.violations).await;
    assert!(brief(&run_verify(&db, &cfg(&role)).await.violations).is_empty());
    db.exec(&format!(
        "DROP OWNED BY \"{owner}\"; DROP ROLE \"{owner}\";"
    ))
    .await;
    drop_role(&db, &role).await;
}

#[tokio::test]
async fn definer_views_over_realm_tables() {
    let sql = [
        guarded("t"),
        "CREATE VIEW v_definer AS SELECT * FROM t;".into(),
        "CREATE VIEW v_over_view AS SELECT id FROM v_definer;".into(),
        // Near misses: invoker, over a global table only, not readable by the role.
        "CREATE VIEW v_invoker WITH (security_invoker = true) AS SELECT * FROM t;".into(),
        "CREATE VIEW v_global AS SELECT * FROM realms;".into(),
    ]
    .join("\n");
    let (db, role) = db_with("rls_view", &sql).await;
    db.exec("CREATE VIEW v_hidden AS SELECT * FROM t;").await;
    let r = run_verify(&db, &cfg(&role)).await;
    assert_eq!(
        brief(&r.violations),
        [
            row("rls-view-definer", "v_definer", None),
            row("rls-view-definer", "v_over_view", None)
        ]
    );
    apply_fixes(&db, &r.violations).await;
    assert!(brief(&run_verify(&db, &cfg(&role)).await.violations).is_empty());
    drop_role(&db, &role).await;
}

#[tokio::test]
async fn rls_reads_two_queries_whatever_the_catalog() {
    let (small, r1) = db_with("rls_q1", &guarded("g0")).await;
    let big_sql: Vec<String> = (0..40).map(|i| guarded(&format!("g{i}"))).collect();
    let (big, r2) = db_with("rls_q2", &big_sql.join("\n")).await;
    let plain = run_verify(&small, &Config::default()).await.queries;
    let a = run_verify(&small, &cfg(&r1)).await;
    let b = run_verify(&big, &cfg(&r2)).await;
    assert_eq!(a.queries, b.queries);
    assert_eq!(a.queries, plain + 2);
    drop_role(&small, &r1).await;
    drop_role(&big, &r2).await;
}

#[tokio::test]
async fn the_project_migrations_pass_verify_rls_and_the_guard() {
    let db = TestDb::new("rls_proj").await;
    // Through migrate, guard on: the guard keeps working with RLS forced on the realm tables.
    db.run(&project_dir(), &["migrate"]).await.expect_code(0);
    let run = db.run(&project_dir(), &["verify", "--rls"]).await;
    run.expect_code(0);
    run.expect_stdout("0 errors, 0 warnings");
    let run = db
        .run(&project_dir(), &["verify", "--rls", "--format", "json"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["ok"], true);
    // The migration can run where the app role already exists (another database made it).
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_roles WHERE rolname = 'app'")
            .await,
        "1"
    );
}

#[tokio::test]
async fn verify_rls_output_exit_codes_and_junit() {
    let (db, role) = db_with("rls_cli", &table("t")).await;
    let dir = crate::common::TempDir::new("rls-cli");
    dir.write(&[(
        "schema/realmguard.toml",
        &format!("[rls]\napp_role = \"{role}\"\n"),
    )]);
    // Not enabled: clean. --rls: the error, its fix, exit 1.
    db.run(dir.path(), &["verify"]).await.expect_code(0);
    let run = db.run(dir.path(), &["verify", "--rls"]).await;
    run.expect_code(1)
        .expect_stdout("rls-disabled")
        .expect_stdout("CREATE POLICY")
        .expect_stdout("FORCE ROW LEVEL SECURITY");
    let run = db
        .run(dir.path(), &["verify", "--rls", "--format", "junit"])
        .await;
    run.expect_code(1).expect_stdout("rls-disabled");
    let run = db
        .run(dir.path(), &["verify", "--rls", "--format", "json"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["violations"][0]["rule"], "rls-disabled");
    // A typo in [rls] is one error line, exit 2.
    dir.write(&[("schema/realmguard.toml", "[rls]\nenable = true\n")]);
    db.run(dir.path(), &["verify"])
        .await
        .expect_one_line_error()
        .expect_stderr("enable");
    drop_role(&db, &role).await;
}

// ---- realm probe ----

/// `realm probe` through the binary in `dir` (the project by default), JSON report parsed.
async fn probe(db: &TestDb, args: &[&str]) -> (crate::common::Run, serde_json::Value) {
    let mut all = vec!["realm", "probe", "--format", "json"];
    all.extend_from_slice(args);
    let run = db.run(&project_dir(), &all).await;
    let v = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run, v)
}

/// The tables (or views) the report says leak.
fn leaking(v: &serde_json::Value) -> Vec<String> {
    v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["leak"] == true)
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect()
}

/// Everything in the database a probe could leave behind: rows per realm and per table, and
/// the session defaults of the roles.
async fn state(db: &TestDb, tables: &[&str]) -> String {
    let mut parts = vec![
        db.scalar("SELECT string_agg(id, ',' ORDER BY id) FROM realms")
            .await,
    ];
    for t in tables {
        parts.push(
            db.scalar(&format!(
                "SELECT string_agg(realm_id || ':' || id, ',' ORDER BY realm_id, id) FROM {t}"
            ))
            .await,
        );
    }
    parts.push(db.scalar("SELECT count(*) FROM pg_db_role_setting").await);
    parts.join(" | ")
}

#[tokio::test]
async fn the_probe_passes_on_the_project_schema_and_leaves_nothing() {
    let db = TestDb::new("probe_proj").await;
    db.run(&project_dir(), &["migrate"]).await.expect_code(0);
    db.exec(
        "INSERT INTO users (id, realm_id, email) VALUES (1, 'hub', 'a@x');
         INSERT INTO groups (id, realm_id, name) VALUES (1, 'hub', 'board');
         INSERT INTO memberships (id, realm_id, user_id, group_id) VALUES (1, 'hub', 1, 1);
         INSERT INTO policy_statement_types (id, realm_id, code) VALUES (1, 'hub', 'BOARD_MEMBER');
         INSERT INTO membership_statements (id, realm_id, membership_id, statement_type_id) VALUES (1, 'hub', 1, 1);",
    )
    .await;
    let tables = ["users", "groups", "memberships", "membership_statements"];
    let before = state(&db, &tables).await;
    let (run, v) = probe(&db, &["--role", "app", "--realm", "hub"]).await;
    run.expect_code(0);
    assert_eq!(v["ok"], true, "{}", run.stdout);
    // No other realm existed: one was made from the hub's rows, in every table, and refused.
    assert_eq!(v["other"], "realmguard_probe");
    assert_eq!(v["created_in"].as_array().unwrap().len(), 5);
    for t in v["tables"].as_array().unwrap() {
        assert_eq!(t["visible_other"], 0, "{t}");
        assert_eq!(t["visible_unset"], 0, "{t}");
        assert_eq!(t["insert"], "refused", "{t}");
        assert_eq!(t["update"], "nothing", "{t}");
        assert_eq!(t["delete"], "nothing", "{t}");
    }
    assert_eq!(state(&db, &tables).await, before);
    // The text form: one row per table and the verdict.
    let run = db
        .run(
            &project_dir(),
            &["realm", "probe", "--role", "app", "--realm", "hub"],
        )
        .await;
    run.expect_code(0)
        .expect_stdout("public.membership_statements")
        .expect_stdout("reaches no row of realm realmguard_probe");
    // Bad input: a role that does not exist, the same realm twice.
    db.run(
        &project_dir(),
        &["realm", "probe", "--role", "no_such_rg", "--realm", "hub"],
    )
    .await
    .expect_one_line_error()
    .expect_stderr("no_such_rg");
    db.run(
        &project_dir(),
        &[
            "realm", "probe", "--role", "app", "--realm", "hub", "--other", "hub",
        ],
    )
    .await
    .expect_one_line_error();
    assert_eq!(state(&db, &tables).await, before);
}

#[tokio::test]
async fn the_probe_finds_each_kind_of_leak() {
    let sql = [
        guarded("t_good"),
        // Owned by the application role and not forced: the owner bypasses RLS.
        table("t_owned"),
        format!("CREATE POLICY p ON t_owned USING ({GOOD}) WITH CHECK ({GOOD});"),
        "ALTER TABLE t_owned ENABLE ROW LEVEL SECURITY;".into(),
        // A permissive policy without the realm OR-ed in.
        guarded("t_permissive"),
        "CREATE POLICY everyone ON t_permissive FOR SELECT USING (true);".into(),
        // Fails open when the setting is unset.
        guarded("t_open"),
        format!("DROP POLICY t_open_realm ON t_open; CREATE POLICY p ON t_open USING ({GOOD} OR current_setting('app.realm_id', true) IS NULL) WITH CHECK ({GOOD});"),
        // Only realm a has rows here: the probe makes b's (and rolls them back).
        "CREATE TABLE t_only_a (id bigint NOT NULL, realm_id text NOT NULL REFERENCES realms (id), PRIMARY KEY (id, realm_id));".into(),
        "INSERT INTO t_only_a VALUES (1, 'a'), (2, 'a');".into(),
        format!("CREATE POLICY p ON t_only_a USING ({GOOD}) WITH CHECK ({GOOD});"),
        "ALTER TABLE t_only_a ENABLE ROW LEVEL SECURITY; ALTER TABLE t_only_a FORCE ROW LEVEL SECURITY;".into(),
        // A view with its owner's (the superuser's) rights over a sound table.
        "CREATE VIEW v_definer AS SELECT * FROM t_good;".into(),
        "CREATE VIEW v_invoker WITH (security_invoker = true) AS SELECT * FROM t_good;".into(),
    ]
    .join("\n");
    let (db, role) = db_with("probe_leaks", &sql).await;
    db.exec(&format!(
        "ALTER TABLE t_owned OWNER TO \"{role}\"; GRANT SELECT ON v_definer, v_invoker TO \"{role}\";"
    ))
    .await;
    let tables = ["t_good", "t_owned", "t_permissive", "t_open", "t_only_a"];
    let before = state(&db, &tables).await;
    let (run, v) = probe(&db, &["--role", &role, "--realm", "a", "--other", "b"]).await;
    run.expect_code(1);
    assert_eq!(
        leaking(&v),
        [
            "public.t_open",
            "public.t_owned",
            "public.t_permissive",
            "public.v_definer"
        ],
        "{}",
        run.stdout
    );
    let t = |name: &str| {
        v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap()
            .clone()
    };
    // The owner writes into b; the permissive policy shows b; the open one shows all, unset.
    assert_eq!(t("public.t_owned")["insert"], "leak");
    assert_eq!(t("public.t_owned")["delete"], "leak");
    assert_eq!(t("public.t_permissive")["visible_other"], 1);
    assert_eq!(t("public.t_permissive")["delete"], "nothing");
    assert_eq!(t("public.t_open")["visible_unset"], 2);
    assert_eq!(t("public.t_open")["visible_other"], 0);
    assert_eq!(t("public.t_only_a")["other_rows"], 2);
    assert_eq!(t("public.t_only_a")["leak"], false);
    assert_eq!(v["created_in"], serde_json::json!(["public.t_only_a"]));
    // The text form names the leaking tables.
    let text = db
        .run(
            &project_dir(),
            &[
                "realm", "probe", "--role", &role, "--realm", "a", "--other", "b",
            ],
        )
        .await;
    text.expect_code(1).expect_stdout("LEAKS realm b in 4");

    // A BYPASSRLS role reaches b everywhere, the sound table included.
    let bypass = format!("bypass_{}", db.name);
    db.exec(&format!(
        "CREATE ROLE \"{bypass}\" NOLOGIN BYPASSRLS; GRANT SELECT, INSERT, UPDATE, DELETE ON t_good TO \"{bypass}\";"
    ))
    .await;
    let (run, v) = probe(&db, &["--role", &bypass, "--realm", "a", "--other", "b"]).await;
    run.expect_code(1);
    assert!(
        leaking(&v).contains(&"public.t_good".to_string()),
        "{}",
        run.stdout
    );
    assert_eq!(state(&db, &tables).await, before);
    db.exec(&format!(
        "DROP OWNED BY \"{bypass}\"; DROP ROLE \"{bypass}\";"
    ))
    .await;
    drop_role(&db, &role).await;
}

/// The backend of the probe, once it waits on the lock the test holds.
async fn blocked_probe_backend(db: &TestDb, child: &mut tokio::process::Child) -> i32 {
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use tokio::io::AsyncReadExt;
            let _ = child.stderr.take().unwrap().read_to_string(&mut err).await;
            panic!("the probe ended ({status}) before blocking: {err}");
        }
        let pid = db
            .scalar(&format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock' AND query LIKE '%t_z%'",
                db.name
            ))
            .await;
        if pid != "NULL" {
            return pid.parse().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let seen = db
        .scalar(&format!(
            "SELECT string_agg(coalesce(wait_event_type, '-') || ' ' || state || ' ' || left(query, 300), E'\\n') FROM pg_stat_activity WHERE datname = '{}'",
            db.name
        ))
        .await;
    panic!("the probe never blocked on the lock:\n{seen}");
}

#[tokio::test]
async fn an_interrupted_probe_leaves_nothing_behind() {
    // t_a has rows of realm a only, so the probe makes b's; t_z comes later and is locked.
    let sql = [
        "CREATE TABLE t_a (id bigint NOT NULL, realm_id text NOT NULL REFERENCES realms (id), PRIMARY KEY (id, realm_id));".to_string(),
        "INSERT INTO t_a VALUES (1, 'a');".into(),
        guarded("t_z"),
    ]
    .join("\n");
    let (db, role) = db_with("probe_int", &sql).await;
    db.exec("DELETE FROM realms WHERE id = 'b'").await;
    let before = state(&db, &["t_a"]).await;
    let args = [
        "realm",
        "probe",
        "--role",
        &role,
        "--realm",
        "a",
        "--other",
        "b",
        "--lock-timeout",
        "0",
    ];
    for how in ["sigint", "kill -9", "connection dies"] {
        let mut locker = db.conn().await;
        sqlx::raw_sql("BEGIN; LOCK TABLE t_z IN ACCESS EXCLUSIVE MODE")
            .execute(&mut locker)
            .await
            .unwrap();
        let mut child = db
            .cmd(&project_dir())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let backend = blocked_probe_backend(&db, &mut child).await;
        // Mid-probe, realm b's rows exist only inside its transaction.
        assert_eq!(state(&db, &["t_a"]).await, before, "{how}");
        let pid = child.id().unwrap().to_string();
        match how {
            "sigint" => {
                std::process::Command::new("kill")
                    .args(["-INT", &pid])
                    .status()
                    .unwrap();
            }
            "kill -9" => {
                std::process::Command::new("kill")
                    .args(["-9", &pid])
                    .status()
                    .unwrap();
            }
            _ => {
                db.exec(&format!("SELECT pg_terminate_backend({backend})"))
                    .await;
            }
        }
        let out = child.wait_with_output().await.unwrap();
        let run = crate::common::Run::from(out);
        match how {
            "sigint" => {
                run.expect_one_line_error().expect_stderr("interrupted");
            }
            "kill -9" => assert_eq!(run.code, -1, "killed by a signal"),
            _ => {
                run.expect_one_line_error();
            }
        }
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut locker)
            .await
            .unwrap();
        // The probe's backend ends once its statement returns to a closed socket.
        for _ in 0..200 {
            let left = db
                .scalar(&format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = {backend}"
                ))
                .await;
            if left == "0" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(state(&db, &["t_a"]).await, before, "{how}");
    }
    drop_role(&db, &role).await;
}

#[tokio::test]
async fn check_runs_the_rls_rules_when_asked() {
    let db = TestDb::new("rls_check").await;
    // The project's migrations: clean with --rls too.
    let run = db.run(&project_dir(), &["check", "--rls"]).await;
    run.expect_code(0)
        .expect_stdout("check: 0 errors, 0 warnings");
    // A migration that leaves a realm table without RLS: clean without, an error with.
    let dir = crate::common::TempDir::new("rls-check");
    dir.write(&[
        ("migrations/0001_realms.sql", "CREATE TABLE realms (id text PRIMARY KEY);\n"),
        (
            "migrations/0002_t.sql",
            "CREATE TABLE t (id bigint NOT NULL, realm_id text NOT NULL REFERENCES realms (id) ON DELETE CASCADE, PRIMARY KEY (id, realm_id));\n",
        ),
    ]);
    db.run(dir.path(), &["check"]).await.expect_code(0);
    let run = db
        .run(dir.path(), &["check", "--rls", "--format", "json"])
        .await;
    run.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["verify"]["violations"][0]["rule"], "rls-disabled");
    dir.write(&[("schema/realmguard.toml", "[rls]\nenabled = true\n")]);
    db.run(dir.path(), &["check", "--format", "junit"])
        .await
        .expect_code(1)
        .expect_stdout("rls-disabled");
}

#[tokio::test]
async fn verify_rls_does_not_wait_behind_a_lock() {
    let (db, role) = db_with("rls_lock", &guarded("t")).await;
    let mut locker = db.conn().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        run_verify(&db, &cfg(&role)),
    )
    .await
    .expect("verify --rls queued behind the lock");
    // The locked table's policies are not judged this time; nothing false is reported.
    assert!(
        brief(&report.violations).is_empty(),
        "{:#?}",
        report.violations
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    drop_role(&db, &role).await;
}
