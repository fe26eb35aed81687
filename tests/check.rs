//! `realmguard check` end to end: scratch database, real apply, verify, lint, one report, and the
//! scratch database gone afterwards whatever happened.

use crate::common::{project_dir, realmguard_cmd, server_url, Run, TempDir, TestDb};

/// The scratch database a run announced on stderr.
fn scratch_name(run: &Run) -> String {
    run.stderr
        .lines()
        .find_map(|l| l.strip_prefix("realmguard: using scratch database "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no scratch database announced:\n{}", run.stderr))
        .to_string()
}

async fn assert_dropped(db: &TestDb, run: &Run) {
    let name = scratch_name(run);
    assert_eq!(
        db.count(&format!(
            "SELECT 1 FROM pg_database WHERE datname = '{name}'"
        ))
        .await,
        0,
        "scratch database {name} left behind"
    );
}

const REALMS: &str = "CREATE TABLE realms (id text PRIMARY KEY);\n";

#[tokio::test]
async fn the_projects_own_migrations_pass() {
    let db = TestDb::new("check_ok").await;
    let run = db.run(&project_dir(), &["check"]).await;
    run.expect_code(0);
    assert!(
        run.stdout.starts_with("apply: 6 migrations applied"),
        "{}",
        run.stdout
    );
    run.expect_stdout("verify: 6 tables (5 realm-scoped): 0 errors, 0 warnings");
    run.expect_stdout("lint: no problems in 6 files");
    assert!(
        run.stdout.ends_with("check: 0 errors, 0 warnings\n"),
        "{}",
        run.stdout
    );
    assert_dropped(&db, &run).await;
    // The database given with DATABASE_URL is only the server's address: nothing was applied there.
    assert_eq!(
        db.count("SELECT 1 FROM pg_tables WHERE tablename = 'realms'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_realm_violation_is_found_by_verify_and_lint() {
    let db = TestDb::new("check_realm").await;
    let d = TempDir::new("check-realm");
    d.write(&[
        ("migrations/0001_realms.sql", REALMS),
        (
            "migrations/0002_notes.sql",
            "CREATE TABLE notes (id bigint PRIMARY KEY, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE);\n",
        ),
    ]);
    let run = db.run(d.path(), &["check", "--format", "json"]).await;
    run.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(v["ok"], false);
    assert_eq!(v["apply"]["ok"], true);
    assert_eq!(v["apply"]["applied"], 2);
    let verify_rules: Vec<&str> = v["verify"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rule"].as_str().unwrap())
        .collect();
    assert!(
        verify_rules.contains(&"composite-primary-key"),
        "{}",
        run.stdout
    );
    assert_eq!(v["lint"]["violations"][0]["rule"], "composite-primary-key");
    assert_eq!(
        v["lint"]["violations"][0]["file"],
        "migrations/0002_notes.sql"
    );
    assert!(
        v["summary"]["errors"].as_u64().unwrap() >= 2,
        "{}",
        run.stdout
    );
    assert_dropped(&db, &run).await;
}

#[tokio::test]
async fn a_lint_error_alone_fails_the_check() {
    let db = TestDb::new("check_lint").await;
    let d = TempDir::new("check-lint");
    d.write(&[
        ("migrations/0001_realms.sql", REALMS),
        (
            "migrations/0002_idx.sql",
            "CREATE INDEX realms_id_idx ON realms (id);\n",
        ),
    ]);
    let run = db.run(d.path(), &["check"]).await;
    run.expect_code(1);
    run.expect_stdout("verify: 1 table (0 realm-scoped): 0 errors");
    run.expect_stdout("migrations/0002_idx.sql:1:31: error[require-concurrent-index-creation]");
    assert!(
        run.stdout.ends_with("check: 1 error, 0 warnings\n"),
        "{}",
        run.stdout
    );
    assert_dropped(&db, &run).await;
}

#[tokio::test]
async fn a_migration_that_fails_exits_2_and_the_scratch_database_is_dropped() {
    let db = TestDb::new("check_fail").await;
    let d = TempDir::new("check-fail");
    d.write(&[
        ("migrations/0001_realms.sql", REALMS),
        (
            "migrations/0002_bad.sql",
            "ALTER TABLE nowhere ADD COLUMN x int;\n",
        ),
    ]);
    let run = db.run(d.path(), &["check"]).await;
    run.expect_one_line_error();
    run.expect_stderr("0002");
    assert!(
        run.stdout.starts_with("apply: FAILED after 1 migration"),
        "{}",
        run.stdout
    );
    assert_dropped(&db, &run).await;
}

#[tokio::test]
async fn junit_has_apply_verify_and_lint_suites() {
    let db = TestDb::new("check_junit").await;
    let run = db
        .run(&project_dir(), &["check", "--format", "junit"])
        .await;
    run.expect_code(0);
    assert!(run.stdout.starts_with("<?xml"), "{}", run.stdout);
    for suite in [
        "realmguard check: apply",
        "realmguard verify",
        "realmguard lint",
    ] {
        assert!(
            run.stdout
                .contains(&format!(r#"<testsuite name="{suite}""#)),
            "{suite}\n{}",
            run.stdout
        );
    }
    assert_eq!(
        run.stdout.matches("<testsuites").count(),
        1,
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("<failure"), "{}", run.stdout);
}

#[tokio::test]
async fn scratch_url_names_the_server() {
    let db = TestDb::new("check_url").await;
    let out = realmguard_cmd(&project_dir())
        .args(["check", "--scratch-url", &server_url("postgres")])
        .output()
        .await
        .unwrap();
    let run = Run::from(out);
    run.expect_code(0);
    assert!(!run.stderr.contains("embedded"), "{}", run.stderr);
    assert_dropped(&db, &run).await;
}

#[tokio::test]
async fn bad_input_is_one_line_and_touches_no_server() {
    let d = TempDir::new("check-bad");
    d.write(&[("migrations/first.sql", "SELECT 1;\n")]);
    // No server behind this URL: the file name error must come first.
    let out = realmguard_cmd(d.path())
        .args([
            "check",
            "--scratch-url",
            "postgres://u:secret@127.0.0.1:1/x",
        ])
        .output()
        .await
        .unwrap();
    let run = Run::from(out);
    run.expect_one_line_error();
    run.expect_stderr("first.sql");
    let out = realmguard_cmd(d.path())
        .args([
            "check",
            "--dir",
            "nope",
            "--scratch-url",
            "postgres://u:secret@127.0.0.1:1/x",
        ])
        .output()
        .await
        .unwrap();
    let run = Run::from(out);
    run.expect_one_line_error();
    run.expect_stderr("nope");
    run.expect_not_printed("secret");
}

#[tokio::test]
async fn github_actions_gets_annotations_from_verify_and_lint() {
    let db = TestDb::new("check_gh").await;
    let d = TempDir::new("check-gh");
    d.write(&[
        ("migrations/0001_realms.sql", REALMS),
        (
            "migrations/0002_notes.sql",
            "CREATE TABLE notes (id bigint PRIMARY KEY, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE);\n",
        ),
    ]);
    let out = db
        .cmd(d.path())
        .args(["check"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .await
        .unwrap();
    let run = Run::from(out);
    run.expect_code(1);
    run.expect_stdout(
        "::error file=migrations/0002_notes.sql,line=1,col=21,title=composite-primary-key::",
    );
    run.expect_stdout("::error title=composite-primary-key::public.notes: ");
    assert_dropped(&db, &run).await;
}

#[tokio::test]
async fn two_checks_at_once_on_one_server_both_succeed() {
    let db = TestDb::new("check_twice").await;
    let dir = project_dir();
    let (a, b) = tokio::join!(db.run(&dir, &["check"]), db.run(&dir, &["check"]));
    a.expect_code(0);
    b.expect_code(0);
    assert_ne!(scratch_name(&a), scratch_name(&b));
    assert_dropped(&db, &a).await;
    assert_dropped(&db, &b).await;
}

#[tokio::test]
async fn ctrl_c_during_the_apply_still_drops_the_scratch_database() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let db = TestDb::new("check_int").await;
    let d = TempDir::new("check-int");
    d.write(&[
        ("migrations/0001_realms.sql", REALMS),
        ("migrations/0002_slow.sql", "SELECT pg_sleep(30);\n"),
    ]);
    let mut child = db
        .cmd(d.path())
        .args(["check"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut name = None;
    while let Some(l) = lines.next_line().await.unwrap() {
        if let Some(rest) = l.strip_prefix("realmguard: using scratch database ") {
            name = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    let name = name.expect("scratch database announced");
    // Let the slow migration start, then interrupt as a terminal would.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("check did not stop on SIGINT")
        .unwrap();
    let mut rest = String::new();
    while let Some(l) = lines.next_line().await.unwrap() {
        rest.push_str(&l);
        rest.push('\n');
    }
    assert_eq!(status.code(), Some(2), "{rest}");
    assert!(rest.contains("error: interrupted"), "{rest}");
    assert_eq!(
        db.count(&format!(
            "SELECT 1 FROM pg_database WHERE datname = '{name}'"
        ))
        .await,
        0,
        "scratch database {name} left behind"
    );
}
