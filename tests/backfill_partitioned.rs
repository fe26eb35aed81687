//! `realmguard backfill` on partitioned legacy tables (docs/backfill-design.md, "Partitioned
//! tables"): a child partitioned by id with a default partition, filled partition by partition
//! from its parent and referenced by a plain table, and a hash-partitioned root whose old rows
//! keep their realm in the catalog;
//! converted under a writer using the old SQL, and across SIGKILL in each kind of step that
//! only partitioned tables have.

use super::{wait_for, wait_for_step};
use crate::common::{Run, TempDir, TestDb};
use sqlx::{Connection, PgConnection};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// accounts (100 rows) ← events (7000 rows over three partitions, the last the default one;
/// account_id nullable, so its realm is derived row by row) ← notes (300 rows on events
/// 6992-6999, which the writer never deletes), and logs (500 rows, hashed).
const SCHEMA: &str = "
CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE TABLE events (id bigserial, account_id bigint REFERENCES accounts, note text, PRIMARY KEY (id))
    PARTITION BY RANGE (id);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (MINVALUE) TO (3000);
CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (3000) TO (6000);
CREATE TABLE events_rest PARTITION OF events DEFAULT;
CREATE INDEX events_account_id_idx ON events (account_id);
CREATE TABLE notes (id bigserial PRIMARY KEY, event_id bigint NOT NULL REFERENCES events, body text);
CREATE TABLE logs (id bigserial PRIMARY KEY, line text) PARTITION BY HASH (id);
CREATE TABLE logs_0 PARTITION OF logs FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE logs_1 PARTITION OF logs FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO accounts (name) SELECT 'a' || g FROM generate_series(1, 100) g;
INSERT INTO events (account_id, note) SELECT 1 + g % 100, 'n' || g FROM generate_series(1, 7000) g;
INSERT INTO logs (line) SELECT 'l' || g FROM generate_series(1, 500) g;
INSERT INTO notes (event_id, body) SELECT 6992 + g % 8, 'b' || g FROM generate_series(1, 300) g;
";

const CONFIG: &str =
    "realm_scoped = [\"accounts\", \"events\", \"logs\"]\n[backfill]\ndefault_realm = \"hub\"\n";

async fn partitioned_db(tag: &str) -> TestDb {
    let db = TestDb::new(tag).await;
    db.exec(SCHEMA).await;
    db
}

fn config(dir: &TempDir) -> String {
    dir.write(&[("rg.toml", CONFIG)]);
    dir.path().join("rg.toml").to_string_lossy().into_owned()
}

async fn backfill(db: &TestDb, dir: &TempDir, cmd: &str) -> Run {
    let cfg = config(dir);
    db.run(dir.path(), &["--config", &cfg, "backfill", cmd])
        .await
}

/// `backfill run` in the background, pausing `pause_ms` after each step and batch.
fn spawn_run(db: &TestDb, dir: &TempDir, pause_ms: u32) -> tokio::process::Child {
    let cfg = config(dir);
    db.cmd(dir.path())
        .args(["--config", &cfg, "backfill", "run", "--batch-ms", "1"])
        .env("REALMGUARD_BACKFILL_PAUSE_MS", pause_ms.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Rows as text, sorted.
async fn rows(db: &TestDb, sql: &str) -> BTreeSet<String> {
    let mut c = db.conn().await;
    let r: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap();
    r.into_iter().collect()
}

/// The shape of every table and partition of `public` (columns, constraints with their parent
/// constraint, indexes with their validity, triggers) and a digest of the rows.
async fn end_state(db: &TestDb) -> Vec<String> {
    let mut c = db.conn().await;
    let mut out = Vec::new();
    for sql in [
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1",
        "SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated
                || ' ' || coalesce((SELECT p.conname FROM pg_constraint p WHERE p.oid = co.conparentid)::text, '-')
         FROM pg_constraint co WHERE connamespace = 'public'::regnamespace ORDER BY 1",
        "SELECT pg_get_indexdef(indexrelid) || ' ' || indisvalid || ' ' || indisprimary FROM pg_index
         WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace) ORDER BY 1",
        "SELECT tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
        "SELECT md5(string_agg(id || ':' || realm_id || ':' || coalesce(account_id::text, '-') || ':' || tableoid::regclass, ',' ORDER BY id)) FROM events",
        "SELECT md5(string_agg(id || ':' || realm_id || ':' || tableoid::regclass, ',' ORDER BY id)) FROM logs",
        "SELECT md5(string_agg(id || ':' || realm_id, ',' ORDER BY id)) FROM accounts",
        "SELECT md5(string_agg(id || ':' || realm_id || ':' || event_id, ',' ORDER BY id)) FROM notes",
    ] {
        let rows: Vec<Option<String>> = sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap();
        out.extend(rows.into_iter().map(|r| r.unwrap_or_default()));
    }
    out
}

/// What a user checks after the conversion: the keys PostgreSQL reports on the parents and on
/// every partition, no NULL realm, verify clean, nothing left to plan.
async fn expect_converted(db: &TestDb, dir: &TempDir) {
    for t in ["events", "logs", "accounts", "notes"] {
        assert_eq!(
            db.scalar(&format!(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '{t}'::regclass AND contype = 'p'"
            ))
            .await,
            "PRIMARY KEY (id, realm_id)",
            "{t}"
        );
        assert_eq!(
            db.count(&format!("SELECT 1 FROM {t} WHERE realm_id IS NULL"))
                .await,
            0
        );
    }
    // Each partition's primary key is its own concurrently built index, attached to the
    // parent's; the parent's indexes are all valid.
    for p in ["events_1", "events_2", "events_rest", "logs_0", "logs_1"] {
        assert_eq!(
            db.scalar(&format!(
                "SELECT pg_get_constraintdef(c.oid) || ' ' || (c.conparentid <> 0) FROM pg_constraint c
                 WHERE c.conrelid = '{p}'::regclass AND c.contype = 'p'"
            ))
            .await,
            "PRIMARY KEY (id, realm_id) true",
            "{p}"
        );
    }
    assert_eq!(
        db.count(
            "SELECT 1 FROM pg_index WHERE NOT indisvalid
               AND indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
        )
        .await,
        0
    );
    assert_eq!(
        rows(
            db,
            "SELECT conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated FROM pg_constraint
             WHERE conrelid = 'events'::regclass AND contype = 'f'"
        )
        .await,
        BTreeSet::from([
            "events_account_id_realm_id_fkey FOREIGN KEY (account_id, realm_id) REFERENCES accounts(id, realm_id) ON DELETE CASCADE true".to_string(),
            "events_realm_id_fkey FOREIGN KEY (realm_id) REFERENCES realms(id) ON DELETE CASCADE true".to_string(),
        ])
    );
    // The plain table's key to the partitioned one, moved in its key swap, validated since.
    assert_eq!(
        rows(
            db,
            "SELECT conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated FROM pg_constraint
             WHERE conrelid = 'notes'::regclass AND contype = 'f' AND confrelid = 'events'::regclass"
        )
        .await,
        BTreeSet::from([
            "notes_event_id_realm_id_fkey FOREIGN KEY (event_id, realm_id) REFERENCES events(id, realm_id) ON DELETE CASCADE true".to_string(),
        ])
    );
    let cfg = config(dir);
    db.run(dir.path(), &["--config", &cfg, "verify"])
        .await
        .expect_code(0)
        .expect_stdout("0 errors");
    backfill(db, dir, "plan")
        .await
        .expect_code(0)
        .expect_stdout("backfill plan: nothing to do");
}

/// What the writer did through the old SQL.
#[derive(Default)]
struct Written {
    accounts: Vec<i64>,
    /// (event, account) as last written.
    events: BTreeMap<i64, i64>,
    deleted: BTreeSet<i64>,
    logs: Vec<i64>,
    /// (note, event)
    notes: Vec<(i64, i64)>,
    errors: Vec<String>,
}

/// The unchanged application: writes accounts, events (new ones, old ones moved to another
/// account, old ones deleted) and logs, never naming realm_id.
async fn old_app_writer(url: String, stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) -> Written {
    let mut c = PgConnection::connect(&url).await.unwrap();
    let mut w = Written::default();
    let mut i: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let res: Result<(), sqlx::Error> = async {
            let a: i64 = sqlx::query_scalar("INSERT INTO accounts (name) VALUES ($1) RETURNING id")
                .bind(format!("w{i}"))
                .fetch_one(&mut c)
                .await?;
            w.accounts.push(a);
            for account in [a, 1 + i % 100] {
                let e: i64 = sqlx::query_scalar(
                    "INSERT INTO events (account_id, note) VALUES ($1, 'w') RETURNING id",
                )
                .bind(account)
                .fetch_one(&mut c)
                .await?;
                w.events.insert(e, account);
                let n: i64 = sqlx::query_scalar(
                    "INSERT INTO notes (event_id, body) VALUES ($1, 'w') RETURNING id",
                )
                .bind(e)
                .fetch_one(&mut c)
                .await?;
                w.notes.push((n, e));
            }
            // An old event moves to another old account; another old one is deleted. Ids spread
            // over the three partitions.
            let moved = 1 + (i * 37) % 6990;
            if !w.deleted.contains(&moved) {
                let to = 1 + (i * 7) % 100;
                sqlx::query("UPDATE events SET account_id = $2 WHERE id = $1")
                    .bind(moved)
                    .bind(to)
                    .execute(&mut c)
                    .await?;
                w.events.insert(moved, to);
            }
            let del = 2 + (i * 53) % 6990;
            sqlx::query("DELETE FROM events WHERE id = $1")
                .bind(del)
                .execute(&mut c)
                .await?;
            w.events.remove(&del);
            w.deleted.insert(del);
            let l: i64 = sqlx::query_scalar("INSERT INTO logs (line) VALUES ('w') RETURNING id")
                .fetch_one(&mut c)
                .await?;
            w.logs.push(l);
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
async fn a_partitioned_legacy_table_converts_under_a_writer_with_every_row_and_link_intact() {
    let db = partitioned_db("bf_part_writer").await;
    let dir = TempDir::new("bf-part-writer");
    let cfg = config(&dir);
    let old_events = rows(
        &db,
        "SELECT id || ':' || account_id || ':' || note FROM events",
    )
    .await;
    let old_logs = rows(&db, "SELECT id || ':' || line FROM logs").await;
    let logs_file = db.scalar("pg_relation_filenode('logs_0')").await;

    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(old_app_writer(db.url.clone(), stop.clone(), ops.clone()));
    while ops.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = db
        .cmd(dir.path())
        .args(["--config", &cfg, "backfill", "run", "--batch-ms", "5"])
        .env("REALMGUARD_BACKFILL_PAUSE_MS", "15")
        .output()
        .await
        .unwrap();
    let r = Run::from(out);
    let during = ops.load(Ordering::SeqCst);
    // The triggers keep the old SQL working after the run.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let w = writer.await.unwrap();
    r.expect_code(0)
        .expect_stderr("public.events_2 · fill")
        .expect_stderr("adopting each partition's index");
    assert!(during > 20, "the writer barely ran ({during} rounds)");
    assert!(w.errors.is_empty(), "writer errors: {:#?}", w.errors);

    expect_converted(&db, &dir).await;
    // The root's old rows kept their realm in the catalog: the partitions were not rewritten.
    assert_eq!(db.scalar("pg_relation_filenode('logs_0')").await, logs_file);

    // Every old event the writer left alone is there unchanged, in the default realm; every
    // event the writer wrote or moved has its last account, deleted ones are gone.
    let now = rows(
        &db,
        "SELECT id || ':' || account_id || ':' || note || ':' || realm_id FROM events",
    )
    .await;
    for e in &old_events {
        let id: i64 = e.split(':').next().unwrap().parse().unwrap();
        if w.events.contains_key(&id) || w.deleted.contains(&id) {
            continue;
        }
        assert!(now.contains(&format!("{e}:hub")), "old event {e} changed");
    }
    let mut c = db.conn().await;
    for (e, account) in &w.events {
        let row: (i64, String) =
            sqlx::query_as("SELECT account_id, realm_id FROM events WHERE id = $1")
                .bind(e)
                .fetch_one(&mut c)
                .await
                .unwrap_or_else(|err| panic!("event {e} written by the app is gone: {err}"));
        assert_eq!(row, (*account, "hub".to_string()), "event {e}");
    }
    for d in &w.deleted {
        assert_eq!(
            db.count(&format!("SELECT 1 FROM events WHERE id = {d}"))
                .await,
            0
        );
    }
    assert_eq!(
        db.count("SELECT 1 FROM events").await as usize,
        old_events.len() + 2 * w.accounts.len() - w.deleted.len()
    );
    // Every link holds through the composite key: each event's account is in its realm.
    assert_eq!(
        db.count(
            "SELECT 1 FROM events e LEFT JOIN accounts a ON a.id = e.account_id AND a.realm_id = e.realm_id
             WHERE a.id IS NULL"
        )
        .await,
        0
    );
    let logs_now = rows(&db, "SELECT id || ':' || line || ':' || realm_id FROM logs").await;
    for l in &old_logs {
        assert!(logs_now.contains(&format!("{l}:hub")), "old log {l}");
    }
    for l in &w.logs {
        assert!(logs_now.contains(&format!("{l}:w:hub")), "log {l}");
    }
    assert_eq!(
        db.count("SELECT 1 FROM notes").await as usize,
        300 + w.notes.len()
    );
    for (n, e) in &w.notes {
        assert_eq!(
            db.scalar(&format!(
                "SELECT event_id || ':' || realm_id FROM notes WHERE id = {n}"
            ))
            .await,
            format!("{e}:hub")
        );
    }
    assert_eq!(
        db.count(
            "SELECT 1 FROM notes n LEFT JOIN events e ON e.id = n.event_id AND e.realm_id = n.realm_id
             WHERE e.id IS NULL"
        )
        .await,
        0
    );
    for a in &w.accounts {
        assert_eq!(
            db.scalar(&format!("SELECT realm_id FROM accounts WHERE id = {a}"))
                .await,
            "hub"
        );
    }
}

/// The steps only a partitioned table has, each as a condition on realmguard.backfill_steps,
/// in plan order: a SIGKILL lands right after the first of each kind is done.
const PARTITION_STEPS: &[(&str, &str)] = &[
    (
        "a partition's NOT NULL validation",
        "phase = 'not-null' AND step ? 'partition_of'",
    ),
    (
        "a partition's realm key",
        "phase = 'realm-fk' AND step ? 'partition_of'",
    ),
    (
        "a realm key adopted by the parent",
        "phase = 'realm-fk' AND title LIKE '%adopting%'",
    ),
    (
        "a partition's unique index",
        "phase = 'unique-index' AND step ? 'partition_of'",
    ),
    (
        "an index on only the parent",
        "title LIKE 'create index % on only %'",
    ),
    ("a partition's index attached", "title LIKE 'attach %'"),
    (
        "a partition's composite key",
        "phase = 'foreign-key' AND step ? 'partition_of' AND title LIKE 'validate %'",
    ),
    (
        "a composite key adopted by the parent",
        "phase = 'foreign-key' AND title LIKE '%adopting%'",
    ),
    (
        "a partitioned primary key swap",
        "phase = 'primary-key' AND table_name = 'logs'",
    ),
    (
        "a referenced partitioned primary key swap",
        "phase = 'primary-key' AND table_name = 'events'",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_each_kind_of_partition_step_then_rerun_ends_in_the_same_state() {
    let reference = partitioned_db("bf_part_kill_ref").await;
    let victim = partitioned_db("bf_part_kill").await;
    let dir = TempDir::new("bf-part-kill");
    backfill(&reference, &dir, "run").await.expect_code(0);

    // In the middle of a partition's fill.
    let mut child = spawn_run(&victim, &dir, 10);
    wait_for(
        &victim,
        "the events_2 fill",
        "SELECT count(*) FROM realmguard.backfill_progress
         WHERE table_name = 'events_2' AND done_upto > key_min AND done_upto < bound",
    )
    .await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let left = |db: &TestDb| {
        let db = db.url.clone();
        async move {
            let mut c = PgConnection::connect(&db).await.unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM realmguard.backfill_steps WHERE done_at IS NULL",
            )
            .fetch_one(&mut c)
            .await
            .unwrap();
            n
        }
    };
    assert!(left(&victim).await > 0);

    for (what, cond) in PARTITION_STEPS {
        let mut child = spawn_run(&victim, &dir, 40);
        wait_for_step(&victim, what, cond).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        assert!(
            left(&victim).await > 0,
            "the run ended before the kill after {what}"
        );
    }

    let r = backfill(&victim, &dir, "run").await;
    r.expect_code(0)
        .expect_stderr("resuming the recorded backfill");
    let (got, want) = (end_state(&victim).await, end_state(&reference).await);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(got.len(), want.len());
    expect_converted(&victim, &dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_tables_the_backfill_cannot_convert_are_refused_in_one_line() {
    let db = TestDb::new("bf_part_refused").await;
    let dir = TempDir::new("bf-part-refused");
    let cfg = dir.path().join("rg.toml");
    let cfg = cfg.to_str().unwrap();
    let cases = [
        (
            "CREATE TABLE t (id bigint PRIMARY KEY) PARTITION BY RANGE (id);
             CREATE TABLE t_1 PARTITION OF t FOR VALUES FROM (0) TO (10) PARTITION BY RANGE (id);",
            "public.t is a partitioned table whose partition public.t_1 is itself partitioned",
        ),
        (
            "CREATE TABLE t (id bigint PRIMARY KEY) PARTITION BY RANGE (id);
             CREATE TABLE t_1 PARTITION OF t FOR VALUES FROM (0) TO (10);
             CREATE TABLE c (id bigint PRIMARY KEY, t_id bigint REFERENCES t) PARTITION BY RANGE (id);",
            "public.t is a partitioned table that a foreign key of itself or of a partitioned table references (c_t_id_fkey on public.c)",
        ),
        (
            "CREATE TABLE t (id bigint, code text, PRIMARY KEY (id), UNIQUE (code, id)) PARTITION BY RANGE (id);",
            "public.t is a partitioned table with the unique index t_code_id_key beside its primary key",
        ),
    ];
    for (schema, message) in cases {
        db.exec("DROP TABLE IF EXISTS c, t CASCADE").await;
        db.exec(schema).await;
        dir.write(&[(
            "rg.toml",
            "realm_scoped = [\"t\"]\n[backfill]\ndefault_realm = \"hub\"\n",
        )]);
        for cmd in ["plan", "run"] {
            db.run(dir.path(), &["--config", cfg, "backfill", cmd])
                .await
                .expect_one_line_error()
                .expect_stderr(message);
        }
        assert_eq!(
            db.count("SELECT 1 FROM pg_attribute WHERE attname = 'realm_id'")
                .await,
            0
        );
    }
}
