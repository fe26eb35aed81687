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
