//! fleet status, migrate and verify against real PostgreSQL: targets on the suite's cluster and
//! on a second throwaway cluster, and clusters of their own for a server that stops or dies.
//! What is checked is what a DBA would check: exit code, the report, and every target's ledger.

use crate::common::{realmguard_cmd, server_url, Run, TempDir, TestDb};
use realmguard::embedded::Cluster;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "migrations/0001_a.sql",
        "CREATE TABLE a (id int PRIMARY KEY);\nINSERT INTO a VALUES (1);\n",
    ),
    (
        "migrations/0002_b.sql",
        "CREATE TABLE b (id int PRIMARY KEY);\n",
    ),
    (
        "migrations/0003_c.sql",
        "CREATE TABLE c (id int PRIMARY KEY);\n",
    ),
];

/// The advisory lock key every migration runner takes (see src/migrate/runner.rs).
const LOCK_KEY: i64 = 0x7265_616c_6d67_7264;

static SECOND: OnceLock<Cluster> = OnceLock::new();

/// A second cluster shared by the fleet tests, so a fleet spans two servers.
fn second() -> &'static Cluster {
    SECOND.get_or_init(|| {
        Cluster::throwaway(std::process::id()).expect("cannot start the second test cluster")
    })
}

/// `n` fresh databases on the server whose maintenance database is `admin`.
async fn dbs(admin: &str, tag: &str, n: usize) -> Vec<TestDb> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TestDb::on(admin, tag).await);
    }
    out
}

fn suite_admin() -> String {
    server_url("postgres")
}

/// `schema/fleet.toml` naming each (name, url, group), after `head` (top-level keys).
fn fleet_toml(head: &str, targets: &[(String, String, Option<&str>)]) -> String {
    let mut s = format!("{head}\n");
    for (name, url, group) in targets {
        s.push_str(&format!(
            "\n[[target]]\nname = \"{name}\"\nurl = \"{url}\"\n"
        ));
        if let Some(g) = group {
            s.push_str(&format!("group = \"{g}\"\n"));
        }
    }
    s
}

/// Targets `{prefix}1…` for the databases, no group.
fn named(prefix: &str, dbs: &[TestDb]) -> Vec<(String, String, Option<&'static str>)> {
    dbs.iter()
        .enumerate()
        .map(|(i, d)| (format!("{prefix}{}", i + 1), d.url.clone(), None))
        .collect()
}

fn project(tag: &str, migrations: &[(&str, &str)], toml: &str) -> TempDir {
    let dir = TempDir::new(tag);
    dir.write(migrations);
    dir.write(&[("schema/fleet.toml", toml)]);
    dir
}

async fn fleet(dir: &Path, args: &[&str]) -> Run {
    Run::from(
        realmguard_cmd(dir)
            .arg("fleet")
            .args(args)
            .output()
            .await
            .expect("run realmguard fleet"),
    )
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}\n--- stdout\n{}\n--- stderr\n{}", r.stdout, r.stderr))
}

fn target<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no target {name} in {v}"))
}

/// The versions in a database's ledger, or `none` when it has no ledger.
async fn ledger(db: &TestDb) -> String {
    if db
        .scalar("to_regclass('realmguard.migrations') IS NULL")
        .await
        == "true"
    {
        return "none".into();
    }
    db.scalar("SELECT coalesce(string_agg(version::text, ',' ORDER BY version), '') FROM realmguard.migrations WHERE success").await
}

/// Wait until a session runs a statement starting with `prefix` on `db` (or a batch containing
/// one: the runner sends a whole migration in one round trip).
async fn wait_for_statement(db: &TestDb, prefix: &str) {
    for _ in 0..500 {
        let sql = format!(
            "SELECT * FROM pg_stat_activity WHERE query LIKE '%{prefix}%' AND state = 'active' AND pid <> pg_backend_pid()"
        );
        if db.count(&sql).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no session ever ran {prefix}");
}

#[tokio::test]
async fn every_target_on_two_servers_is_migrated_once_and_a_rerun_skips_without_the_lock() {
    let mut all = dbs(&suite_admin(), "fl_all", 10).await;
    all.extend(dbs(&second().url("postgres"), "fl_all", 10).await);
    let dir = project("fl_all", MIGRATIONS, &fleet_toml("", &named("t", &all)));

    let r = fleet(dir.path(), &["migrate", "--jobs", "4", "--format", "json"]).await;
    r.expect_code(0);
    let v = json(&r);
    assert_eq!(v["ok"], true);
    assert_eq!(v["summary"]["ok"], 20);
    assert_eq!(v["summary"]["versions"], serde_json::json!({"3": 20}));
    for (i, db) in all.iter().enumerate() {
        assert_eq!(ledger(db).await, "1,2,3", "target t{}", i + 1);
        assert_eq!(db.count("SELECT * FROM a").await, 1, "the INSERT ran once");
        assert_eq!(target(&v, &format!("t{}", i + 1))["applied"], 3);
    }

    // Up to date: found read-only, so a lock held on one target does not hold the run up.
    let mut holder = all[3].conn().await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let again = fleet(
        dir.path(),
        &["migrate", "--lock-wait", "1s", "--format", "json"],
    )
    .await;
    again.expect_code(0);
    let v = json(&again);
    assert_eq!(v["summary"]["skipped"], 20);
    drop(holder);

    let st = fleet(dir.path(), &["status", "--exit-code"]).await;
    st.expect_code(0);
    st.expect_stdout("versions: 3 on 20 targets (all at one version)");
    fleet(dir.path(), &["verify"]).await.expect_code(0);
}

#[tokio::test]
async fn a_stopped_server_fails_its_targets_continue_goes_on_and_stop_starts_nothing_new() {
    let down = Cluster::throwaway(std::process::id()).expect("a cluster to stop");
    let gone = dbs(&down.url("postgres"), "fl_down", 2).await;
    let up = dbs(&suite_admin(), "fl_down", 3).await;
    let mut targets = named("down", &gone);
    targets.extend(named("up", &up));
    let dir = project(
        "fl_down",
        MIGRATIONS,
        &fleet_toml("on_error = \"stop\"", &targets),
    );
    down.stop().unwrap();

    let r = fleet(
        dir.path(),
        &["migrate", "--on-error", "continue", "--format", "json"],
    )
    .await;
    r.expect_code(2);
    let v = json(&r);
    for name in ["down1", "down2"] {
        assert_eq!(target(&v, name)["state"], "failed");
        let err = target(&v, name)["error"].as_str().unwrap();
        assert!(err.starts_with("cannot connect to"), "{err}");
        assert!(!err.contains('\n'));
    }
    for (i, db) in up.iter().enumerate() {
        assert_eq!(target(&v, &format!("up{}", i + 1))["state"], "ok");
        assert_eq!(ledger(db).await, "1,2,3");
    }

    // Under stop (the file's setting), one at a time: the first failure starts nothing new.
    let fresh = dbs(&suite_admin(), "fl_down", 2).await;
    let mut targets = named("down", &gone[..1]);
    targets.extend(named("fresh", &fresh));
    dir.write(&[(
        "schema/fleet.toml",
        &fleet_toml("on_error = \"stop\"", &targets),
    )]);
    let r = fleet(dir.path(), &["migrate", "--jobs", "1", "--format", "json"]).await;
    r.expect_code(2);
    let v = json(&r);
    assert_eq!(target(&v, "down1")["state"], "failed");
    assert_eq!(target(&v, "fresh1")["state"], "not_started");
    assert_eq!(target(&v, "fresh2")["state"], "not_started");
    assert_eq!(v["summary"]["not_started"], 2);
    for db in &fresh {
        assert_eq!(ledger(db).await, "none");
    }
}

#[tokio::test]
async fn a_failing_migration_is_rolled_back_on_its_target_and_fails_the_run() {
    let d = dbs(&suite_admin(), "fl_fail", 3).await;
    d[1].exec("CREATE TABLE b (x int)").await;
    let dir = project(
        "fl_fail",
        MIGRATIONS,
        &fleet_toml("on_error = \"continue\"", &named("t", &d)),
    );
    let r = fleet(dir.path(), &["migrate", "--format", "json"]).await;
    r.expect_code(2);
    let v = json(&r);
    let t2 = target(&v, "t2");
    assert_eq!(t2["state"], "failed");
    let err = t2["error"].as_str().unwrap();
    assert!(
        err.contains("migration 2 failed at migrations/0002_b.sql:1") && err.contains("42P07"),
        "{err}"
    );
    assert_eq!(t2["version_before"], 0);
    assert_eq!(t2["version_after"], 1);
    assert_eq!(t2["applied"], 1);
    assert_eq!(ledger(&d[1]).await, "1");
    assert_eq!(d[1].scalar("to_regclass('c') IS NULL").await, "true");
    assert_eq!(ledger(&d[0]).await, "1,2,3");
    assert_eq!(ledger(&d[2]).await, "1,2,3");
    assert_eq!(
        v["summary"]["versions"],
        serde_json::json!({"1": 1, "3": 2})
    );

    // The table's one line for it, and the versions the fleet is at.
    let st = fleet(dir.path(), &["status"]).await;
    st.expect_code(1);
    st.expect_stdout("versions: 3 on 2 targets, 1 on 1 (MIXED)");
    st.expect_stdout("The fleet is NOT ok.");
}

#[tokio::test]
async fn a_failing_canary_leaves_every_other_target_untouched() {
    let hub = TestDb::new("fl_canary").await;
    hub.exec("CREATE TABLE a (x int)").await;
    let workers = dbs(&second().url("postgres"), "fl_canary", 3).await;
    let mut targets = vec![("hub".to_string(), hub.url.clone(), Some("canary"))];
    targets.extend(named("w", &workers));
    let dir = project(
        "fl_canary",
        MIGRATIONS,
        &fleet_toml("canary = \"canary\"\non_error = \"continue\"", &targets),
    );
    let r = fleet(dir.path(), &["migrate", "--format", "json"]).await;
    r.expect_code(2);
    let v = json(&r);
    assert_eq!(target(&v, "hub")["state"], "failed");
    for (i, db) in workers.iter().enumerate() {
        let t = target(&v, &format!("w{}", i + 1));
        assert_eq!(t["state"], "not_started");
        assert!(t["error"]
            .as_str()
            .unwrap()
            .contains("canary group `canary`"));
        assert_eq!(ledger(db).await, "none");
    }
}

#[tokio::test]
async fn two_fleet_migrates_at_once_apply_every_migration_once_per_target() {
    let mut all = dbs(&suite_admin(), "fl_twice", 6).await;
    all.extend(dbs(&second().url("postgres"), "fl_twice", 4).await);
    let dir = project("fl_twice", MIGRATIONS, &fleet_toml("", &named("t", &all)));
    let args = ["fleet", "migrate", "--jobs", "3", "--format", "json"];
    let a = realmguard_cmd(dir.path()).args(args).output();
    let b = realmguard_cmd(dir.path()).args(args).output();
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (Run::from(a.unwrap()), Run::from(b.unwrap()));
    a.expect_code(0);
    b.expect_code(0);
    let (va, vb) = (json(&a), json(&b));
    for (i, db) in all.iter().enumerate() {
        let name = format!("t{}", i + 1);
        assert_eq!(ledger(db).await, "1,2,3");
        assert_eq!(db.count("SELECT * FROM a").await, 1);
        let applied = target(&va, &name)["applied"].as_u64().unwrap()
            + target(&vb, &name)["applied"].as_u64().unwrap();
        assert_eq!(
            applied, 3,
            "{name}: each migration applied by exactly one run"
        );
    }
}

#[tokio::test]
async fn a_drifted_target_is_reported_and_not_migrated() {
    let d = dbs(&suite_admin(), "fl_drift", 3).await;
    let dir = project("fl_drift", MIGRATIONS, &fleet_toml("", &named("t", &d)));
    fleet(dir.path(), &["migrate", "--to", "2"])
        .await
        .expect_code(0);
    // t1's copy of migration 1 was applied from a file that has been edited since.
    d[0].exec("UPDATE realmguard.migrations SET checksum = 'sha256:edited' WHERE version = 1")
        .await;
    let r = fleet(dir.path(), &["migrate", "--format", "json"]).await;
    r.expect_code(1);
    let v = json(&r);
    let t1 = target(&v, "t1");
    assert_eq!(t1["state"], "drifted");
    assert!(t1["drift"][0]
        .as_str()
        .unwrap()
        .contains("migration 1 (migrations/0001_a.sql) was changed"));
    assert_eq!(ledger(&d[0]).await, "1,2");
    assert_eq!(ledger(&d[1]).await, "1,2,3");
    assert_eq!(target(&v, "t2")["state"], "ok");
    let st = fleet(dir.path(), &["status", "--format", "json"]).await;
    st.expect_code(1);
    assert_eq!(target(&json(&st), "t1")["state"], "drifted");
}

#[tokio::test]
async fn only_limits_the_run_and_names_an_unknown_target() {
    let d = dbs(&suite_admin(), "fl_only", 3).await;
    let dir = project("fl_only", MIGRATIONS, &fleet_toml("", &named("t", &d)));
    let r = fleet(
        dir.path(),
        &["migrate", "--only", "t1,t3", "--format", "json"],
    )
    .await;
    r.expect_code(0);
    assert_eq!(json(&r)["summary"]["targets"], 2);
    assert_eq!(ledger(&d[0]).await, "1,2,3");
    assert_eq!(ledger(&d[1]).await, "none");
    assert_eq!(ledger(&d[2]).await, "1,2,3");
    let st = fleet(dir.path(), &["status", "--format", "json"]).await;
    st.expect_code(1);
    let v = json(&st);
    assert_eq!(v["ok"], false, "a fleet at mixed versions is not ok");
    assert_eq!(
        v["summary"]["versions"],
        serde_json::json!({"0": 1, "3": 2})
    );
    let bad = fleet(dir.path(), &["migrate", "--only", "t1,nosuch"]).await;
    bad.expect_one_line_error();
    bad.expect_stderr("`nosuch`");
    assert_eq!(ledger(&d[1]).await, "none");
}

#[tokio::test]
async fn targets_from_a_query_on_the_hub() {
    let hub = TestDb::new("fl_from").await;
    let w1 = TestDb::new("fl_from").await;
    let w2 = TestDb::on(&second().url("postgres"), "fl_from").await;
    hub.exec(&format!(
        "CREATE TABLE instances (id text, database_url text);
         INSERT INTO instances VALUES ('worker-1', '{}'), ('worker-2', '{}')",
        w1.url, w2.url
    ))
    .await;
    let toml = format!(
        "{}\n[targets_from]\nurl_env = \"RG_FLEET_HUB_URL\"\nquery = \"SELECT id AS name, database_url AS url FROM instances ORDER BY id\"\n",
        fleet_toml("", &[("hub".into(), hub.url.clone(), Some("canary"))])
    );
    let dir = project("fl_from", MIGRATIONS, &toml);
    let out = realmguard_cmd(dir.path())
        .env("RG_FLEET_HUB_URL", &hub.url)
        .args(["fleet", "migrate", "--format", "json"])
        .output()
        .await
        .unwrap();
    let r = Run::from(out);
    r.expect_code(0);
    let v = json(&r);
    assert_eq!(v["summary"]["ok"], 3);
    assert_eq!(target(&v, "worker-2")["state"], "ok");
    for db in [&hub, &w1, &w2] {
        assert_eq!(ledger(db).await, "1,2,3");
    }
}

#[tokio::test]
async fn json_and_junit_reports() {
    let d = dbs(&suite_admin(), "fl_snap", 2).await;
    d[1].exec("CREATE TABLE b (x int)").await;
    let mut targets = named("t", &d);
    targets[0].2 = Some("canary");
    let dir = project(
        "fl_snap",
        MIGRATIONS,
        &fleet_toml("canary = \"canary\"\non_error = \"continue\"", &targets),
    );
    let r = fleet(dir.path(), &["migrate", "--format", "json"]).await;
    r.expect_code(2);
    let mut v = json(&r);
    for t in v["targets"].as_array_mut().unwrap() {
        t["duration_ms"] = 0.into();
    }
    insta::assert_json_snapshot!("fleet_migrate_json", v);
    let j = fleet(dir.path(), &["verify", "--format", "junit"]).await;
    j.expect_code(1);
    insta::assert_snapshot!("fleet_verify_junit", j.stdout);
}

#[tokio::test]
async fn no_password_is_printed() {
    let c = second();
    let admin = TestDb::on(&c.url("postgres"), "fl_pw").await;
    admin
        .exec("DO $$ BEGIN CREATE ROLE rg_pw_user LOGIN SUPERUSER PASSWORD 'fleet-S3cret'; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        .await;
    let other = TestDb::on(&c.url("postgres"), "fl_pw").await;
    let with_pw = |db: &TestDb, pw: &str| db.url.replace("postgres@", &format!("rg_pw_user:{pw}@"));
    let targets = vec![
        ("good".to_string(), with_pw(&admin, "fleet-S3cret"), None),
        ("wrong".to_string(), with_pw(&other, "wr0ng-Pass"), None),
    ];
    let dir = project(
        "fl_pw",
        MIGRATIONS,
        &fleet_toml("on_error = \"continue\"", &targets),
    );
    let m = fleet(dir.path(), &["migrate"]).await;
    m.expect_code(2);
    m.expect_stdout("password authentication failed");
    let runs = [
        m,
        fleet(dir.path(), &["status", "--format", "json"]).await,
        fleet(dir.path(), &["verify", "--format", "junit"]).await,
    ];
    for r in &runs {
        r.expect_not_printed("fleet-S3cret");
        r.expect_not_printed("wr0ng-Pass");
    }
    assert_eq!(ledger(&admin).await, "1,2,3");
}

#[tokio::test]
async fn a_malformed_fleet_file_or_an_unset_url_env_is_one_line() {
    let dir = TempDir::new("fl_bad");
    dir.write(MIGRATIONS);
    let missing = fleet(dir.path(), &["status"]).await;
    missing.expect_one_line_error();
    missing.expect_stderr("no fleet file schema/fleet.toml");

    dir.write(&[(
        "schema/fleet.toml",
        "[[target]]\nname = \"x\"\nurll = \"postgres://x/y\"\n",
    )]);
    let bad = fleet(dir.path(), &["migrate"]).await;
    bad.expect_one_line_error();
    bad.expect_stderr("invalid fleet file schema/fleet.toml line 3");
    bad.expect_stderr("urll");

    dir.write(&[(
        "schema/fleet.toml",
        "[[target]]\nname = \"hub\"\nurl_env = \"RG_FLEET_NO_SUCH_VAR\"\n",
    )]);
    let unset = fleet(dir.path(), &["migrate"]).await;
    unset.expect_one_line_error();
    unset.expect_stderr(
        "target `hub`: environment variable RG_FLEET_NO_SUCH_VAR (url_env) is not set",
    );
}

const SLOW: (&str, &str) = (
    "migrations/0002_slow.sql",
    "CREATE TABLE slow (id int PRIMARY KEY);\nSELECT pg_sleep(30);\n",
);

#[tokio::test]
async fn a_server_killed_mid_migration_is_one_clear_line_for_fleet_and_migrate() {
    // Commits must survive the crash: the suite's clusters turn synchronous_commit off.
    let c = Cluster::throwaway_with(
        std::process::id(),
        5432,
        &[("synchronous_commit", "on")],
        &[],
    )
    .expect("a cluster to kill");
    let d = TestDb::on(&c.url("postgres"), "fl_kill").await;
    let dir = project(
        "fl_kill",
        &[MIGRATIONS[0], SLOW],
        &fleet_toml("", &named("k", std::slice::from_ref(&d))),
    );
    let child = realmguard_cmd(dir.path())
        .args(["fleet", "migrate", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_statement(&d, "SELECT pg_sleep(30)").await;
    c.kill().unwrap();
    let r = Run::from(child.wait_with_output().await.unwrap());
    r.expect_code(2);
    let err = target(&json(&r), "k1")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("the connection to the server was lost during migration 2 at migrations/0002_slow.sql:2")
            && err.contains("nothing of migration 2 was committed"),
        "{err}"
    );
    assert!(!err.contains("expected to read"), "{err}");

    c.ensure_started().unwrap();
    assert_eq!(ledger(&d).await, "1");
    assert_eq!(d.scalar("to_regclass('slow') IS NULL").await, "true");

    // Plain migrate says the same in its one error line.
    let child = d
        .cmd(dir.path())
        .arg("migrate")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_statement(&d, "SELECT pg_sleep(30)").await;
    c.kill().unwrap();
    let r = Run::from(child.wait_with_output().await.unwrap());
    r.expect_one_line_error();
    r.expect_stderr("error: the connection to the server was lost during migration 2");
    r.expect_stderr("nothing of migration 2 was committed");
    assert!(!r.stderr.contains("cannot roll back"), "{}", r.stderr);
    c.ensure_started().unwrap();
    assert_eq!(ledger(&d).await, "1");
}

/// Migration 2 takes a second, so a signal or a failure can arrive while it runs.
const SECOND_LONG: (&str, &str) = (
    "migrations/0002_b.sql",
    "CREATE TABLE b (id int PRIMARY KEY);\nSELECT pg_sleep(1);\n",
);

#[tokio::test]
async fn ctrl_c_lets_the_running_migration_finish_and_starts_nothing_new() {
    let d = dbs(&suite_admin(), "fl_int", 3).await;
    let dir = project(
        "fl_int",
        &[MIGRATIONS[0], SECOND_LONG, MIGRATIONS[2]],
        &fleet_toml("", &named("t", &d)),
    );
    let child = realmguard_cmd(dir.path())
        .args(["fleet", "migrate", "--jobs", "1", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_statement(&d[0], "SELECT pg_sleep(1)").await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let r = Run::from(child.wait_with_output().await.unwrap());
    r.expect_code(2);
    r.expect_stderr("interrupted");
    let v = json(&r);
    let t1 = target(&v, "t1");
    assert_eq!(t1["state"], "failed");
    let err = t1["error"].as_str().unwrap();
    assert!(
        err.contains("stopped before migration 3 (interrupted (Ctrl-C))"),
        "{err}"
    );
    assert_eq!(ledger(&d[0]).await, "1,2", "the migration in hand finished");
    for (i, db) in d.iter().enumerate().skip(1) {
        assert_eq!(target(&v, &format!("t{}", i + 1))["state"], "not_started");
        assert_eq!(ledger(db).await, "none");
    }
    // A rerun resumes from what the ledgers say.
    let again = fleet(dir.path(), &["migrate", "--format", "json"]).await;
    again.expect_code(0);
    assert_eq!(target(&json(&again), "t1")["applied"], 1);
    for db in &d {
        assert_eq!(ledger(db).await, "1,2,3");
    }
}

#[tokio::test]
async fn under_stop_a_running_target_finishes_its_migration_after_another_fails() {
    let d = dbs(&suite_admin(), "fl_stop", 3).await;
    let slow_first = (
        "migrations/0001_a.sql",
        "CREATE TABLE a (id int PRIMARY KEY);\nSELECT pg_sleep(3);\n",
    );
    let dir = project(
        "fl_stop",
        &[slow_first, MIGRATIONS[1]],
        &fleet_toml("on_error = \"stop\"", &named("t", &d)),
    );
    // t1 fails after 1.5 s (another runner holds its migration lock) while t2 is inside its
    // three-second migration 1.
    let mut holder = d[0].conn().await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let r = fleet(
        dir.path(),
        &[
            "migrate",
            "--jobs",
            "2",
            "--lock-wait",
            "1500ms",
            "--format",
            "json",
        ],
    )
    .await;
    r.expect_code(2);
    let v = json(&r);
    assert!(target(&v, "t1")["error"]
        .as_str()
        .unwrap()
        .contains("holds the migration lock"));
    let t2 = target(&v, "t2");
    assert_eq!(t2["state"], "failed");
    assert!(t2["error"]
        .as_str()
        .unwrap()
        .contains("stopped before migration 2 (another target failed)"));
    assert_eq!(
        ledger(&d[1]).await,
        "1",
        "t2 finished the migration in hand"
    );
    assert_eq!(target(&v, "t3")["state"], "not_started");
    assert_eq!(ledger(&d[2]).await, "none");
    drop(holder);
}

#[tokio::test]
async fn init_local_writes_a_fleet_file_and_keeps_an_existing_one() {
    let home = TempDir::new("fl_init_home");
    let dir = TempDir::new("fl_init");
    dir.write(MIGRATIONS);
    let run = |args: &'static [&'static str]| {
        let mut c = realmguard_cmd(dir.path());
        c.env("REALMGUARD_HOME", home.path()).args(args);
        async move { Run::from(c.output().await.unwrap()) }
    };
    let init = run(&["fleet", "init", "--local", "2"]).await;
    init.expect_code(0);
    init.expect_stdout("hub, worker_1, worker_2");
    let m = run(&["fleet", "migrate", "--format", "json"]).await;
    m.expect_code(0);
    assert_eq!(json(&m)["summary"]["versions"], serde_json::json!({"3": 3}));
    let again = run(&["fleet", "init", "--local", "2"]).await;
    again.expect_one_line_error();
    again.expect_stderr("pass --force");
    run(&["fleet", "init", "--local", "3", "--force"])
        .await
        .expect_code(0);
    let st = run(&["fleet", "status", "--format", "json"]).await;
    st.expect_code(1);
    assert_eq!(target(&json(&st), "worker_3")["version_after"], 0);
    run(&["embedded", "stop"]).await.expect_code(0);
}
