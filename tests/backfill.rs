//! `realmguard backfill` against a real PostgreSQL: the legacy fixture converts with every row and
//! link intact, under a concurrent writer using the old SQL, across SIGKILL and Ctrl-C, behind a
//! conflicting lock, and the preflight refuses what it must.

use crate::common::{project_dir, TempDir, TestDb};
use sqlx::{Connection, PgConnection};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The legacy schema filled with `n` memberships (n/10 users, n/50 groups, n/10 statements).
async fn legacy_db(tag: &str, n: u32) -> TestDb {
    legacy_fill(TestDb::new(tag).await, n).await
}

/// `db` with the legacy schema and `n` memberships, as [`legacy_db`] makes them.
async fn legacy_fill(db: TestDb, n: u32) -> TestDb {
    let schema = std::fs::read_to_string(project_dir().join("schema/legacy.sql")).unwrap();
    let gen = std::fs::read_to_string(project_dir().join("scripts/gen-legacy.sql")).unwrap();
    db.exec(&format!("SET legacy.n = {n};\n{schema}\n{gen}"))
        .await;
    db
}

/// [`legacy_db`] with `memberships.group_id` nullable (every row still has a group): the realm of
/// old memberships, and so of their statements, is no longer certain without looking, so both
/// are filled row by row in keyset batches (users and groups keep theirs in the catalog).
async fn legacy_db_rewrite(tag: &str, n: u32) -> TestDb {
    rewrite(legacy_db(tag, n).await).await
}

/// `memberships.group_id` made nullable: see [`legacy_db_rewrite`].
async fn rewrite(db: TestDb) -> TestDb {
    db.exec("ALTER TABLE memberships ALTER COLUMN group_id DROP NOT NULL")
        .await;
    db
}

fn config() -> String {
    project_dir()
        .join("schema/legacy.toml")
        .to_string_lossy()
        .into_owned()
}

/// `backfill <cmd>` with the legacy config and extra arguments.
async fn backfill(db: &TestDb, dir: &TempDir, cmd: &str, extra: &[&str]) -> crate::common::Run {
    let cfg = config();
    let mut args = vec!["--config", cfg.as_str(), "backfill", cmd];
    args.extend_from_slice(extra);
    db.run(dir.path(), &args).await
}

/// `backfill run` with the legacy config and extra arguments.
async fn run(db: &TestDb, dir: &TempDir, extra: &[&str]) -> crate::common::Run {
    backfill(db, dir, "run", extra).await
}

/// `realmguard --config rg.toml --format json backfill <cmd>` with `toml` written to `dir/rg.toml`,
/// and its JSON output.
async fn backfill_json(
    db: &TestDb,
    dir: &TempDir,
    toml: &str,
    cmd: &str,
) -> (crate::common::Run, serde_json::Value) {
    dir.write(&[("rg.toml", toml)]);
    let cfg = dir.path().join("rg.toml");
    let r = db
        .run(
            dir.path(),
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--format",
                "json",
                "backfill",
                cmd,
            ],
        )
        .await;
    let doc = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
    (r, doc)
}

/// A run that failed after printing progress: exit 2, the last stderr line is the error.
fn expect_error_last(r: &crate::common::Run) {
    r.expect_code(2);
    let last = r.stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("error: "), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

/// Every (child id, parent id) link of the fixture, as text, sorted.
async fn links(db: &TestDb) -> Vec<BTreeSet<String>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT id || ':' || coalesce(parent_id::text, '-') FROM groups",
        "SELECT id::text FROM users",
        "SELECT id || ':' || user_id || ':' || group_id FROM memberships",
        "SELECT id || ':' || membership_id FROM membership_statements",
    ] {
        let mut c = db.conn().await;
        let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap();
        out.push(rows.into_iter().collect());
    }
    out
}

/// The schema shape of the converted tables and a digest of their rows: what "the same end
/// state" means after an interrupted run.
async fn end_state(db: &TestDb) -> Vec<String> {
    let mut c = db.conn().await;
    let mut out = Vec::new();
    for sql in [
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1",
        "SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1",
        "SELECT pg_get_indexdef(indexrelid) || ' ' || indisvalid FROM pg_index
         WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace) ORDER BY 1",
        "SELECT tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
        "SELECT md5(string_agg(id || ':' || realm_id || ':' || user_id || ':' || group_id, ',' ORDER BY id)) FROM memberships",
        "SELECT md5(string_agg(id || ':' || realm_id || ':' || membership_id, ',' ORDER BY id)) FROM membership_statements",
        "SELECT md5(string_agg(id || ':' || realm_id || ':' || coalesce(parent_id::text, '-'), ',' ORDER BY id)) FROM groups",
        "SELECT md5(string_agg(id || ':' || realm_id, ',' ORDER BY id)) FROM users",
    ] {
        let rows: Vec<Option<String>> = sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap();
        out.extend(rows.into_iter().map(|r| r.unwrap_or_default()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_fixture_converts_with_every_row_and_link_intact() {
    let db = legacy_db("bf_convert", 3000).await;
    let dir = TempDir::new("bf-convert");
    let before = links(&db).await;
    let sizes =
        "SELECT string_agg(c.relname || ' ' || pg_relation_size(c.oid), ', ' ORDER BY c.relname)
        FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
          AND c.relname IN ('users', 'groups', 'memberships', 'membership_statements')";
    let heap_before = db.scalar(sizes).await;

    // The plan names every table, its SQL and lock, in JSON too.
    let cfg = config();
    let plan = db
        .run(
            dir.path(),
            &["--config", &cfg, "--format", "json", "backfill", "plan"],
        )
        .await;
    plan.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps[0]["phase"], "realms");
    for t in ["users", "groups", "memberships", "membership_statements"] {
        assert!(
            steps
                .iter()
                .any(|s| s["table"] == t && s["phase"] == "primary-key"),
            "no primary-key step for {t}"
        );
    }
    assert!(steps
        .iter()
        .all(|s| s["lock"].is_string() && s["sql"].is_string()));
    // Every old row's realm is certain (roots, and children through NOT NULL validated keys),
    // so none is rewritten: no fill step, and the tables do not grow.
    assert!(
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["rewrite"] == false),
        "{}",
        plan.stdout
    );
    assert!(steps.iter().all(|s| s["phase"] != "fill"));

    let r = run(&db, &dir, &[]).await;
    r.expect_code(0);
    r.expect_stdout("4 tables converted");
    // A superuser compresses its index builds' WAL: no note about it.
    assert!(!r.stderr.contains("WAL uncompressed"), "{}", r.stderr);
    assert_eq!(db.scalar(sizes).await, heap_before);

    // Every row and every parent–child link is still there, every row in the default realm.
    assert_eq!(links(&db).await, before);
    for t in ["users", "groups", "memberships", "membership_statements"] {
        assert_eq!(
            db.count(&format!(
                "SELECT 1 FROM {t} WHERE realm_id IS DISTINCT FROM 'hub'"
            ))
            .await,
            0,
            "{t}"
        );
        assert_eq!(
            db.scalar(&format!(
                "SELECT string_agg(a.attname, ',' ORDER BY a.attname) FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                 WHERE i.indrelid = '{t}'::regclass AND i.indisprimary"
            ))
            .await,
            "id,realm_id",
            "{t}"
        );
    }
    assert_eq!(
        db.count("SELECT 1 FROM pg_constraint WHERE contype = 'f' AND NOT convalidated")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT 1 FROM pg_index WHERE NOT indisvalid")
            .await,
        0
    );
    // verify, run by the user afterwards, agrees: no error on any realm-scoped table.
    let v = db
        .run(
            dir.path(),
            &["--config", &cfg, "--format", "json", "verify"],
        )
        .await;
    v.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(report["summary"]["realm_scoped"], 4, "{}", v.stdout);
    assert_eq!(report["summary"]["errors"], 0, "{}", v.stdout);

    // A second realm's rows, written explicitly by the new application, cascade with it.
    db.exec(
        "INSERT INTO realms (id, name) VALUES ('w1', 'worker 1');
         INSERT INTO users (id, realm_id, email) VALUES (1, 'w1', 'a@w1');
         INSERT INTO groups (id, realm_id, name) VALUES (1, 'w1', 'g');
         INSERT INTO memberships (id, realm_id, user_id, group_id) VALUES (1, 'w1', 1, 1);
         INSERT INTO membership_statements (id, realm_id, membership_id, code) VALUES (1, 'w1', 1, 'X');",
    )
    .await;
    db.exec("DELETE FROM realms WHERE id = 'w1'").await;
    assert_eq!(links(&db).await, before);
    assert_eq!(
        db.count("SELECT 1 FROM memberships WHERE realm_id = 'w1'")
            .await,
        0
    );
    // Deleting a hub group takes its memberships and their statements with it.
    let doomed = db
        .count("SELECT 1 FROM memberships WHERE group_id = 2")
        .await;
    assert!(doomed > 0);
    db.exec("DELETE FROM groups WHERE id = 2").await;
    assert_eq!(
        db.count("SELECT 1 FROM memberships WHERE group_id = 2")
            .await,
        0
    );

    // The old application's SQL keeps working: realm filled by the triggers.
    db.exec("INSERT INTO groups (name) VALUES ('new'); INSERT INTO memberships (user_id, group_id) VALUES (3, 3)")
        .await;
    assert_eq!(
        db.count("SELECT 1 FROM memberships WHERE realm_id IS NULL")
            .await,
        0
    );

    // Done means done: nothing left to plan, a rerun is a no-op, status says finished.
    let again = run(&db, &dir, &[]).await;
    again.expect_code(0);
    again.expect_stdout("nothing to do");
    let status = backfill(&db, &dir, "status", &["--format", "json"]).await;
    status.expect_code(0);
    let s: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(s["steps_done"], s["steps_total"]);
    assert!(s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["phase"] == "done"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_parents_without_config_is_refused_in_one_line() {
    let db = legacy_db("bf_ambiguous", 100).await;
    let dir = TempDir::new("bf-ambiguous");
    dir.write(&[("rg.toml", "realm_scoped = [\"groups\"]\n")]);
    let cfg = dir.path().join("rg.toml");
    let r = db
        .run(
            dir.path(),
            &["--config", cfg.to_str().unwrap(), "backfill", "plan"],
        )
        .await;
    r.expect_one_line_error();
    r.expect_stderr("memberships_group_id_fkey");
    r.expect_stderr("[backfill.parent]");
}

/// What the writer did through the old SQL, to check afterwards.
#[derive(Default)]
struct Written {
    groups: Vec<i64>,
    memberships: Vec<(i64, i64)>,
    moved: Vec<(i64, i64)>,
    deleted: Vec<i64>,
    errors: Vec<String>,
}

/// The unchanged application: inserts, updates and deletes without ever naming realm_id.
async fn old_app_writer(url: String, stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) -> Written {
    let mut c = PgConnection::connect(&url).await.unwrap();
    let mut w = Written::default();
    let mut i: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let res: Result<(), sqlx::Error> = async {
            let g: i64 = sqlx::query_scalar("INSERT INTO groups (name) VALUES ($1) RETURNING id")
                .bind(format!("w{i}"))
                .fetch_one(&mut c)
                .await?;
            w.groups.push(g);
            let m: i64 = sqlx::query_scalar(
                "INSERT INTO memberships (user_id, group_id) VALUES ($1, $2) RETURNING id",
            )
            .bind(1 + i % 50)
            .bind(g)
            .fetch_one(&mut c)
            .await?;
            w.memberships.push((m, g));
            sqlx::query("INSERT INTO membership_statements (membership_id, code) VALUES ($1, 'W')")
                .bind(m)
                .execute(&mut c)
                .await?;
            // Move an old membership to another old group (fixture ids spread over the table).
            let old = 2 + (i * 37) % 2990;
            let to = 1 + i % 50;
            if old % 10 != 7 && old % 10 != 1 {
                sqlx::query("UPDATE memberships SET group_id = $2 WHERE id = $1")
                    .bind(old)
                    .bind(to)
                    .execute(&mut c)
                    .await?;
                w.moved.push((old, to));
            }
            // Delete an old membership no statement refers to (ids ≡ 1 mod 10).
            let del = 1 + ((i * 10) % 2990);
            let n = sqlx::query("DELETE FROM memberships WHERE id = $1")
                .bind(del)
                .execute(&mut c)
                .await?
                .rows_affected();
            if n > 0 {
                w.deleted.push(del);
            }
            Ok(())
        }
        .await;
        if let Err(e) = res {
            w.errors.push(e.to_string());
        }
        ops.fetch_add(1, Ordering::SeqCst);
    }
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writer_using_the_old_sql_sees_no_error_and_loses_nothing() {
    let db = legacy_db("bf_writer", 3000).await;
    concurrent_writer_loses_nothing(db, "bf-writer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writer_loses_nothing_while_rows_are_filled_in_batches() {
    let db = legacy_db_rewrite("bf_writer_fill", 3000).await;
    concurrent_writer_loses_nothing(db, "bf-writer-fill").await;
}

/// The old application writes through the whole run: it sees no error, and every row it wrote
/// ends in the right realm with its last parent.
async fn concurrent_writer_loses_nothing(db: TestDb, dir: &str) {
    let dir = TempDir::new(dir);
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(old_app_writer(db.url.clone(), stop.clone(), ops.clone()));
    // Let the writer get going, then run with small batches and a pause between steps so the
    // writer overlaps every phase.
    while ops.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cfg = config();
    let out = db
        .cmd(dir.path())
        .args(["--config", &cfg, "backfill", "run", "--batch-ms", "5"])
        .env("REALMGUARD_BACKFILL_PAUSE_MS", "15")
        .output()
        .await
        .unwrap();
    let r = crate::common::Run::from(out);
    let during = ops.load(Ordering::SeqCst);
    // Keep writing a little after the run: the triggers keep the old SQL working.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let w = writer.await.unwrap();
    r.expect_code(0);
    assert!(during > 20, "the writer barely ran ({during} rounds)");
    assert!(w.errors.is_empty(), "writer errors: {:#?}", w.errors);

    let mut c = db.conn().await;
    for g in &w.groups {
        let realm: Option<String> = sqlx::query_scalar("SELECT realm_id FROM groups WHERE id = $1")
            .bind(g)
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(realm.as_deref(), Some("hub"), "group {g}");
    }
    for (m, g) in &w.memberships {
        let row: (i64, String) =
            sqlx::query_as("SELECT group_id, realm_id FROM memberships WHERE id = $1")
                .bind(m)
                .fetch_one(&mut c)
                .await
                .unwrap_or_else(|e| panic!("membership {m} written by the app is gone: {e}"));
        assert_eq!(row, (*g, "hub".to_string()), "membership {m}");
        assert_eq!(
            db.count(&format!(
                "SELECT 1 FROM membership_statements WHERE membership_id = {m} AND realm_id = 'hub'"
            ))
            .await,
            1
        );
    }
    // The last move of each membership stands; deleted ones are gone.
    let mut last = std::collections::BTreeMap::new();
    for (m, g) in &w.moved {
        last.insert(*m, *g);
    }
    for (m, g) in last {
        if w.deleted.contains(&m) {
            continue;
        }
        assert_eq!(
            db.scalar(&format!("SELECT group_id FROM memberships WHERE id = {m}"))
                .await,
            g.to_string()
        );
    }
    for d in &w.deleted {
        assert_eq!(
            db.count(&format!("SELECT 1 FROM memberships WHERE id = {d}"))
                .await,
            0
        );
    }
    for t in ["users", "groups", "memberships", "membership_statements"] {
        assert_eq!(
            db.count(&format!("SELECT 1 FROM {t} WHERE realm_id IS NULL"))
                .await,
            0
        );
    }
}

/// A session that read `table` in a transaction it keeps open (its ACCESS SHARE lock blocks any
/// ACCESS EXCLUSIVE step), and its pid; `COMMIT` on it lets go.
/// A session that keeps querying `table` until stopped, noting its slowest query: how long a
/// lock step that queues for its lock holds up the application's readers.
struct Reader {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Duration, u32)>,
}

impl Reader {
    async fn start(db: &TestDb, table: &str) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let (mut c, sql) = (db.conn().await, format!("SELECT count(*) FROM {table}"));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let (mut worst, mut n) = (Duration::ZERO, 0);
                while !stop.load(Ordering::SeqCst) {
                    let t = Instant::now();
                    let _: i64 = sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap();
                    worst = worst.max(t.elapsed());
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (worst, n)
            }
        });
        Reader { stop, task }
    }

    async fn stop_and_expect_worst_under(self, limit: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let (worst, reads) = self.task.await.unwrap();
        assert!(worst < limit, "a reader waited {worst:?}");
        assert!(reads > 20, "the reader barely ran ({reads} queries)");
    }
}

/// Run `sql` on `conn`, expect it to fail with SQLSTATE `code`, and return the error.
async fn fails_with(conn: &mut PgConnection, sql: &str, code: &str) -> sqlx::Error {
    let err = sqlx::raw_sql(sql).execute(conn).await.unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some(code),
        "{err}"
    );
    err
}

async fn reading_in_a_transaction(db: &TestDb, table: &str) -> (PgConnection, i32) {
    let mut c = db.conn().await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("BEGIN; SELECT count(*) FROM {table};"))
        .execute(&mut c)
        .await
        .unwrap();
    (c, pid)
}

/// Start `backfill run` in the background with a pause between steps and batches.
fn spawn_run(db: &TestDb, dir: &TempDir, pause_ms: u32) -> tokio::process::Child {
    spawn_run_with(db, dir, pause_ms, &["--batch-ms", "1"])
}

/// [`spawn_run`] with these options for `backfill run`.
fn spawn_run_with(
    db: &TestDb,
    dir: &TempDir,
    pause_ms: u32,
    opts: &[&str],
) -> tokio::process::Child {
    let cfg = config();
    db.cmd(dir.path())
        .args(["--config", &cfg, "backfill", "run"])
        .args(opts)
        .env("REALMGUARD_BACKFILL_PAUSE_MS", pause_ms.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Poll `sql` (a count) until it is positive, for at most 30 s.
async fn wait_for(db: &TestDb, what: &str, sql: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut c = db.conn().await;
    loop {
        let n: Option<i64> = sqlx::query_scalar(sql).fetch_one(&mut c).await.ok();
        if n.unwrap_or(0) > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Wait until a step matching `cond` (a condition on realmguard.backfill_steps) is done.
async fn wait_for_step(db: &TestDb, what: &str, cond: &str) {
    let sql = format!(
        "SELECT count(*) FROM realmguard.backfill_steps WHERE ({cond}) AND done_at IS NOT NULL"
    );
    wait_for(db, what, &sql).await;
}

const MID_FILL: &str = "SELECT count(*) FROM realmguard.backfill_progress
    WHERE table_name = 'memberships' AND done_upto > key_min AND done_upto < bound";
const IN_FK_PHASE: &str = "SELECT count(*) FROM realmguard.backfill_steps
    WHERE phase = 'foreign-key' AND done_at IS NOT NULL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_fill_and_ddl_then_rerun_ends_in_the_same_state() {
    let reference = legacy_db_rewrite("bf_kill_ref", 2000).await;
    let victim = legacy_db_rewrite("bf_kill", 2000).await;
    let dir = TempDir::new("bf-kill");
    run(&reference, &dir, &[]).await.expect_code(0);

    let mut child = spawn_run(&victim, &dir, 10);
    wait_for(&victim, "the memberships fill", MID_FILL).await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let filled = victim
        .scalar(
            "SELECT rows_done FROM realmguard.backfill_progress WHERE table_name = 'memberships'",
        )
        .await;
    assert_ne!(filled, "0");

    let mut child = spawn_run(&victim, &dir, 10);
    wait_for(&victim, "the foreign-key phase", IN_FK_PHASE).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let status = backfill(&victim, &dir, "status", &[]).await;
    status.expect_code(0);
    status.expect_stdout("backfill run` continues");

    let r = run(&victim, &dir, &[]).await;
    r.expect_code(0);
    r.expect_stderr("resuming the recorded backfill");
    assert_eq!(end_state(&victim).await, end_state(&reference).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_moved_to_another_realm_mid_run_stops_the_run_with_a_fix_not_wrong_links() {
    // memberships' old rows take the default realm from the catalog because every group is in
    // it when the plan is made. A group given another realm after its own column step but
    // before memberships' breaks that: validating the composite key must stop the run, say
    // what to fix, and a run after the fix must finish with every link intact.
    let db = legacy_db("bf_moved", 500).await;
    let dir = TempDir::new("bf-moved");
    let child = spawn_run(&db, &dir, 300);
    wait_for_step(
        &db,
        "the groups column step",
        "table_name = 'groups' AND phase = 'column'",
    )
    .await;
    db.exec(
        "INSERT INTO realms (id, name) VALUES ('w1', 'worker 1');
         UPDATE groups SET realm_id = 'w1' WHERE id = 2",
    )
    .await;
    assert_eq!(
        db.count(
            "SELECT 1 FROM realmguard.backfill_steps
             WHERE table_name = 'memberships' AND phase = 'column' AND done_at IS NOT NULL"
        )
        .await,
        0,
        "the move came too late to test anything"
    );
    let r = crate::common::Run::from(child.wait_with_output().await.unwrap());
    r.expect_code(2);
    let last = r.stderr.lines().last().unwrap();
    assert!(
        last.contains("memberships_group_id_realm_id_fkey"),
        "{last}"
    );
    assert!(last.contains("not in their parent's realm"), "{last}");
    // Nothing links a membership to the wrong realm's group: the old key is still there.
    assert_eq!(
        db.count("SELECT 1 FROM pg_constraint WHERE conname = 'memberships_group_id_fkey'")
            .await,
        1
    );

    // The fix here: the group goes back (its members' users are all in the default realm, so
    // moving the memberships instead would break their other key).
    db.exec("UPDATE groups SET realm_id = 'hub' WHERE id = 2")
        .await;
    run(&db, &dir, &[]).await.expect_code(0);
    assert_eq!(
        db.count(
            "SELECT 1 FROM memberships m JOIN groups g ON g.id = m.group_id
             WHERE m.realm_id IS DISTINCT FROM g.realm_id"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_finishes_the_batch_and_stops_cleanly() {
    let db = legacy_db_rewrite("bf_sigint", 2000).await;
    let dir = TempDir::new("bf-sigint");
    let child = spawn_run(&db, &dir, 20);
    wait_for(&db, "the memberships fill", MID_FILL).await;
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let r = crate::common::Run::from(child.wait_with_output().await.unwrap());
    r.expect_code(2);
    r.expect_stderr("stopped after the batch");
    let last = r.stderr.lines().last().unwrap();
    assert!(last.starts_with("error: interrupted"), "{}", r.stderr);
    // The batches that committed are recorded; the rest of the table is still to do.
    assert_eq!(db.count(MID_FILL).await, 1);
    let r = run(&db, &dir, &[]).await;
    r.expect_code(0);
    assert_eq!(
        db.count("SELECT 1 FROM memberships WHERE realm_id IS NULL")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_lock_makes_the_step_retry_without_stalling_readers() {
    let db = legacy_db("bf_lock", 500).await;
    let dir = TempDir::new("bf-lock");
    // A session reads groups in a transaction it keeps open: ADD COLUMN needs ACCESS EXCLUSIVE.
    let (mut holder, holder_pid) = reading_in_a_transaction(&db, "groups").await;

    // With one retry allowed it gives up, naming the session in the way.
    let r = run(
        &db,
        &dir,
        &["--lock-timeout", "100ms", "--lock-retries", "1"],
    )
    .await;
    expect_error_last(&r);
    r.expect_stderr(&format!("pid {holder_pid}"));
    r.expect_stderr("gave up");

    // A reader keeps querying while the run waits; the holder lets go after a while.
    let reader = Reader::start(&db, "groups").await;
    let release = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    };
    let converted = async {
        let t = Instant::now();
        let r = run(
            &db,
            &dir,
            &["--lock-timeout", "200ms", "--lock-retries", "100"],
        )
        .await;
        (r, t.elapsed())
    };
    let ((r, took), ()) = tokio::join!(converted, release);
    // A queued ACCESS EXCLUSIVE blocks new readers only until its lock_timeout fires (200 ms);
    // generous slack for a shared 2-core machine, far below the 1.5 s the lock was held.
    reader
        .stop_and_expect_worst_under(Duration::from_millis(700))
        .await;
    r.expect_code(0);
    r.expect_stderr("lock not granted within 200ms");
    r.expect_stderr(&format!("pid {holder_pid}"));
    assert!(
        took >= Duration::from_millis(1400),
        "finished before the lock was released"
    );
    assert_eq!(
        db.count("SELECT 1 FROM groups WHERE realm_id IS NULL")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_without_superuser_converts_and_is_told_wal_stays_uncompressed() {
    let db = legacy_db("bf_owner", 300).await;
    let dir = TempDir::new("bf-owner");
    let (role, url) = owner_role(&db).await;
    let r = run_as(&db, &dir, &url, &[]).await;
    r.expect_code(0);
    let notes: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("WAL uncompressed"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", r.stderr);
    assert!(
        notes[0].contains(&format!("role {role} may not set wal_compression")),
        "{}",
        notes[0]
    );
    assert!(notes[0].contains("GRANT SET ON PARAMETER wal_compression"));
    assert_eq!(
        db.count("SELECT 1 FROM memberships WHERE realm_id IS DISTINCT FROM 'hub'")
            .await,
        0
    );
    drop_role(&db, &role).await;
}

/// A login role, no superuser, that owns the legacy tables and may create in the database, and
/// the URL that logs in as it.
async fn owner_role(db: &TestDb) -> (String, String) {
    let role = format!("{}_owner", db.name);
    db.exec(&format!(
        "CREATE ROLE \"{role}\" LOGIN;
         GRANT CREATE ON DATABASE \"{db}\" TO \"{role}\";
         GRANT CREATE ON SCHEMA public TO \"{role}\";
         ALTER TABLE users OWNER TO \"{role}\"; ALTER TABLE groups OWNER TO \"{role}\";
         ALTER TABLE memberships OWNER TO \"{role}\"; ALTER TABLE membership_statements OWNER TO \"{role}\";",
        db = db.name
    ))
    .await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    (role, url.to_string())
}

async fn drop_role(db: &TestDb, role: &str) {
    db.exec(&format!(
        "REASSIGN OWNED BY \"{role}\" TO CURRENT_USER; DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""
    ))
    .await;
}

/// `backfill run` with the legacy config, logged in through `url`.
async fn run_as(db: &TestDb, dir: &TempDir, url: &str, extra: &[&str]) -> crate::common::Run {
    let out = db
        .cmd(dir.path())
        .env("DATABASE_URL", url)
        .args(["--config", &config(), "backfill", "run"])
        .args(extra)
        .output()
        .await
        .unwrap();
    crate::common::Run::from(out)
}

#[tokio::test]
async fn max_replication_lag_is_refused_before_anything_runs_when_the_role_cannot_see_standbys() {
    let db = legacy_db("bf_lag_priv", 100).await;
    let dir = TempDir::new("bf-lag-priv");
    run(&db, &dir, &["--max-replication-lag", "lots"])
        .await
        .expect_code(2)
        .expect_stderr("not an amount of bytes");
    let (role, url) = owner_role(&db).await;
    run_as(&db, &dir, &url, &["--max-replication-lag", "64MB"])
        .await
        .expect_one_line_error()
        .expect_stderr("--max-replication-lag needs to read the standbys' replay positions")
        .expect_stderr(&format!("GRANT pg_monitor TO {role}"));
    // Refused before a step was recorded or anything changed.
    assert_eq!(db.count("SELECT 1 FROM realmguard.backfill_steps").await, 0);
    assert_eq!(
        db.count("SELECT 1 FROM pg_attribute WHERE attname = 'realm_id'")
            .await,
        0
    );
    db.exec(&format!("GRANT pg_monitor TO \"{role}\"")).await;
    // The suite's own server has no standby (the standby test has a primary of its own); a
    // server from DATABASE_URL may have some.
    let standbys = db.count("SELECT 1 FROM pg_stat_replication").await;
    let r = run_as(&db, &dir, &url, &["--max-replication-lag", "64MB"]).await;
    r.expect_code(0);
    if standbys == 0 {
        r.expect_stderr("note: no standby is connected now");
    }
    assert_eq!(
        db.count("SELECT 1 FROM memberships WHERE realm_id IS DISTINCT FROM 'hub'")
            .await,
        0
    );
    drop_role(&db, &role).await;
}

/// Set or resume replay on a standby: `what` is "pause" or "resume".
async fn replay(standby: &mut PgConnection, what: &str) {
    sqlx::query(&format!("SELECT pg_wal_replay_{what}()"))
        .execute(standby)
        .await
        .unwrap();
}

/// With the standby's replay paused, write over 32 MB of WAL it has not replayed: each switch
/// ends a 16 MB segment (a commit in between, so the next switch has something to end).
async fn lag_32mb(db: &TestDb) {
    for _ in 0..3 {
        db.exec("SELECT txid_current()").await;
        db.exec("SELECT pg_switch_wal()").await;
    }
    wait_for(
        db,
        "the standby to lag 32 MB",
        "SELECT count(*) FROM pg_stat_replication WHERE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 32 * 1024 * 1024",
    )
    .await;
}

/// `--max-replication-lag`: a standby whose replay is paused holds the run before its first step
/// and, paused again mid-fill, holds the fill between two batches; each time the run goes on once
/// the standby replays again, and ends converted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_standby_holds_the_run_until_it_catches_up() {
    let Some(pair) = crate::common::Replicated::start("lag") else {
        eprintln!("skipped: a standby needs the suite's own server binaries (DATABASE_URL is set)");
        return;
    };
    let db = TestDb::on(&pair.primary.url("postgres"), "bf_lag").await;
    let db = rewrite(legacy_fill(db, 40_000).await).await;
    let dir = TempDir::new("bf-lag");
    wait_for(
        &db,
        "the standby to stream",
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL",
    )
    .await;
    let mut sb = PgConnection::connect(&pair.standby_url()).await.unwrap();
    // An application committing now and then, as on any live primary: an idle primary sends
    // nothing, and a standby that receives nothing reports its replay position only every
    // wal_receiver_status_interval (10 s).
    let stop = Arc::new(AtomicBool::new(false));
    let app = tokio::spawn({
        let (mut c, stop) = (db.conn().await, stop.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                sqlx::query("SELECT txid_current()")
                    .execute(&mut c)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    replay(&mut sb, "pause").await;
    lag_32mb(&db).await;

    let spawn = || {
        let opts = ["--batch-ms", "5", "--max-replication-lag", "16MB"];
        spawn_run_with(&db, &dir, 20, &opts)
    };
    // Ctrl-C while it waits stops it at once, cleanly.
    let child = spawn();
    wait_for(
        &db,
        "the wait",
        "SELECT count(*) FROM realmguard.backfill_steps",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::process::Command::new("kill")
        .args(["-INT", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("Ctrl-C did not stop a run waiting for a standby")
        .unwrap();
    let r = crate::common::Run::from(out);
    r.expect_code(2)
        .expect_stderr("realmguard:     waiting: standby");
    assert!(
        r.stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("error: interrupted"),
        "{}",
        r.stderr
    );

    // Run again: the plan is recorded, and nothing happens while the standby lags.
    let child = spawn();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        db.count("SELECT 1 FROM realmguard.backfill_steps WHERE done_at IS NOT NULL")
            .await,
        0,
        "a step ran while the standby was 32 MB behind"
    );
    replay(&mut sb, "resume").await;

    // Mid-fill: the batch in flight when the lag grew may commit, then the fill stands still.
    wait_for(&db, "the fill to start", MID_FILL).await;
    replay(&mut sb, "pause").await;
    lag_32mb(&db).await;
    const DONE_UPTO: &str =
        "SELECT done_upto FROM realmguard.backfill_progress WHERE table_name = 'memberships'";
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = db.scalar(DONE_UPTO).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        db.scalar(DONE_UPTO).await,
        before,
        "the fill went on while the standby was 32 MB behind"
    );
    assert_eq!(
        db.count(MID_FILL).await,
        1,
        "the fill ended before the standby lagged: nothing was held"
    );
    replay(&mut sb, "resume").await;

    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the run did not finish after the standby caught up")
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    app.await.unwrap();
    let r = crate::common::Run::from(out);
    r.expect_code(0)
        .expect_stderr("of WAL not yet replayed (--max-replication-lag 16 MB)")
        .expect_stderr("standbys within --max-replication-lag after");
    assert!(
        r.stderr.matches("realmguard:     waiting: standby").count() >= 2,
        "{}",
        r.stderr
    );
    assert_eq!(
        db.count("SELECT 1 FROM memberships WHERE realm_id IS DISTINCT FROM 'hub'")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_refuses_long_transactions_invalid_indexes_and_forced_rls() {
    let db = legacy_db("bf_preflight", 200).await;
    let dir = TempDir::new("bf-preflight");

    let mut c = db.conn().await;
    // 1. FORCE ROW LEVEL SECURITY and a role without BYPASSRLS: a fill would update nothing
    //    and a foreign-key validation would not find the rows.
    let role = format!("{}_app", db.name);
    sqlx::raw_sql(&format!(
        "CREATE ROLE \"{role}\" LOGIN;
         GRANT CREATE ON DATABASE \"{db}\" TO \"{role}\";
         GRANT CREATE ON SCHEMA public TO \"{role}\";
         ALTER TABLE users OWNER TO \"{role}\"; ALTER TABLE groups OWNER TO \"{role}\";
         ALTER TABLE memberships OWNER TO \"{role}\"; ALTER TABLE membership_statements OWNER TO \"{role}\";
         ALTER TABLE groups ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;",
        db = db.name
    ))
    .execute(&mut c)
    .await
    .unwrap();
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    let out = db
        .cmd(dir.path())
        .env("DATABASE_URL", url.as_str())
        .args(["--config", &config(), "backfill", "run"])
        .output()
        .await
        .unwrap();
    let r = crate::common::Run::from(out);
    r.expect_one_line_error();
    r.expect_stderr("public.groups");
    r.expect_stderr("FORCE row level security");
    r.expect_stderr(&role);

    // 2. An idle-in-transaction session older than --max-transaction-age.
    let mut idle = db.conn().await;
    let idle_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut idle)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; SELECT 1;")
        .execute(&mut idle)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = run(&db, &dir, &["--max-transaction-age", "1s"]).await;
    r.expect_one_line_error();
    r.expect_stderr(&format!("pid {idle_pid}"));
    r.expect_stderr("idle in transaction");
    sqlx::raw_sql("ROLLBACK").execute(&mut idle).await.unwrap();

    // 3. An invalid index left by a failed CREATE INDEX CONCURRENTLY.
    sqlx::raw_sql("INSERT INTO users (email, display_name) VALUES ('dup@example.com', 'User 1')")
        .execute(&mut c)
        .await
        .unwrap();
    assert!(sqlx::raw_sql(
        "CREATE UNIQUE INDEX CONCURRENTLY users_display_name_key ON users (display_name)"
    )
    .execute(&mut c)
    .await
    .is_err());
    let r = run(&db, &dir, &[]).await;
    r.expect_one_line_error();
    r.expect_stderr("users_display_name_key");
    r.expect_stderr("INVALID");
    sqlx::raw_sql("DROP INDEX users_display_name_key")
        .execute(&mut c)
        .await
        .unwrap();

    // Nothing was touched by the refused runs.
    assert_eq!(
        db.count("SELECT 1 FROM information_schema.columns WHERE column_name = 'realm_id'")
            .await,
        0
    );
    sqlx::raw_sql(&format!(
        "REASSIGN OWNED BY \"{role}\" TO CURRENT_USER; DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""
    ))
    .execute(&mut c)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_trigger_refuses_rather_than_writes_null() {
    // A half-converted parent: realm_id exists but one row has none yet.
    let db = TestDb::new("bf_refuse").await;
    db.exec(
        "CREATE TABLE p (id bigint PRIMARY KEY, realm_id text);
         CREATE TABLE c (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                         p_id bigint NOT NULL REFERENCES p (id));
         INSERT INTO p VALUES (1, 'hub'), (2, NULL);",
    )
    .await;
    let dir = TempDir::new("bf-refuse");
    let (plan, doc) = backfill_json(
        &db,
        &dir,
        "realm_scoped = [\"p\"]\nrealms_table = \"\"\n",
        "plan",
    )
    .await;
    plan.expect_code(0);
    // Install only the child's column and trigger, exactly as planned.
    for s in doc["steps"].as_array().unwrap() {
        if s["table"] == "c" && (s["phase"] == "column" || s["phase"] == "trigger") {
            db.exec(s["sql"].as_str().unwrap()).await;
        }
    }
    let mut conn = db.conn().await;
    // A parent with a realm: the child takes it.
    sqlx::raw_sql("INSERT INTO c (p_id) VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        db.scalar("SELECT realm_id FROM c WHERE p_id = 1").await,
        "hub"
    );
    // A parent without one: refused, nothing written.
    let msg = fails_with(&mut conn, "INSERT INTO c (p_id) VALUES (2)", "23502")
        .await
        .to_string();
    assert!(msg.contains("refusing to write NULL"), "{msg}");
    // A missing parent is the foreign-key error the application always got.
    fails_with(&mut conn, "INSERT INTO c (p_id) VALUES (3)", "23503").await;
    assert_eq!(db.count("SELECT 1 FROM c").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_leftover_of_our_own_index_is_dropped_and_rebuilt() {
    let db = legacy_db("bf_invalid", 500).await;
    let dir = TempDir::new("bf-invalid");
    // A previous attempt got as far as the column and a concurrent build that failed: the
    // index exists, INVALID (pitfall 4: IF NOT EXISTS would silently accept it).
    db.exec("ALTER TABLE groups ADD COLUMN realm_id text").await;
    let mut old_snapshot = db.conn().await;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM users;")
        .execute(&mut old_snapshot)
        .await
        .unwrap();
    let mut c = db.conn().await;
    sqlx::raw_sql("SET lock_timeout = '200ms'")
        .execute(&mut c)
        .await
        .unwrap();
    fails_with(
        &mut c,
        "CREATE UNIQUE INDEX CONCURRENTLY groups_id_realm_id_key ON groups (id, realm_id)",
        "55P03",
    )
    .await;
    sqlx::raw_sql("COMMIT")
        .execute(&mut old_snapshot)
        .await
        .unwrap();
    assert_eq!(
        db.scalar(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'groups_id_realm_id_key'::regclass"
        )
        .await,
        "false"
    );

    // Our own leftover does not stop the preflight; its step rebuilds it.
    let r = run(&db, &dir, &[]).await;
    r.expect_code(0);
    r.expect_stderr("dropping the invalid leftover index groups_id_realm_id_key");
    assert_eq!(
        db.count("SELECT 1 FROM pg_index WHERE NOT indisvalid")
            .await,
        0
    );
    assert_eq!(
        db.scalar(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'groups'::regclass AND indisprimary"
        )
        .await,
        "CREATE UNIQUE INDEX groups_pkey ON public.groups USING btree (id, realm_id)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runner_is_refused_while_the_first_works() {
    let db = legacy_db("bf_two", 1000).await;
    let dir = TempDir::new("bf-two");
    // Slow enough (pauses between steps) to outlast the 5 s the second one waits for the lock.
    let first = spawn_run(&db, &dir, 150);
    wait_for_step(&db, "the first runner's progress", "true").await;
    let second = run(&db, &dir, &[]).await;
    expect_error_last(&second);
    second.expect_stderr("another backfill is running");
    let first = crate::common::Run::from(first.wait_with_output().await.unwrap());
    first.expect_code(0);
    assert_eq!(
        db.count("SELECT 1 FROM realmguard.backfill_steps WHERE done_at IS NULL")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_expression_unique_index_becomes_unique_per_realm() {
    let db = TestDb::new("bf_partial").await;
    db.exec(
        "CREATE TABLE users (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                             email text NOT NULL, deleted boolean NOT NULL DEFAULT false);
         CREATE UNIQUE INDEX users_live_email ON users (lower(email) COLLATE \"C\" DESC)
             INCLUDE (deleted) WHERE NOT deleted;
         INSERT INTO users (email) SELECT 'u' || g || '@x' FROM generate_series(1, 300) g;",
    )
    .await;
    let dir = TempDir::new("bf-partial");
    dir.write(&[(
        "rg.toml",
        "realm_scoped = [\"users\"]\n[backfill]\ndefault_realm = \"hub\"\n",
    )]);
    let cfg = dir.path().join("rg.toml");
    let cfg = cfg.to_str().unwrap();
    // Reading the index's definition would queue behind a session holding the table: the plan
    // says so instead of waiting.
    let mut holder = db.conn().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let held = db
        .run(dir.path(), &["--config", cfg, "backfill", "plan"])
        .await;
    held.expect_one_line_error();
    assert!(
        held.stderr.contains("users_live_email") && held.stderr.contains("ACCESS EXCLUSIVE"),
        "{}",
        held.stderr
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    let r = db
        .run(dir.path(), &["--config", cfg, "backfill", "run"])
        .await;
    r.expect_code(0);
    // The same keys, collation, ordering, INCLUDE and predicate, with the realm column added;
    // the global index is gone.
    assert_eq!(
        db.scalar(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index
             WHERE indrelid = 'users'::regclass AND indisvalid AND indpred IS NOT NULL"
        )
        .await,
        "CREATE UNIQUE INDEX users_live_email_realm_id ON public.users USING btree \
         (lower(email) COLLATE \"C\" DESC, realm_id) INCLUDE (deleted) WHERE (NOT deleted)"
    );
    assert_eq!(
        db.count("SELECT 1 FROM pg_class WHERE relname = 'users_live_email'")
            .await,
        0
    );
    // Unique within a realm, free across realms, and still only among live rows.
    let mut conn = db.conn().await;
    fails_with(
        &mut conn,
        "INSERT INTO users (email) VALUES ('U1@x')",
        "23505",
    )
    .await;
    db.exec(
        "INSERT INTO realms (id, name) VALUES ('w1', 'worker 1');
         INSERT INTO users (email, realm_id) VALUES ('U1@x', 'w1');
         INSERT INTO users (email, deleted) VALUES ('U1@x', true);",
    )
    .await;
    assert_eq!(
        db.count("SELECT 1 FROM users WHERE lower(email) = 'u1@x'")
            .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_check_holds_goal_rules_the_config_turned_off() {
    // A CHECK left NOT VALID on a converted table is short of the goal (old rows never proven);
    // turning the rule off in the config does not let the run report success.
    let db = legacy_db("bf_goal", 200).await;
    db.exec("ALTER TABLE users ADD CONSTRAINT users_email_at CHECK (email LIKE '%@%') NOT VALID")
        .await;
    let dir = TempDir::new("bf-goal");
    let legacy = std::fs::read_to_string(config()).unwrap();
    let toml = format!("{legacy}\n[rules]\nconstraint-not-validated = \"off\"\n");
    let (r, doc) = backfill_json(&db, &dir, &toml, "run").await;
    r.expect_code(1);
    assert_eq!(doc["ok"], false);
    let problems = doc["problems"].to_string();
    assert!(
        problems.contains("users_email_at") && problems.contains("constraint-not-validated"),
        "{problems}"
    );
    // Everything the plan promised is there: verify with the stock rules finds only that CHECK.
    let v = db.run(dir.path(), &["--config", &config(), "verify"]).await;
    v.expect_code(1);
    assert!(
        v.stdout.contains("users_email_at") && v.stdout.contains(": 1 error,"),
        "{}",
        v.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_indexes_stay_in_the_tablespace_of_those_they_replace() {
    if std::env::var("DATABASE_URL").is_ok() {
        eprintln!("skipped: a tablespace needs a directory on the server's machine");
        return;
    }
    let db = TestDb::new("bf_space").await;
    // An empty directory the server's user owns (postgres when we are root).
    let dir = TempDir::new("bf-space");
    let location = dir.path().join("ts");
    std::fs::create_dir(&location).unwrap();
    crate::common::give_to_server_user(&location);
    let space = format!("{}_ts", db.name);
    db.exec(&format!(
        "CREATE TABLESPACE {space} LOCATION '{}'",
        location.display()
    ))
    .await;
    db.exec(&format!(
        "CREATE TABLE users (id bigint GENERATED BY DEFAULT AS IDENTITY,
                             email text, code text,
                             PRIMARY KEY (id) USING INDEX TABLESPACE {space},
                             UNIQUE (code) USING INDEX TABLESPACE {space});
         CREATE UNIQUE INDEX users_email_lower ON users (lower(email)) TABLESPACE {space}
             WHERE email IS NOT NULL;
         INSERT INTO users (email) SELECT 'u' || g || '@x' FROM generate_series(1, 50) g;
         CREATE TABLE sessions (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                user_id bigint NOT NULL REFERENCES users (id));
         CREATE INDEX sessions_user_id_idx ON sessions (user_id) TABLESPACE {space};
         INSERT INTO sessions (user_id) SELECT id FROM users;"
    ))
    .await;
    dir.write(&[("rg.toml", "realm_scoped = [\"users\"]\n")]);
    let cfg = dir.path().join("rg.toml");
    let r = db
        .run(
            dir.path(),
            &["--config", cfg.to_str().unwrap(), "backfill", "run"],
        )
        .await;
    r.expect_code(0);
    // "index in tablespace" for the indexes of a table that `filter` keeps, by name.
    let placed = |table: &str, filter: &str| {
        format!(
            "SELECT string_agg(ic.relname || ' in ' || coalesce(t.spcname, 'default'), ', '
                               ORDER BY ic.relname)
             FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             LEFT JOIN pg_tablespace t ON t.oid = ic.reltablespace
             WHERE i.indrelid = '{table}'::regclass AND {filter}"
        )
    };
    // The new primary key, the per-realm unique key and the rebuilt partial index, each where
    // the index it replaced was (a swapped constraint's index takes the constraint's name).
    assert_eq!(
        db.scalar(&placed("users", "i.indisunique")).await,
        format!(
            "users_code_key in {space}, users_email_lower_realm_id in {space}, \
             users_pkey in {space}"
        )
    );
    // The child's new foreign-key index goes where its old one was; its primary key stays in
    // the default tablespace, where it was.
    assert_eq!(
        db.scalar(&placed("sessions", "true")).await,
        format!("sessions_pkey in default, sessions_user_id_realm_id_idx in {space}")
    );
    db.exec("DROP TABLE sessions, users").await;
    db.exec(&format!("DROP TABLESPACE {space}")).await;
}

/// PostgreSQL 18: a NOT VALID not-null constraint already on the realm column is validated as it
/// is, under SHARE UPDATE EXCLUSIVE; `SET NOT NULL` would validate it by a scan under ACCESS
/// EXCLUSIVE. (Run on 18 by scripts/test-pg-versions.sh; older servers have no such constraint.)
#[tokio::test]
async fn a_not_valid_not_null_on_the_realm_column_is_validated_online() {
    let db = TestDb::new("bf_nvnn").await;
    if db.server_version().await < 180000 {
        eprintln!("skipped: NOT VALID not-null constraints need PostgreSQL 18");
        return;
    }
    db.exec(
        "CREATE TABLE users (id bigint PRIMARY KEY, realm_id text);
         INSERT INTO users SELECT g, NULL FROM generate_series(1, 300) g;
         ALTER TABLE users ADD CONSTRAINT users_realm_nn NOT NULL realm_id NOT VALID;",
    )
    .await;
    let dir = TempDir::new("bf-nvnn");
    let toml = "realm_scoped = [\"users\"]\n[backfill]\ndefault_realm = \"hub\"\n";
    let (r, doc) = backfill_json(&db, &dir, toml, "plan").await;
    r.expect_code(0);
    let sqls: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sql"].as_str().unwrap())
        .collect();
    assert!(
        sqls.contains(&"ALTER TABLE public.users VALIDATE CONSTRAINT users_realm_nn"),
        "{sqls:#?}"
    );
    assert!(
        !sqls.iter().any(|s| s.contains("SET NOT NULL")),
        "{sqls:#?}"
    );
    let (r, doc) = backfill_json(&db, &dir, toml, "run").await;
    r.expect_code(0);
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(
        db.scalar("SELECT convalidated::text FROM pg_constraint WHERE conname = 'users_realm_nn'")
            .await,
        "true"
    );
    assert_eq!(
        db.count("SELECT 1 FROM users WHERE realm_id = 'hub'").await,
        300
    );
}

/// A foreign key that appears mid-run on a unique key the plan rebuilds per realm: the step that
/// would drop that key refuses (never CASCADE), its transaction rolled back, nothing half done;
/// once that key is gone, a rerun finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_added_mid_run_on_a_replaced_key_stops_the_run_without_cascade() {
    let db = legacy_db("bf_guard", 200).await;
    let dir = TempDir::new("bf-guard");
    let child = spawn_run(&db, &dir, 100);
    wait_for_step(
        &db,
        "the per-realm email index",
        "title LIKE 'build unique index users_email_realm_id_key%'",
    )
    .await;
    db.exec("CREATE TABLE audit (email text REFERENCES users (email))")
        .await;
    let r = crate::common::Run::from(child.wait_with_output().await.unwrap());
    expect_error_last(&r);
    let last = r.stderr.lines().last().unwrap();
    assert!(
        last.contains("foreign keys still depend on users_email_key") && last.contains("audit"),
        "{last}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_constraint WHERE conname = 'users_email_key'")
            .await,
        "1",
        "the old key is still there"
    );
    db.exec("DROP TABLE audit").await;
    run(&db, &dir, &[]).await.expect_code(0);
    assert_eq!(
        db.scalar("SELECT pg_get_indexdef('users_email_key'::regclass)")
            .await,
        "CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email, realm_id)"
    );
}

/// The triggers and functions named like a fill trigger (`<table>_realm_id_fill`).
const FILL_OBJECTS: &str = "SELECT 1 FROM pg_trigger WHERE tgname LIKE '%\\_realm\\_id\\_fill'
    UNION ALL SELECT 1 FROM pg_proc WHERE proname LIKE '%\\_realm\\_id\\_fill'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_drops_only_the_fill_triggers_and_old_writes_are_then_refused() {
    let db = legacy_db("bf_finish", 200).await;
    let dir = TempDir::new("bf-finish");
    run(&db, &dir, &[]).await.expect_code(0);
    // The application's own trigger, on a converted table, is not the backfill's to drop.
    db.exec(
        "CREATE FUNCTION audit_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
         CREATE TRIGGER memberships_audit BEFORE INSERT ON memberships
             FOR EACH ROW EXECUTE FUNCTION audit_noop();",
    )
    .await;
    assert_eq!(db.count(FILL_OBJECTS).await, 8);

    let dry = backfill(&db, &dir, "finish", &["--dry-run"]).await;
    dry.expect_code(0)
        .expect_stdout("4 steps (dry run)")
        .expect_stdout("DROP TRIGGER IF EXISTS memberships_realm_id_fill ON public.memberships;")
        .expect_stdout("DROP FUNCTION IF EXISTS public.memberships_realm_id_fill()");
    assert_eq!(
        db.count(FILL_OBJECTS).await,
        8,
        "a dry run dropped something"
    );

    let r = backfill(&db, &dir, "finish", &[]).await;
    r.expect_code(0)
        .expect_stdout("backfill finish: 4 steps run");
    assert_eq!(db.count(FILL_OBJECTS).await, 0);
    assert_eq!(
        db.count("SELECT 1 FROM pg_trigger WHERE tgname = 'memberships_audit'")
            .await,
        1
    );
    // The old SQL, without realm_id, is now refused by NOT NULL; the new SQL works.
    let mut conn = db.conn().await;
    fails_with(
        &mut conn,
        "INSERT INTO groups (name) VALUES ('old app')",
        "23502",
    )
    .await;
    db.exec("INSERT INTO groups (name, realm_id) VALUES ('new app', 'hub')")
        .await;

    // Recorded after the run's steps, which stay; a second finish has nothing left to do.
    let status = backfill(&db, &dir, "status", &[]).await;
    status.expect_code(0).expect_stdout("47 of 47 steps done");
    let again = backfill(&db, &dir, "finish", &["--format", "json"]).await;
    again.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(doc["steps_run"], 0);
    assert_eq!(doc["dropped"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_is_refused_mid_run_and_gives_up_or_waits_on_a_conflicting_lock() {
    let db = legacy_db("bf_finish_busy", 200).await;
    let dir = TempDir::new("bf-finish-busy");
    // A run killed after its first trigger went in: its fill still needs the triggers.
    let mut child = spawn_run(&db, &dir, 300);
    wait_for_step(
        &db,
        "the groups column step",
        "table_name = 'groups' AND phase = 'column'",
    )
    .await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let refused = backfill(&db, &dir, "finish", &[]).await;
    refused
        .expect_one_line_error()
        .expect_stderr("`realmguard backfill run` first");
    assert_eq!(
        db.count("SELECT 1 FROM pg_trigger WHERE tgname = 'groups_realm_id_fill'")
            .await,
        1
    );
    run(&db, &dir, &[]).await.expect_code(0);

    // A session in a transaction that read memberships: DROP TRIGGER needs ACCESS EXCLUSIVE, so
    // that step retries until the session lets go, then the finish completes.
    let (mut holder, holder_pid) = reading_in_a_transaction(&db, "memberships").await;
    // With one retry it gives up on memberships, naming the session; the tables before it
    // in the record are done, the rest is left for the next finish.
    let gave_up = backfill(
        &db,
        &dir,
        "finish",
        &["--lock-timeout", "100ms", "--lock-retries", "1"],
    )
    .await;
    expect_error_last(&gave_up);
    gave_up
        .expect_stderr("gave up")
        .expect_stderr(&format!("pid {holder_pid}"));
    assert_eq!(db.count(FILL_OBJECTS).await, 4);
    // While the finish waits, the application's reads of memberships go on: each queued
    // DROP TRIGGER holds them up for at most its lock_timeout (100 ms), not the 1 s the
    // session holds the table.
    let reader = Reader::start(&db, "memberships").await;
    let release = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    };
    let (r, ()) = tokio::join!(
        backfill(
            &db,
            &dir,
            "finish",
            &["--lock-timeout", "100ms", "--lock-retries", "100"]
        ),
        release
    );
    reader
        .stop_and_expect_worst_under(Duration::from_millis(600))
        .await;
    r.expect_code(0)
        .expect_stderr("resuming the recorded finish")
        .expect_stderr("lock not granted");
    assert_eq!(db.count(FILL_OBJECTS).await, 0);
}

#[path = "backfill_real_world.rs"]
mod real_world;

#[path = "backfill_partitioned.rs"]
mod partitioned;
