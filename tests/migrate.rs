//! migrate, status and baseline against a real PostgreSQL: what a DBA would check afterwards.

use crate::common::{TempDir, TestDb};
use std::time::{Duration, Instant};

const FIVE: &[(&str, &str)] = &[
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
    (
        "migrations/0004_d.sql",
        "CREATE TABLE d (id int PRIMARY KEY);\n",
    ),
    (
        "migrations/0005_e.sql",
        "CREATE TABLE e (id int PRIMARY KEY);\n",
    ),
];

async fn ledger_versions(db: &TestDb) -> String {
    db.scalar("SELECT coalesce(string_agg(version::text, ',' ORDER BY version), '') FROM realmguard.migrations WHERE success").await
}

#[tokio::test]
async fn applies_in_order_then_reruns_as_a_no_op() {
    let db = TestDb::new("apply").await;
    let dir = TempDir::new("apply");
    dir.write(FIVE);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_code(0);
    r.expect_stdout("Applied 5 migration(s)");
    assert_eq!(ledger_versions(&db).await, "1,2,3,4,5");
    assert_eq!(
        db.scalar("SELECT checksum FROM realmguard.migrations WHERE version = 1")
            .await
            .len(),
        71
    );
    assert_eq!(db.count("SELECT * FROM a").await, 1);

    let again = db.run(dir.path(), &["migrate"]).await;
    again.expect_code(0);
    again.expect_stdout("Nothing to apply");
    // Run twice, the INSERT would have failed on the primary key: it ran once.
    assert_eq!(db.count("SELECT * FROM a").await, 1);

    let st = db
        .run(dir.path(), &["status", "--exit-code", "--format", "json"])
        .await;
    st.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["migrations"].as_array().unwrap().len(), 5);
    assert!(v["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["state"] == "applied"));
}

#[tokio::test]
async fn to_stops_at_a_version_and_status_reports_pending() {
    let db = TestDb::new("to").await;
    let dir = TempDir::new("to");
    dir.write(FIVE);
    db.run(dir.path(), &["migrate", "--to", "3"])
        .await
        .expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2,3");
    assert_eq!(db.scalar("SELECT to_regclass('d') IS NULL").await, "true");
    let st = db.run(dir.path(), &["status", "--exit-code"]).await;
    st.expect_code(1);
    assert_eq!(st.stdout.matches("pending").count(), 2, "{}", st.stdout);
    db.run(dir.path(), &["status"]).await.expect_code(0);
}

#[tokio::test]
async fn dry_run_prints_the_sql_and_touches_nothing() {
    let db = TestDb::new("dry").await;
    let dir = TempDir::new("dry");
    dir.write(FIVE);
    let r = db.run(dir.path(), &["migrate", "--dry-run"]).await;
    r.expect_code(0);
    r.expect_stdout("5 migration(s) would be applied");
    r.expect_stdout("CREATE TABLE c (id int PRIMARY KEY);");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'realmguard'")
            .await,
        "0"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_class WHERE relname IN ('a','b','c','d','e')")
            .await,
        "0"
    );
}

#[tokio::test]
async fn two_runners_at_once_apply_everything_exactly_once() {
    let db = TestDb::new("race").await;
    let dir = TempDir::new("race");
    // Slow migrations so that the two runners overlap; CREATE TABLE without IF NOT EXISTS and an
    // INSERT into a keyed table would fail or duplicate if anything ran twice.
    let files: Vec<(String, String)> = (1..=6)
        .map(|i| {
            (
                format!("migrations/{i:04}_m{i}.sql"),
                format!("CREATE TABLE t{i} (id int PRIMARY KEY);\nINSERT INTO t{i} VALUES ({i});\nSELECT pg_sleep(0.15);\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    dir.write(&refs);
    let mut c1 = db.cmd(dir.path());
    let mut c2 = db.cmd(dir.path());
    let (a, b) = tokio::join!(c1.arg("migrate").output(), c2.arg("migrate").output());
    let (a, b) = (
        crate::common::Run::from(a.unwrap()),
        crate::common::Run::from(b.unwrap()),
    );
    a.expect_code(0);
    b.expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2,3,4,5,6");
    for i in 1..=6 {
        assert_eq!(db.count(&format!("SELECT * FROM t{i}")).await, 1);
    }
    // One of them did the work, the other waited for the lock and found nothing left.
    let applied_by_each = [&a, &b].map(|r| r.stdout.contains("Applied 6 migration(s)"));
    assert!(
        applied_by_each.iter().filter(|x| **x).count() == 1,
        "a: {}\nb: {}",
        a.stdout,
        b.stdout
    );
    assert!(a.stdout.contains("Nothing to apply") || b.stdout.contains("Nothing to apply"));
}

#[tokio::test]
async fn lock_wait_gives_up_naming_the_holder() {
    let db = TestDb::new("lockwait").await;
    let dir = TempDir::new("lockwait");
    dir.write(FIVE);
    let mut holder = db.conn().await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(realmguard::migrate::runner::LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let r = db.run(dir.path(), &["migrate", "--lock-wait", "1s"]).await;
    r.expect_one_line_error();
    r.expect_stderr(&format!("pid {pid}"));
    assert_eq!(db.scalar("SELECT to_regclass('a') IS NULL").await, "true");
    drop(holder);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
}

#[tokio::test]
async fn a_failing_migration_rolls_back_completely_and_a_fixed_rerun_continues() {
    let db = TestDb::new("fail").await;
    let dir = TempDir::new("fail");
    dir.write(FIVE);
    dir.write(&[(
        "migrations/0003_c.sql",
        "CREATE TABLE c (id int PRIMARY KEY);\nINSERT INTO c VALUES (1);\n\nINSERT INTO c VALUES (1);\n",
    )]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_code(2);
    let err = r.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(err.contains("0003_c.sql:4"), "{err}");
    assert!(err.contains("23505"), "{err}");
    r.expect_stdout("Applied 2 migration(s)");
    assert_eq!(ledger_versions(&db).await, "1,2");
    assert_eq!(
        db.scalar("SELECT to_regclass('c') IS NULL").await,
        "true",
        "no partial DDL"
    );
    assert_eq!(
        db.count("SELECT * FROM realmguard.migrations WHERE version = 3")
            .await,
        0
    );

    dir.write(&[(
        "migrations/0003_c.sql",
        "CREATE TABLE c (id int PRIMARY KEY);\nINSERT INTO c VALUES (1);\n",
    )]);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2,3,4,5");
}

#[tokio::test]
async fn a_syntax_error_names_file_line_and_sqlstate() {
    let db = TestDb::new("syntax").await;
    let dir = TempDir::new("syntax");
    dir.write(&[(
        "migrations/0001_x.sql",
        "CREATE TABLE x (id int);\n\nCREATE TABLE y (\n  id int,\n  oops oops oops\n);\n",
    )]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_one_line_error();
    r.expect_stderr("0001_x.sql:5");
    r.expect_stderr("SQLSTATE 42");
    assert_eq!(db.scalar("SELECT to_regclass('x') IS NULL").await, "true");
}

#[tokio::test]
async fn an_edited_migration_stops_migrate_but_line_endings_do_not() {
    let db = TestDb::new("edit").await;
    let dir = TempDir::new("edit");
    dir.write(&FIVE[..2]);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);

    // Same text with CRLF line endings and a BOM: not an edit.
    dir.write(&[(
        "migrations/0001_a.sql",
        "\u{feff}CREATE TABLE a (id int PRIMARY KEY);\r\nINSERT INTO a VALUES (1);\r\n",
    )]);
    dir.write(&FIVE[2..3]);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2,3");

    dir.write(&[(
        "migrations/0002_b.sql",
        "CREATE TABLE b (id bigint PRIMARY KEY);\n",
    )]);
    dir.write(&FIVE[3..4]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_one_line_error();
    r.expect_stderr("migration 2");
    assert_eq!(
        ledger_versions(&db).await,
        "1,2,3",
        "nothing applied after the drift"
    );
    let st = db.run(dir.path(), &["status", "--exit-code"]).await;
    st.expect_code(1);
    st.expect_stdout("modified");

    db.run(dir.path(), &["migrate", "--allow-modified"])
        .await
        .expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2,3,4");
}

#[tokio::test]
async fn missing_and_out_of_order_files_stop_migrate() {
    let db = TestDb::new("order").await;
    let dir = TempDir::new("order");
    dir.write(&[FIVE[0], FIVE[2]]);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
    dir.write(&[FIVE[1]]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_one_line_error();
    assert!(
        r.stderr.contains("migration 2") && r.stderr.contains("--allow-out-of-order"),
        "{}",
        r.stderr
    );
    db.run(dir.path(), &["migrate", "--allow-out-of-order"])
        .await
        .expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2,3");

    std::fs::remove_file(dir.path().join("migrations/0003_c.sql")).unwrap();
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_one_line_error();
    assert!(
        r.stderr.contains("migration 3") && r.stderr.contains("missing"),
        "{}",
        r.stderr
    );
    let st = db.run(dir.path(), &["status"]).await;
    st.expect_stdout("missing file");
}

#[tokio::test]
async fn no_transaction_builds_indexes_concurrently_and_resumes_after_a_failure() {
    let db = TestDb::new("notx").await;
    let dir = TempDir::new("notx");
    dir.write(&[(
        "migrations/0001_t.sql",
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int);\nINSERT INTO t SELECT g, g % 10, g FROM generate_series(1, 1000) g;\n",
    )]);
    dir.write(&[(
        "migrations/0002_ix.sql",
        "-- realmguard:no-transaction\nCREATE INDEX CONCURRENTLY t_b_idx ON t (b);\n\nCREATE UNIQUE INDEX CONCURRENTLY t_a_key ON t (a);\n",
    )]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_code(2);
    let err = r.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        err.contains("0002_ix.sql:4") && err.contains("1 of 2 statements"),
        "{err}"
    );
    assert!(err.contains("INVALID"), "{err}");
    assert_eq!(
        db.scalar("SELECT statements_applied || '/' || statements_total || ' ' || success FROM realmguard.migrations WHERE version = 2").await,
        "1/2 false"
    );
    assert_eq!(
        db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_b_idx'::regclass")
            .await,
        "true"
    );
    let st = db.run(dir.path(), &["status", "--exit-code"]).await;
    st.expect_code(1);
    st.expect_stdout("partial (1/2 statements)");

    // Fix the data (the file is unchanged), rerun: it resumes at statement 2 and rebuilds the index.
    db.exec("UPDATE t SET a = id").await;
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_code(0);
    r.expect_stdout("resumed after 1");
    assert!(
        r.stderr.contains("INVALID"),
        "the leftover is reported: {}",
        r.stderr
    );
    assert_eq!(
        db.scalar("SELECT string_agg(c.relname || '=' || i.indisvalid, ',' ORDER BY c.relname) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 't'::regclass").await,
        "t_a_key=true,t_b_idx=true,t_pkey=true"
    );
    assert_eq!(
        db.scalar("SELECT success FROM realmguard.migrations WHERE version = 2")
            .await,
        "true"
    );
}

#[tokio::test]
async fn a_locked_table_makes_the_migration_retry_without_blocking_readers() {
    let db = TestDb::new("locked").await;
    let dir = TempDir::new("locked");
    dir.write(&[(
        "migrations/0001_t.sql",
        "CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t VALUES (1);\n",
    )]);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
    dir.write(&[(
        "migrations/0002_alter.sql",
        "ALTER TABLE t ADD COLUMN note text;\n",
    )]);

    // A long transaction that has read t: ALTER TABLE needs ACCESS EXCLUSIVE and must wait.
    let mut holder = db.conn().await;
    sqlx::raw_sql("BEGIN; SELECT * FROM t")
        .execute(&mut holder)
        .await
        .unwrap();

    let mut child = db.cmd(dir.path());
    child.args(["migrate", "--lock-timeout", "200ms", "--lock-retries", "50"]);
    let migrate = tokio::spawn(async move { child.output().await.unwrap() });

    // While it retries, a reader arriving behind it must not sit in the lock queue for long.
    let mut reader = db.conn().await;
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let t0 = Instant::now();
        sqlx::query("SELECT count(*) FROM t")
            .execute(&mut reader)
            .await
            .unwrap();
        worst = worst.max(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !migrate.is_finished(),
        "the migration must still be waiting while the lock is held"
    );
    assert!(
        worst < Duration::from_millis(1000),
        "a reader waited {worst:?} behind the migration"
    );
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();

    let out = crate::common::Run::from(migrate.await.unwrap());
    out.expect_code(0);
    out.expect_stderr("lock_timeout");
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note'"
        )
        .await,
        "1"
    );
}

#[tokio::test]
async fn a_lock_that_is_never_released_fails_clearly_after_the_retries() {
    let db = TestDb::new("lockfail").await;
    let dir = TempDir::new("lockfail");
    dir.write(&[(
        "migrations/0001_t.sql",
        "CREATE TABLE t (id int PRIMARY KEY);\n",
    )]);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
    dir.write(&[(
        "migrations/0002_alter.sql",
        "ALTER TABLE t ADD COLUMN note text;\n",
    )]);
    let mut holder = db.conn().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let r = db
        .run(
            dir.path(),
            &["migrate", "--lock-timeout", "100ms", "--lock-retries", "2"],
        )
        .await;
    r.expect_code(2);
    let err = r.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        err.contains("3 attempts") && err.contains("55P03") && err.contains("0002_alter.sql:1"),
        "{err}"
    );
    assert_eq!(
        db.count("SELECT * FROM realmguard.migrations WHERE version = 2")
            .await,
        0
    );
}

#[tokio::test]
async fn baseline_marks_versions_without_running_them() {
    let db = TestDb::new("baseline").await;
    let dir = TempDir::new("baseline");
    dir.write(FIVE);
    // An existing database that already has a and b.
    db.exec("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);")
        .await;
    let r = db.run(dir.path(), &["baseline", "--version", "2"]).await;
    r.expect_code(0);
    r.expect_stdout("Marked 2 migration(s)");
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2,3,4,5");
    assert_eq!(
        db.count("SELECT * FROM a").await,
        0,
        "the baselined INSERT did not run"
    );
    let st = db.run(dir.path(), &["status"]).await;
    st.expect_stdout("applied (baseline)");
}

/// A database where sqlx-cli applied versions 1 and 2 of FIVE (their effects and its history
/// table with its SHA-384 checksums), and a directory holding all five files.
async fn sqlx_cli_applied_two(tag: &str) -> (TestDb, TempDir) {
    let db = TestDb::new(tag).await;
    let dir = TempDir::new(tag);
    dir.write(FIVE);
    db.exec(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
          installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
          checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
         CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1); CREATE TABLE b (id int PRIMARY KEY);",
    )
    .await;
    let files = realmguard::migrate::source::load_dir(&dir.path().join("migrations")).unwrap();
    let mut conn = db.conn().await;
    for f in &files[..2] {
        sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, $2, true, $3, 1000)")
            .bind(f.version)
            .bind(&f.description)
            .bind(&f.sqlx_checksum)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    (db, dir)
}

#[tokio::test]
async fn adopts_sqlx_cli_history() {
    let (db, dir) = sqlx_cli_applied_two("sqlx").await;
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_code(0);
    r.expect_stdout("Adopted 2 migration(s)");
    r.expect_stdout("Applied 3 migration(s)");
    assert_eq!(ledger_versions(&db).await, "1,2,3,4,5");
    assert_eq!(
        db.count("SELECT * FROM a").await,
        1,
        "version 1 was not run again"
    );
    db.run(dir.path(), &["status", "--exit-code"])
        .await
        .expect_code(0);
}

#[tokio::test]
async fn baseline_adopts_sqlx_cli_history_first() {
    // sqlx-cli applied 1 and 2; the DBA baselines up to 3 (applied by hand). Version 2 must come
    // from sqlx's history, and a later migrate must run only 4 and 5.
    let (db, dir) = sqlx_cli_applied_two("sqlxbase").await;
    db.run(dir.path(), &["baseline", "--version", "3"])
        .await
        .expect_code(0);
    assert_eq!(
        db.scalar("SELECT string_agg(version || ':' || applied_by, ',' ORDER BY version) FROM realmguard.migrations WHERE version <= 2")
            .await,
        "1:sqlx-cli,2:sqlx-cli"
    );
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_code(0);
    r.expect_stdout("Applied 2 migration(s)");
    assert_eq!(ledger_versions(&db).await, "1,2,3,4,5");
}

#[tokio::test]
async fn transaction_control_inside_a_file_is_refused_before_running() {
    let db = TestDb::new("txctl").await;
    let dir = TempDir::new("txctl");
    dir.write(&[(
        "migrations/0001_x.sql",
        "BEGIN;\nCREATE TABLE x (id int);\nCOMMIT;\n",
    )]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_one_line_error();
    r.expect_stderr("0001_x.sql:1");
    assert_eq!(db.scalar("SELECT to_regclass('x') IS NULL").await, "true");
}

#[tokio::test]
async fn the_projects_own_migrations_apply_and_delete_cascades_from_a_realm() {
    let db = TestDb::new("own").await;
    db.run(&crate::common::project_dir(), &["migrate"])
        .await
        .expect_code(0);
    db.exec(
        "INSERT INTO realms (id, name) VALUES ('w1', 'Worker 1');
         INSERT INTO users (id, realm_id, email) VALUES (1, 'hub', 'a@x'), (1, 'w1', 'a@x');
         INSERT INTO groups (id, realm_id, name) VALUES (1, 'hub', 'board'), (1, 'w1', 'board');
         INSERT INTO groups (id, realm_id, name, parent_id) VALUES (2, 'w1', 'sub', 1);
         INSERT INTO memberships (id, realm_id, user_id, group_id) VALUES (1, 'hub', 1, 1), (1, 'w1', 1, 2);
         INSERT INTO policy_statement_types (id, realm_id, code) VALUES (1, 'hub', 'BOARD_MEMBER'), (1, 'w1', 'BOARD_MEMBER');
         INSERT INTO membership_statements (id, realm_id, membership_id, statement_type_id) VALUES (1, 'hub', 1, 1), (1, 'w1', 1, 1);",
    )
    .await;
    // The same ids live in two realms; a cross-realm link is impossible.
    let mut c = db.conn().await;
    let cross = sqlx::raw_sql(
        "INSERT INTO memberships (id, realm_id, user_id, group_id) VALUES (2, 'w1', 1, 99)",
    )
    .execute(&mut c)
    .await
    .unwrap_err();
    assert_eq!(realmguard::db::sqlstate(&cross).as_deref(), Some("23503"));
    db.exec("DELETE FROM realms WHERE id = 'w1'").await;
    for t in [
        "users",
        "groups",
        "memberships",
        "policy_statement_types",
        "membership_statements",
    ] {
        assert_eq!(
            db.count(&format!("SELECT * FROM {t} WHERE realm_id = 'w1'"))
                .await,
            0,
            "{t}"
        );
        assert!(
            db.count(&format!("SELECT * FROM {t} WHERE realm_id = 'hub'"))
                .await
                > 0,
            "{t}"
        );
    }
}

const REALMS: (&str, &str) = (
    "migrations/0001_realms.sql",
    "CREATE TABLE realms (id text PRIMARY KEY);\nINSERT INTO realms VALUES ('hub');\n",
);
const GOOD: (&str, &str) = (
    "migrations/0002_good.sql",
    "CREATE TABLE good (\n  id bigint GENERATED BY DEFAULT AS IDENTITY,\n  realm_id text NOT NULL REFERENCES realms (id) ON DELETE CASCADE,\n  PRIMARY KEY (id, realm_id)\n);\n",
);

#[tokio::test]
async fn the_guard_rolls_back_a_migration_that_introduces_a_violation() {
    let db = TestDb::new("guard").await;
    let dir = TempDir::new("guard");
    // A legacy table that already breaks the rules: it must not block anything.
    db.exec("CREATE TABLE legacy (id int PRIMARY KEY, realm_id text)")
        .await;
    dir.write(&[REALMS, GOOD]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_code(0);
    assert!(
        r.stdout.contains("verify:"),
        "the summary is printed: {}",
        r.stdout
    );

    // Touching the legacy table without making it worse is fine.
    dir.write(&[(
        "migrations/0003_legacy_note.sql",
        "ALTER TABLE legacy ADD COLUMN note text;\n",
    )]);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);

    // A new realm table keyed on id alone is rolled back, with the rule and the table named.
    dir.write(&[(
        "migrations/0004_bad.sql",
        "CREATE TABLE bad (id bigint PRIMARY KEY, realm_id text NOT NULL REFERENCES realms (id) ON DELETE CASCADE);\n",
    )]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_code(1);
    assert!(
        r.stdout.contains("composite-primary-key") && r.stdout.contains("public.bad"),
        "{}",
        r.stdout
    );
    r.expect_stdout("rolled back");
    assert_eq!(db.scalar("SELECT to_regclass('bad') IS NULL").await, "true");
    assert_eq!(
        db.count("SELECT * FROM realmguard.migrations WHERE version = 4")
            .await,
        0
    );

    let r = db.run(dir.path(), &["migrate", "--allow-violations"]).await;
    r.expect_code(0);
    assert_eq!(
        db.scalar("SELECT to_regclass('bad') IS NOT NULL").await,
        "true"
    );
}

#[tokio::test]
async fn the_guard_sees_a_dropped_constraint() {
    let db = TestDb::new("guarddrop").await;
    let dir = TempDir::new("guarddrop");
    dir.write(&[REALMS, GOOD]);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
    // Dropping the realm foreign key leaves no new catalog row behind; the guard must see it.
    dir.write(&[(
        "migrations/0003_drop_fk.sql",
        "ALTER TABLE good DROP CONSTRAINT good_realm_id_fkey;\n",
    )]);
    let r = db.run(dir.path(), &["migrate", "--format", "json"]).await;
    r.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rules: Vec<&str> = v["rejected"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"realm-fk-missing"), "{rules:?}");
    assert_eq!(
        db.count("SELECT * FROM pg_constraint WHERE conname = 'good_realm_id_fkey'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_runner_killed_mid_migration_leaves_nothing_half_applied() {
    let db = TestDb::new("kill").await;
    let dir = TempDir::new("kill");
    dir.write(&[
        FIVE[0],
        (
            "migrations/0002_slow.sql",
            "CREATE TABLE slow (id int PRIMARY KEY);\nSELECT pg_sleep(2);\n",
        ),
    ]);
    let mut child = db.cmd(dir.path()).arg("migrate").spawn().unwrap();
    // Wait until migration 2 is running (its pg_sleep is visible), then SIGKILL the runner.
    let mut seen = false;
    for _ in 0..200 {
        if db.count("SELECT * FROM pg_stat_activity WHERE query LIKE '%SELECT pg_sleep(2)%' AND state = 'active' AND pid <> pg_backend_pid()").await > 0 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "migration 2 never started");
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    // The server notices the dead client and rolls back: no table, no ledger row, no lock left.
    let t0 = Instant::now();
    while db
        .count("SELECT * FROM pg_stat_activity WHERE query LIKE '%SELECT pg_sleep(2)%' AND pid <> pg_backend_pid()")
        .await
        > 0
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the killed runner's session lingers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        db.scalar("SELECT to_regclass('slow') IS NULL").await,
        "true"
    );
    assert_eq!(ledger_versions(&db).await, "1");
    let r = db.run(dir.path(), &["migrate", "--lock-wait", "5s"]).await;
    r.expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2");
}

#[tokio::test]
async fn the_guard_scopes_to_what_the_migration_changed() {
    let db = TestDb::new("touched").await;
    db.exec(
        "CREATE TABLE realms (id text PRIMARY KEY);
         CREATE TABLE p (id int, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, PRIMARY KEY (id, realm_id));
         CREATE TABLE q (id int PRIMARY KEY);",
    )
    .await;
    let touched = |sql: &'static str| {
        let db = &db;
        async move {
            let mut c = db.conn().await;
            sqlx::raw_sql("BEGIN").execute(&mut c).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            let mut t = realmguard::migrate::guard::touched_tables(&mut c)
                .await
                .unwrap();
            sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
            t.sort();
            t.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
        }
    };
    // A new table referencing realms: realms is only locked, not changed.
    assert_eq!(
        touched("CREATE TABLE c (id int, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, PRIMARY KEY (id, realm_id))").await,
        "c"
    );
    assert_eq!(touched("ALTER TABLE q ADD COLUMN realm_id text").await, "q");
    // A new table referencing p and realms: p is locked like realms, and p's own older key to
    // realms does not make p changed (only a key this transaction wrote marks the child).
    assert_eq!(
        touched("CREATE TABLE c2 (id int, realm_id text NOT NULL REFERENCES realms, p_id int, PRIMARY KEY (id, realm_id), FOREIGN KEY (p_id, realm_id) REFERENCES p (id, realm_id))").await,
        "c2"
    );
    // A key added by a subtransaction (an EXCEPTION block) still marks its owner.
    assert_eq!(
        touched("DO $$ BEGIN ALTER TABLE p ADD FOREIGN KEY (id) REFERENCES q (id); EXCEPTION WHEN others THEN RAISE; END $$").await,
        "p"
    );
    assert_eq!(
        touched("ALTER TABLE q ADD FOREIGN KEY (id) REFERENCES q (id)").await,
        "q"
    );
    // Dropping a foreign key changes both ends; a drop leaves no catalog row to find, the lock does.
    assert_eq!(
        touched("ALTER TABLE p DROP CONSTRAINT p_realm_id_fkey").await,
        "p,realms"
    );
    assert_eq!(
        touched("INSERT INTO q VALUES (1); SELECT * FROM p").await,
        ""
    );
}

/// Applies REALMS, GOOD and `then` (versions 3 and 4, expected to pass the guard), then a
/// version 5 made of `violating`, which the guard must roll back: the ledger stays at 1-4.
async fn guarded_after(name: &str, then: &[(&str, &str)], violating: &str) -> TestDb {
    let db = TestDb::new(name).await;
    let dir = TempDir::new(name);
    dir.write(&[REALMS, GOOD]);
    dir.write(then);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2,3,4");
    dir.write(&[("migrations/0005_unique.sql", violating)]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_code(1).expect_stdout("unique-without-realm");
    assert_eq!(ledger_versions(&db).await, "1,2,3,4");
    db
}

/// The fix for a unique index with an expression and a predicate is written from the index's own
/// definition texts, which the guard reads by a statement of its own, only for such an index
/// whose key lacks the realm column: the rejection must still show them, and a clean index of
/// the same shape (realm column included) must not be judged.
#[tokio::test]
async fn the_guard_fix_of_an_expression_index_shows_its_definition() {
    let then = [
        (
            "migrations/0003_email.sql",
            "ALTER TABLE good ADD COLUMN email text, ADD COLUMN deleted bool;\n",
        ),
        (
            "migrations/0004_clean.sql",
            "CREATE UNIQUE INDEX good_code ON good (lower(email), realm_id) WHERE NOT deleted;\n",
        ),
    ];
    let violating =
        "CREATE UNIQUE INDEX good_lower_email ON good (lower(email)) WHERE NOT deleted;\n";
    let db = guarded_after("guard_defs", &then, violating).await;
    // Again, for the message: the fix keeps the expression and the predicate.
    let dir = TempDir::new("guard_defs_again");
    dir.write(&[REALMS, GOOD]);
    dir.write(&then);
    dir.write(&[("migrations/0005_unique.sql", violating)]);
    db.run(dir.path(), &["migrate"])
        .await
        .expect_code(1)
        .expect_stdout("unique index good_lower_email (partial, on an expression)")
        .expect_stdout(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS good_lower_email_realm ON public.good (lower(email), realm_id) WHERE NOT deleted;",
        );
    assert_eq!(
        db.count("SELECT 1 FROM pg_class WHERE relname = 'good_lower_email'")
            .await,
        0
    );
}

/// The guard's read is a statement prepared on the migrating session; a migration that runs
/// `DEALLOCATE ALL` takes it away. That migration and the ones after it must still be applied and
/// judged. (The runner prepares the read again so later batches keep it; that saves time and is
/// not what this test checks.)
#[tokio::test]
async fn a_migration_that_deallocates_everything_is_still_guarded() {
    guarded_after(
        "dealloc",
        &[
            (
                "migrations/0003_dealloc.sql",
                "DEALLOCATE ALL;\nALTER TABLE good ADD COLUMN note text;\n",
            ),
            (
                "migrations/0004_more.sql",
                "ALTER TABLE good ADD COLUMN other text;\n",
            ),
        ],
        "DEALLOCATE ALL;\nALTER TABLE good ADD CONSTRAINT good_note_key UNIQUE (note);\n",
    )
    .await;
}

/// The guard's read runs through a temporary function of the migrating session; a migration that
/// runs `DISCARD TEMP` drops it. That migration and the ones after it must still be applied and
/// judged.
#[tokio::test]
async fn a_migration_that_discards_temporary_objects_is_still_guarded() {
    guarded_after(
        "discard",
        &[
            (
                "migrations/0003_discard.sql",
                "DISCARD TEMP;\nALTER TABLE good ADD COLUMN note text;\n",
            ),
            (
                "migrations/0004_more.sql",
                "ALTER TABLE good ADD COLUMN other text;\n",
            ),
        ],
        "DISCARD TEMP;\nALTER TABLE good ADD CONSTRAINT good_note_key UNIQUE (note);\n",
    )
    .await;
}

/// A database where the migrating role may not create temporary objects (REVOKE TEMPORARY): the
/// guard cannot have its temporary function, and must still run and reject.
#[tokio::test]
async fn a_role_without_the_temporary_privilege_is_still_guarded() {
    let db = TestDb::new("notemp").await;
    let role = format!("{}_mig", db.name);
    db.exec(&format!(
        "CREATE ROLE \"{role}\" LOGIN;
         REVOKE TEMPORARY ON DATABASE \"{db}\" FROM PUBLIC;
         GRANT CREATE ON DATABASE \"{db}\" TO \"{role}\";
         GRANT CREATE ON SCHEMA public TO \"{role}\";",
        db = db.name
    ))
    .await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    let run = |dir: &TempDir| {
        let mut c = db.cmd(dir.path());
        c.env("DATABASE_URL", url.as_str()).arg("migrate");
        async move { crate::common::Run::from(c.output().await.unwrap()) }
    };
    let dir = TempDir::new("notemp");
    dir.write(&[REALMS, GOOD]);
    run(&dir).await.expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2");
    dir.write(&[(
        "migrations/0003_unique.sql",
        "ALTER TABLE good ADD COLUMN code text;\nALTER TABLE good ADD CONSTRAINT good_code_key UNIQUE (code);\n",
    )]);
    run(&dir)
        .await
        .expect_code(1)
        .expect_stdout("unique-without-realm");
    assert_eq!(ledger_versions(&db).await, "1,2");
    db.exec(&format!(
        "REASSIGN OWNED BY \"{role}\" TO CURRENT_USER; DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""
    ))
    .await;
}

/// A guarded migration's COMMIT is sent at the head of the next migration's batch. When it fails
/// (a deferred constraint), the error is that migration's, at COMMIT, and nothing of it or of the
/// next one is left; the same when it is the last migration, committed alone.
#[tokio::test]
async fn a_migration_that_fails_at_commit_is_reported_and_the_next_does_not_run() {
    let db = TestDb::new("atcommit").await;
    let dir = TempDir::new("atcommit");
    dir.write(&[REALMS, GOOD]);
    let notes = |realm: &str| {
        format!(
            "CREATE TABLE notes (\n  id bigint,\n  realm_id text NOT NULL REFERENCES realms (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,\n  PRIMARY KEY (id, realm_id)\n);\nINSERT INTO notes VALUES (1, '{realm}');\n"
        )
    };
    let bad = notes("nowhere");
    dir.write(&[
        ("migrations/0003_notes.sql", bad.as_str()),
        (
            "migrations/0004_more.sql",
            "ALTER TABLE good ADD COLUMN other text;\n",
        ),
    ]);
    for last in [false, true] {
        if last {
            std::fs::remove_file(dir.path().join("migrations/0004_more.sql")).unwrap();
        }
        let r = db.run(dir.path(), &["migrate"]).await;
        r.expect_code(2);
        let err = r.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
        assert!(err.contains("migration 3 failed at"), "{err}");
        assert!(err.contains("0003_notes.sql"), "{err}");
        assert!(err.contains("at COMMIT"), "{err}");
        assert!(err.contains("23503"), "{err}");
        assert_eq!(ledger_versions(&db).await, "1,2");
        assert_eq!(
            db.scalar("SELECT to_regclass('notes') IS NULL").await,
            "true"
        );
        assert_eq!(
            db.count("SELECT 1 FROM pg_attribute WHERE attrelid = 'good'::regclass AND attname = 'other'")
                .await,
            0
        );
    }
    let good = notes("hub");
    dir.write(&[
        ("migrations/0003_notes.sql", good.as_str()),
        (
            "migrations/0004_more.sql",
            "ALTER TABLE good ADD COLUMN other text;\n",
        ),
    ]);
    db.run(dir.path(), &["migrate"]).await.expect_code(0);
    assert_eq!(ledger_versions(&db).await, "1,2,3,4");
    assert_eq!(db.count("SELECT 1 FROM notes").await, 1);
}

/// Migrations that change no table (functions, data, DO blocks): the guard's read finds nothing
/// to judge; they must still commit with their ledger row, and the next migration that does change
/// a table must still be judged.
#[tokio::test]
async fn the_guard_skips_nothing_it_should_judge() {
    let db = guarded_after(
        "guardskip",
        &[
            (
                "migrations/0003_function.sql",
                "CREATE FUNCTION good_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM good $$;\n",
            ),
            (
                "migrations/0004_data.sql",
                "INSERT INTO realms (id) SELECT 'r' || g FROM generate_series(1, 3) g;\nDO $$ BEGIN PERFORM good_count(); END $$;\n",
            ),
        ],
        // A unique key without the realm: a lock-taking change the guard must still reject.
        "ALTER TABLE good ADD COLUMN code text;\nALTER TABLE good ADD CONSTRAINT good_code_key UNIQUE (code);\n",
    )
    .await;
    assert_eq!(db.count("SELECT 1 FROM realms WHERE id LIKE 'r%'").await, 3);
}
