//! `realmguard realm` against real PostgreSQL: the source on the suite's server, the target on a
//! second throwaway cluster (a second database of the same server under DATABASE_URL), the
//! project's own migrations applied on both.

use crate::common::{project_dir, Run, TempDir, TestDb};
use realmguard::embedded::Cluster;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The tables of the project's schema, parents first.
const TABLES: &[&str] = &[
    "realms",
    "groups",
    "policy_statement_types",
    "users",
    "memberships",
    "membership_statements",
];

static SECOND: OnceLock<Option<Cluster>> = OnceLock::new();

/// The maintenance URL of the server the targets live on.
fn target_admin() -> String {
    let second = SECOND.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => None,
        _ => Some(Cluster::throwaway(std::process::id()).expect("start the target cluster")),
    });
    match second {
        Some(c) => c.url("postgres"),
        None => crate::common::server_url("postgres"),
    }
}

/// A migrated database on the source server and one on the target server.
async fn pair(tag: &str) -> (TestDb, TestDb) {
    let src = TestDb::new(&format!("{tag}_src")).await;
    let dst = TestDb::on(&target_admin(), &format!("{tag}_dst")).await;
    for db in [&src, &dst] {
        db.run(&project_dir(), &["migrate"]).await.expect_code(0);
    }
    (src, dst)
}

/// Realm `realm` with `n` users, n/5 nested groups, memberships, statement types and statements;
/// a few values that are hard to print (quotes, newlines, NULLs, non-ASCII).
async fn seed(db: &TestDb, realm: &str, n: u32) {
    db.exec(&format!(
        "INSERT INTO realms (id, name) VALUES ('{realm}', 'Realm {realm}');
         INSERT INTO users (realm_id, email, display_name)
           SELECT '{realm}', 'u' || i || '@{realm}.example',
                  CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN 'O''Brien ' || i
                             WHEN 2 THEN E'two\\nlines\\t' || i ELSE 'Zoë “' || i || '”' END
           FROM generate_series(1, {n}) AS i;
         INSERT INTO groups (realm_id, name) SELECT '{realm}', 'g' || i FROM generate_series(1, {n} / 5 + 1) AS i;
         UPDATE groups g SET parent_id = p.id FROM groups p
           WHERE g.realm_id = '{realm}' AND p.realm_id = '{realm}' AND p.name = 'g' || ((substr(g.name, 2)::int) / 2)
             AND g.name <> 'g1';
         INSERT INTO memberships (realm_id, user_id, group_id)
           SELECT DISTINCT '{realm}', u.id, g.id
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM users WHERE realm_id = '{realm}') AS u
           CROSS JOIN LATERAL (VALUES (u.rn % ({n} / 5 + 1) + 1), ((u.rn * 7) % ({n} / 5 + 1) + 1)) AS pick (rn)
           JOIN (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM groups WHERE realm_id = '{realm}') AS g
             ON g.rn = pick.rn;
         INSERT INTO policy_statement_types (realm_id, code, description)
           VALUES ('{realm}', 'BOARD_MEMBER', 'on the board'), ('{realm}', 'TREASURER', NULL);
         INSERT INTO membership_statements (realm_id, membership_id, statement_type_id)
           SELECT m.realm_id, m.id, t.id FROM memberships m JOIN policy_statement_types t USING (realm_id)
           WHERE m.realm_id = '{realm}' AND (m.id % 2 = 0 OR t.code = 'TREASURER');"
    ))
    .await;
}

/// Every row of every table whose realm is not `realm`, as one digest per table: what must not
/// change, byte for byte.
async fn others(db: &TestDb, realm: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in TABLES {
        let col = if *t == "realms" { "id" } else { "realm_id" };
        out.push(
            db.scalar(&format!(
                "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
                 FROM {t} t WHERE {col} <> '{realm}'"
            ))
            .await,
        );
    }
    out
}

/// Rows of `realm` per table, and its rows as one digest per table.
async fn realm_state(db: &TestDb, realm: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in TABLES {
        let col = if *t == "realms" { "id" } else { "realm_id" };
        out.push(
            db.scalar(&format!(
                "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
                 FROM {t} t WHERE {col} = '{realm}'"
            ))
            .await,
        );
    }
    out
}

async fn realm_rows(db: &TestDb, realm: &str) -> i64 {
    let mut n = 0;
    for t in TABLES {
        let col = if *t == "realms" { "id" } else { "realm_id" };
        n += db
            .count(&format!("SELECT 1 FROM {t} WHERE {col} = '{realm}'"))
            .await;
    }
    n
}

async fn realm(src: &TestDb, args: &[&str]) -> Run {
    let mut a = vec!["realm"];
    a.extend_from_slice(args);
    src.run(&project_dir(), &a).await
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[tokio::test]
async fn copy_carries_every_table_and_leaves_the_other_realms_alone() {
    let (src, dst) = pair("rcopy").await;
    seed(&src, "w1", 300).await;
    seed(&src, "w2", 50).await;
    seed(&dst, "w9", 40).await;
    let (src_others, dst_others) = (others(&src, "w1").await, others(&dst, "w1").await);
    let before = realm_state(&src, "w1").await;

    let r = realm(
        &src,
        &[
            "copy", "--realm", "w1", "--to", &dst.url, "--format", "json",
        ],
    )
    .await;
    r.expect_code(0);
    let v = json(&r);
    assert_eq!(v["ok"], true);
    assert_eq!(v["realm"], "w1");
    assert_eq!(v["phase"], "done");
    let tables: Vec<&str> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = TABLES.iter().map(|t| format!("public.{t}")).collect();
    assert_eq!(tables, expected);
    for t in v["tables"].as_array().unwrap() {
        assert_eq!(t["match"], true, "{t}");
        assert_eq!(t["source_hash"], t["target_hash"]);
        assert!(t["rows"].as_i64().unwrap() > 0, "every table has rows: {t}");
        assert!(t["duration_ms"].is_u64());
    }

    // Same rows on both sides, the source untouched, the other realms byte for byte unchanged.
    assert_eq!(realm_state(&dst, "w1").await, before);
    assert_eq!(realm_state(&src, "w1").await, before);
    assert_eq!(others(&src, "w1").await, src_others);
    assert_eq!(others(&dst, "w1").await, dst_others);
    // Every link intact on the target: memberships to their users and groups, statements to their
    // memberships and types, groups to their parents, all within the realm.
    let orphans = dst
        .count(
            "SELECT 1 FROM memberships m WHERE m.realm_id = 'w1' AND (
                 NOT EXISTS (SELECT 1 FROM users u WHERE (u.id, u.realm_id) = (m.user_id, m.realm_id))
              OR NOT EXISTS (SELECT 1 FROM groups g WHERE (g.id, g.realm_id) = (m.group_id, m.realm_id)))
             UNION ALL
             SELECT 1 FROM membership_statements s WHERE s.realm_id = 'w1' AND NOT EXISTS
               (SELECT 1 FROM memberships m WHERE (m.id, m.realm_id) = (s.membership_id, s.realm_id))
             UNION ALL
             SELECT 1 FROM groups g WHERE g.realm_id = 'w1' AND g.parent_id IS NOT NULL AND NOT EXISTS
               (SELECT 1 FROM groups p WHERE (p.id, p.realm_id) = (g.parent_id, g.realm_id))",
        )
        .await;
    assert_eq!(orphans, 0);
    assert!(
        dst.count("SELECT 1 FROM groups WHERE realm_id = 'w1' AND parent_id IS NOT NULL")
            .await
            > 0
    );
    // The target's identity sequences moved past the copied ids: new rows there get fresh ids.
    dst.exec(
        "INSERT INTO users (realm_id, email) VALUES ('w9', 'new@w9'), ('w1', 'new@w1');
         INSERT INTO groups (realm_id, name) VALUES ('w1', 'new');
         INSERT INTO memberships (realm_id, user_id, group_id)
           SELECT 'w1', u.id, g.id FROM users u, groups g
           WHERE u.email = 'new@w1' AND g.realm_id = 'w1' AND g.name = 'new'",
    )
    .await;
    // The realmguard schema was not copied: the target's ledger is its own.
    assert_eq!(
        dst.scalar("SELECT count(*) FROM realmguard.migrations")
            .await,
        src.scalar("SELECT count(*) FROM realmguard.migrations")
            .await
    );

    // diff: the same on both sides for w1 until the target changes.
    dst.exec("DELETE FROM memberships WHERE realm_id = 'w1' AND user_id = (SELECT id FROM users WHERE email = 'new@w1')").await;
    dst.exec("DELETE FROM users WHERE email = 'new@w1'; DELETE FROM groups WHERE realm_id = 'w1' AND name = 'new'").await;
    realm(&src, &["diff", "--realm", "w1", "--to", &dst.url])
        .await
        .expect_code(0)
        .expect_stdout("both sides hold the same");
    dst.exec("UPDATE users SET display_name = 'changed' WHERE realm_id = 'w1' AND email = 'u7@w1.example'").await;
    let d = realm(
        &src,
        &[
            "diff", "--realm", "w1", "--to", &dst.url, "--format", "json",
        ],
    )
    .await;
    d.expect_code(1);
    let v = json(&d);
    let differing: Vec<&str> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["match"] == false)
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(differing, vec!["public.users"]);
    realm(&src, &["diff", "--realm", "w1", "--to", &dst.url])
        .await
        .expect_code(1)
        .expect_stdout("differs in public.users");

    // list: the realms, and with --counts their rows.
    let l = realm(&src, &["list", "--counts", "--format", "json"]).await;
    l.expect_code(0);
    let v = json(&l);
    let ids: Vec<&str> = v["realms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["realm"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["hub", "w1", "w2"]);
    assert_eq!(v["realms"][1]["counts"]["public.users"], 300);
    assert_eq!(v["realms"][0]["counts"]["public.users"], 0);
    realm(&src, &["list"])
        .await
        .expect_code(0)
        .expect_stdout("w2");
}

#[tokio::test]
async fn a_target_with_another_column_order_gets_the_same_rows() {
    // No ledger on either side (both empty, so equal): the target's tables declare their columns
    // in another order and one has an extra column with a default.
    let src = TestDb::new("rorder_src").await;
    let dst = TestDb::on(&target_admin(), "rorder_dst").await;
    let mut schema = String::new();
    for f in [
        "0001_realms",
        "0002_users",
        "0003_groups",
        "0004_memberships",
        "0005_policy_statements",
    ] {
        schema.push_str(
            &std::fs::read_to_string(project_dir().join(format!("migrations/{f}.sql"))).unwrap(),
        );
    }
    src.exec(&schema).await;
    let reordered = schema
        .replace(
            "    id           bigint GENERATED BY DEFAULT AS IDENTITY,\n    realm_id     text NOT NULL REFERENCES realms (id) ON DELETE CASCADE,\n    email        text NOT NULL,\n    display_name text,\n    created_at   timestamptz NOT NULL DEFAULT now(),",
            "    display_name text,\n    created_at   timestamptz NOT NULL DEFAULT now(),\n    email        text NOT NULL,\n    nickname     text DEFAULT 'none',\n    realm_id     text NOT NULL REFERENCES realms (id) ON DELETE CASCADE,\n    id           bigint GENERATED BY DEFAULT AS IDENTITY,",
        );
    assert_ne!(reordered, schema, "the users table was reordered");
    dst.exec(&reordered).await;
    seed(&src, "w1", 60).await;
    let before = realm_state(&src, "w1").await;
    realm(&src, &["copy", "--realm", "w1", "--to", &dst.url])
        .await
        .expect_code(0)
        .expect_stdout("realm w1: done");
    let same = "SELECT count(*) FROM users WHERE realm_id = 'w1'";
    assert_eq!(dst.scalar(same).await, src.scalar(same).await);
    let by_name = "SELECT md5(string_agg(concat_ws(',', id, realm_id, email, display_name, created_at), '|' ORDER BY id)) FROM users WHERE realm_id = 'w1'";
    assert_eq!(dst.scalar(by_name).await, src.scalar(by_name).await);
    assert_eq!(
        dst.scalar("SELECT DISTINCT nickname FROM users WHERE realm_id = 'w1'")
            .await,
        "none"
    );
    assert_eq!(realm_state(&dst, "w1").await[5], before[5]);
    realm(&src, &["diff", "--realm", "w1", "--to", &dst.url])
        .await
        .expect_code(0);
}

/// A copy that must be refused: one `error:` line containing `says`, nothing of w1 on the target.
async fn refused(src: &TestDb, dst: &TestDb, realm_id: &str, says: &str) {
    let r = realm(src, &["copy", "--realm", realm_id, "--to", &dst.url]).await;
    r.expect_one_line_error().expect_stderr(says);
    assert_eq!(
        dst.count(&format!(
            "SELECT 1 FROM users WHERE realm_id = '{realm_id}'"
        ))
        .await,
        0,
        "nothing copied"
    );
}

#[tokio::test]
async fn preflight_refuses_each_cause_in_one_line() {
    let (src, dst) = pair("rpre").await;
    seed(&src, "w1", 20).await;

    // The realm is missing on the source.
    refused(
        &src,
        &dst,
        "nosuch",
        "realm nosuch does not exist on the source",
    )
    .await;
    // The realm already has rows on the target.
    dst.exec("INSERT INTO realms (id, name) VALUES ('w1', 'already here')")
        .await;
    refused(
        &src,
        &dst,
        "w1",
        "realm w1 already has rows on the target (in public.realms)",
    )
    .await;
    dst.exec("DELETE FROM realms WHERE id = 'w1'").await;
    // A global row the realm references is missing on the target.
    for db in [&src, &dst] {
        db.exec(
            "CREATE TABLE countries (code text PRIMARY KEY);
                 INSERT INTO countries VALUES ('de');
                 ALTER TABLE users ADD COLUMN country text REFERENCES countries (code)",
        )
        .await;
    }
    src.exec("INSERT INTO countries VALUES ('fr'); UPDATE users SET country = 'fr' WHERE realm_id = 'w1' AND id % 2 = 0").await;
    refused(
        &src,
        &dst,
        "w1",
        "the target lacks the public.countries row code = [\"fr\"]",
    )
    .await;
    dst.exec("INSERT INTO countries VALUES ('fr')").await;
    // A realm-scoped table that fails verify (its key lacks the realm column), on either side.
    dst.exec(
        "CREATE TABLE notes (id bigint PRIMARY KEY, realm_id text NOT NULL REFERENCES realms (id))",
    )
    .await;
    refused(&src, &dst, "w1", "the target fails verify on public.notes").await;
    src.exec(
        "CREATE TABLE notes (id bigint PRIMARY KEY, realm_id text NOT NULL REFERENCES realms (id))",
    )
    .await;
    refused(&src, &dst, "w1", "the source fails verify on public.notes").await;
    for db in [&src, &dst] {
        db.exec("DROP TABLE notes").await;
    }
    // The ledgers differ: a version only one side has, and a checksum that differs.
    dst.exec("INSERT INTO realmguard.migrations (version, description, checksum, statements_applied, statements_total, success)
              VALUES (999, 'extra', 'x', 1, 1, true)").await;
    refused(
        &src,
        &dst,
        "w1",
        "the ledgers differ: version 999 is applied on the target only",
    )
    .await;
    dst.exec(
        "DELETE FROM realmguard.migrations WHERE version = 999;
              UPDATE realmguard.migrations SET checksum = 'other' WHERE version = 3",
    )
    .await;
    refused(
        &src,
        &dst,
        "w1",
        "the ledgers differ: version 3 has another checksum",
    )
    .await;
    dst.exec(&format!(
        "UPDATE realmguard.migrations SET checksum = '{}' WHERE version = 3",
        src.scalar("SELECT checksum FROM realmguard.migrations WHERE version = 3")
            .await
    ))
    .await;
    // A bad target URL and a target that is the source.
    realm(&src, &["copy", "--realm", "w1", "--to", "mysql://x"])
        .await
        .expect_one_line_error()
        .expect_stderr("--to");
    realm(&src, &["copy", "--realm", "w1", "--to", &src.url])
        .await
        .expect_one_line_error()
        .expect_stderr("the target is the source database");
    // With every cause fixed, the copy goes through.
    realm(&src, &["copy", "--realm", "w1", "--to", &dst.url])
        .await
        .expect_code(0);
}

#[tokio::test]
async fn a_target_that_alters_a_row_makes_the_copy_roll_back() {
    let (src, dst) = pair("rmis").await;
    seed(&src, "w1", 50).await;
    dst.exec(
        "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN NEW.email := upper(NEW.email); RETURN NEW; END$$;
         CREATE TRIGGER shout BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION shout();",
    )
    .await;
    let r = realm(&src, &["copy", "--realm", "w1", "--to", &dst.url]).await;
    r.expect_one_line_error()
        .expect_stderr("public.users: the target does not hold what the source holds")
        .expect_stderr("rolled back");
    assert_eq!(realm_rows(&dst, "w1").await, 0, "the target kept nothing");
}

// The target loads with its foreign-key triggers off and proves each key afterwards with one
// query per constraint (docs/realm.md, "Loading the target"): a key only the target has, to
// rows it lacks, must still stop the copy, naming the table and the constraint.
#[tokio::test]
async fn a_foreign_key_only_the_target_has_is_still_enforced() {
    let (src, dst) = pair("rfk").await;
    seed(&src, "w1", 40).await;
    dst.exec(
        "CREATE TABLE allowed_emails (email text PRIMARY KEY);
         INSERT INTO allowed_emails VALUES ('u1@w1.example'), ('u2@w1.example');
         ALTER TABLE users ADD CONSTRAINT users_email_allowed
           FOREIGN KEY (email) REFERENCES allowed_emails;",
    )
    .await;
    let r = realm(&src, &["copy", "--realm", "w1", "--to", &dst.url]).await;
    r.expect_code(2)
        .expect_one_line_error()
        .expect_stderr("public.users: 38 of the realm's rows break foreign key users_email_allowed")
        .expect_stderr("rolled back");
    assert_eq!(realm_rows(&dst, "w1").await, 0, "the target kept nothing");

    // With every email allowed the same copy goes through, and the allowed rows stay locked
    // against deletion only while it runs.
    dst.exec("INSERT INTO allowed_emails SELECT 'u' || i || '@w1.example' FROM generate_series(3, 40) AS i")
        .await;
    realm(&src, &["copy", "--realm", "w1", "--to", &dst.url])
        .await
        .expect_code(0);
    assert_eq!(realm_state(&dst, "w1").await, realm_state(&src, "w1").await);
}

// A target role that may not set session_replication_role loads with the triggers on: the
// copy is the same, only slower.
#[tokio::test]
async fn a_target_role_that_cannot_turn_triggers_off_still_copies() {
    let (src, dst) = pair("rrole").await;
    seed(&src, "w1", 60).await;
    let role = format!("rg_loader_{}", std::process::id());
    dst.exec(&format!(
        "CREATE ROLE {role} LOGIN BYPASSRLS;
         GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {role};
         GRANT SELECT, UPDATE, USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};
         GRANT USAGE ON SCHEMA realmguard TO {role};
         GRANT SELECT ON ALL TABLES IN SCHEMA realmguard TO {role};"
    ))
    .await;
    let url = dst
        .url
        .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    realm(&src, &["copy", "--realm", "w1", "--to", &url])
        .await
        .expect_code(0);
    assert_eq!(realm_state(&dst, "w1").await, realm_state(&src, "w1").await);
    dst.exec(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;
}

#[tokio::test]
async fn kill_9_during_the_copy_leaves_nothing_on_the_target() {
    let (src, dst) = pair("rkill").await;
    seed(&src, "w1", 30_000).await;
    let dir = TempDir::new("rkill");
    let mut child = src
        .cmd(&project_dir())
        .args(["realm", "copy", "--realm", "w1", "--to", &dst.url])
        .spawn()
        .unwrap();
    // Kill it once the target is receiving rows.
    let started = Instant::now();
    loop {
        let copying = dst
            .count("SELECT 1 FROM pg_stat_activity WHERE application_name = 'realmguard' AND query LIKE 'COPY %FROM STDIN%' AND state = 'active'")
            .await;
        if copying > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the copy never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // The server notices the dead client and rolls its transaction back.
    let started = Instant::now();
    while dst
        .count("SELECT 1 FROM pg_stat_activity WHERE application_name = 'realmguard'")
        .await
        > 0
    {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(realm_rows(&dst, "w1").await, 0);
    drop(dir);
    // And a new copy goes through.
    realm(&src, &["copy", "--realm", "w1", "--to", &dst.url])
        .await
        .expect_code(0);
    assert_eq!(realm_state(&dst, "w1").await, realm_state(&src, "w1").await);
}

async fn fence_triggers(db: &TestDb) -> i64 {
    db.count("SELECT 1 FROM pg_trigger WHERE tgname LIKE 'realmguard_fence%'")
        .await
}

async fn fails_with(db: &TestDb, sql: &str, code: &str) -> String {
    let mut c = db.conn().await;
    match sqlx::raw_sql(sql).execute(&mut c).await {
        Ok(_) => panic!("{sql} succeeded"),
        Err(e) => {
            assert_eq!(realmguard::db::sqlstate(&e).as_deref(), Some(code), "{e}");
            e.to_string()
        }
    }
}

#[tokio::test]
async fn the_fence_refuses_writes_to_its_realm_while_other_realms_go_on() {
    let src = TestDb::new("rfence").await;
    src.run(&project_dir(), &["migrate"]).await.expect_code(0);
    seed(&src, "w1", 20).await;
    seed(&src, "w2", 20).await;
    let cfg = realmguard::config::Config::default();
    let mut conn = src.conn().await;
    let plan = realmguard::realm::plan::load(&mut conn, &cfg)
        .await
        .unwrap();
    realmguard::realm::fence::install(&mut conn, &plan, "w1", Duration::from_millis(500))
        .await
        .unwrap();
    let msg = fails_with(
        &src,
        "INSERT INTO users (realm_id, email) VALUES ('w1', 'late@w1')",
        "55006",
    )
    .await;
    assert!(
        msg.contains("realm w1 is being moved to another database: writes to it are refused"),
        "{msg}"
    );
    fails_with(
        &src,
        "UPDATE users SET display_name = 'x' WHERE realm_id = 'w1'",
        "55006",
    )
    .await;
    fails_with(
        &src,
        "DELETE FROM memberships WHERE realm_id = 'w1'",
        "55006",
    )
    .await;
    fails_with(
        &src,
        "UPDATE realms SET name = 'x' WHERE id = 'w1'",
        "55006",
    )
    .await;
    // Moving a row out of the fenced realm is a write to it too.
    fails_with(&src, "UPDATE policy_statement_types SET realm_id = 'w2', code = 'MOVED' WHERE realm_id = 'w1' AND code = 'TREASURER'", "55006").await;
    // The other realms: every kind of write goes on.
    src.exec(
        "INSERT INTO users (realm_id, email) VALUES ('w2', 'late@w2');
         UPDATE users SET display_name = 'still writable' WHERE realm_id = 'w2';
         DELETE FROM membership_statements WHERE realm_id = 'w2';
         INSERT INTO realms (id, name) VALUES ('w3', 'new realm')",
    )
    .await;
    realmguard::realm::fence::remove(&mut conn, &plan, "w1", Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(fence_triggers(&src).await, 0);
    src.exec("INSERT INTO users (realm_id, email) VALUES ('w1', 'late@w1')")
        .await;
}

#[tokio::test]
async fn move_survives_kill_9_in_the_source_delete_and_the_rerun_ends_the_same() {
    let (src, dst) = pair("rmove").await;
    seed(&src, "w1", 20_000).await;
    seed(&src, "w2", 30).await;
    seed(&dst, "w9", 30).await;
    let before = realm_state(&src, "w1").await;
    let (src_others, dst_others) = (others(&src, "w1").await, others(&dst, "w1").await);

    // The dry run shows the plan and changes nothing.
    realm(
        &src,
        &["move", "--realm", "w1", "--to", &dst.url, "--dry-run"],
    )
    .await
    .expect_code(0)
    .expect_stdout("fence public.memberships")
    .expect_stdout("CREATE OR REPLACE TRIGGER")
    .expect_stdout("delete in batches public.membership_statements");
    assert_eq!(fence_triggers(&src).await, 0);
    assert_eq!(realm_rows(&dst, "w1").await, 0);

    // Small batches, so the delete is still going when it is killed.
    let mut child = src
        .cmd(&project_dir())
        .args([
            "realm",
            "move",
            "--realm",
            "w1",
            "--to",
            &dst.url,
            "--batch-ms",
            "2ms",
        ])
        .spawn()
        .unwrap();
    let total: i64 = before[4].split(':').next().unwrap().parse().unwrap();
    let started = Instant::now();
    loop {
        let ledger = src
            .scalar("to_regclass('realmguard.realm_moves') IS NOT NULL")
            .await;
        let phase = match ledger.as_str() {
            "true" => {
                src.scalar("SELECT phase FROM realmguard.realm_moves WHERE realm = 'w1'")
                    .await
            }
            _ => String::new(),
        };
        if phase == "copied" {
            let left = src
                .count("SELECT 1 FROM memberships WHERE realm_id = 'w1'")
                .await;
            if left < total {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the delete never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the move ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // Killed mid-delete: the realm is whole on the target, part-deleted and still fenced here.
    assert_eq!(realm_state(&dst, "w1").await, before);
    assert!(fence_triggers(&src).await > 0);
    fails_with(
        &src,
        "INSERT INTO users (realm_id, email) VALUES ('w1', 'late@w1')",
        "55006",
    )
    .await;
    src.exec("INSERT INTO users (realm_id, email) VALUES ('w2', 'during@w2'); DELETE FROM users WHERE email = 'during@w2'").await;

    let r = realm(&src, &["move", "--realm", "w1", "--to", &dst.url]).await;
    r.expect_code(0)
        .expect_stderr("resuming the move of realm w1 (phase copied)")
        .expect_stdout("realm w1: done");
    assert_eq!(realm_rows(&src, "w1").await, 0);
    assert_eq!(realm_state(&dst, "w1").await, before);
    assert_eq!(fence_triggers(&src).await, 0);
    assert_eq!(
        src.scalar("SELECT phase FROM realmguard.realm_moves WHERE realm = 'w1'")
            .await,
        "done"
    );
    assert_eq!(others(&src, "w1").await, src_others);
    assert_eq!(others(&dst, "w1").await, dst_others);
    // The realm lives on the target now: writable there.
    dst.exec("INSERT INTO users (realm_id, email) VALUES ('w1', 'after@w1')")
        .await;
    // A second rerun finds nothing left to move.
    realm(&src, &["move", "--realm", "w1", "--to", &dst.url])
        .await
        .expect_one_line_error()
        .expect_stderr("realm w1 does not exist on the source");
    assert_eq!(
        fence_triggers(&src).await,
        0,
        "a refused move fences nothing"
    );
}

#[tokio::test]
async fn delete_removes_one_realm_online_and_only_it() {
    let src = TestDb::new("rdel").await;
    src.run(&project_dir(), &["migrate"]).await.expect_code(0);
    seed(&src, "w1", 2_000).await;
    seed(&src, "w2", 50).await;
    let kept = others(&src, "w1").await;
    realm(&src, &["delete", "--realm", "w1", "--dry-run"])
        .await
        .expect_code(0)
        .expect_stdout("delete in batches public.membership_statements");
    assert!(realm_rows(&src, "w1").await > 0);
    let r = realm(
        &src,
        &[
            "delete",
            "--realm",
            "w1",
            "--batch-ms",
            "5ms",
            "--format",
            "json",
        ],
    )
    .await;
    r.expect_code(0);
    let v = json(&r);
    let order: Vec<&str> = v["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["table"].as_str().unwrap())
        .collect();
    assert_eq!(order.last(), Some(&"public.realms"));
    assert_eq!(order[0], "public.membership_statements");
    assert!(v["deleted"][1]["batches"].as_u64().unwrap() >= 1);
    assert_eq!(realm_rows(&src, "w1").await, 0);
    assert_eq!(others(&src, "w1").await, kept);
    realm(&src, &["delete", "--realm", "w1"])
        .await
        .expect_one_line_error()
        .expect_stderr("realm w1 does not exist here");
}

static LOGICAL: OnceLock<Option<Cluster>> = OnceLock::new();

/// A source cluster with wal_level = logical (None under DATABASE_URL).
fn logical_admin() -> Option<String> {
    LOGICAL
        .get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(u) if !u.is_empty() => None,
            _ => Some(
                Cluster::throwaway_with(std::process::id(), 5432, &[("wal_level", "logical")], &[])
                    .expect("start the logical source cluster"),
            ),
        })
        .as_ref()
        .map(|c| c.url("postgres"))
}

#[tokio::test]
async fn online_move_is_refused_without_logical_wal() {
    let (src, dst) = pair("ronl_ref").await;
    seed(&src, "w1", 10).await;
    if src.scalar("current_setting('wal_level')").await == "logical" {
        return;
    }
    realm(
        &src,
        &["move", "--online", "--realm", "w1", "--to", &dst.url],
    )
    .await
    .expect_one_line_error()
    .expect_stderr("--online needs wal_level = logical on the source");
    assert_eq!(fence_triggers(&src).await, 0);
    assert_eq!(realm_rows(&dst, "w1").await, 0);
}

#[tokio::test]
async fn online_move_loses_no_write_of_a_concurrent_writer() {
    let Some(admin) = logical_admin() else { return };
    let src = TestDb::on(&admin, "ronl_src").await;
    let dst = TestDb::on(&target_admin(), "ronl_dst").await;
    for db in [&src, &dst] {
        db.run(&project_dir(), &["migrate"]).await.expect_code(0);
    }
    seed(&src, "w1", 5_000).await;
    seed(&src, "w2", 20).await;
    let dst_others = others(&dst, "w1").await;

    // The writer: one user of w1 after another, each its own transaction, until stopped.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, stop) = (src.url.clone(), stop.clone());
        tokio::spawn(async move {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let (mut committed, mut refused_since, mut longest) =
                (Vec::new(), None::<Instant>, Duration::ZERO);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let email = format!("live{i}@w1");
                match sqlx::query("INSERT INTO users (realm_id, email) VALUES ('w1', $1)")
                    .bind(&email)
                    .execute(&mut c)
                    .await
                {
                    Ok(_) => {
                        committed.push(email);
                        if let Some(t) = refused_since.take() {
                            longest = longest.max(t.elapsed());
                        }
                    }
                    Err(e) => {
                        // Fenced (55006), or gone from the source once moved (23503).
                        let code = realmguard::db::sqlstate(&e);
                        assert!(matches!(code.as_deref(), Some("55006" | "23503")), "{e}");
                        refused_since.get_or_insert_with(Instant::now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (committed, refused_since.map(|t| t.elapsed()), longest)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = realm(
        &src,
        &[
            "move", "--online", "--realm", "w1", "--to", &dst.url, "--format", "json",
        ],
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (committed, still_refused, _) = writer.await.unwrap();
    r.expect_code(0);
    let v = json(&r);
    assert_eq!(v["phase"], "done");
    let fence_ms = v["fence_ms"].as_u64().unwrap();
    eprintln!("online move: writes to w1 refused for {fence_ms} ms (fence to verified target); writer committed {} rows, refused for {:?} until it stopped", committed.len(), still_refused);
    assert!(
        committed.len() > 10,
        "the writer was writing during the move"
    );
    // No write lost: every row the writer committed is on the target.
    let on_target: Vec<String> = {
        let mut c = dst.conn().await;
        sqlx::query_scalar("SELECT email FROM users WHERE realm_id = 'w1' AND email LIKE 'live%'")
            .fetch_all(&mut c)
            .await
            .unwrap()
    };
    let on_target: std::collections::HashSet<String> = on_target.into_iter().collect();
    let lost: Vec<&String> = committed
        .iter()
        .filter(|e| !on_target.contains(*e))
        .collect();
    assert!(
        lost.is_empty(),
        "{} committed writes missing on the target: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(on_target.len(), committed.len());
    assert_eq!(realm_rows(&src, "w1").await, 0);
    assert_eq!(fence_triggers(&src).await, 0);
    assert_eq!(others(&dst, "w1").await, dst_others);
    assert_eq!(src.count("SELECT 1 FROM pg_publication").await, 0);
    assert_eq!(src.count("SELECT 1 FROM pg_replication_slots").await, 0);
    assert_eq!(dst.count("SELECT 1 FROM pg_subscription").await, 0);
}

/// README's first screen: the example realm, copied to a worker named as the fleet file names it.
#[tokio::test]
async fn to_names_a_fleet_target_and_the_example_realm_copies_there() {
    let (src, dst) = pair("rfleet").await;
    let example = std::fs::read_to_string(project_dir().join("examples/realm-w1.sql")).unwrap();
    src.exec(&example).await;
    let dir = TempDir::new("rfleet");
    dir.write(&[(
        "schema/fleet.toml",
        &format!("[[target]]\nname = \"worker_1\"\nurl = \"{}\"\n", dst.url),
    )]);
    let config = project_dir().join("schema/realmguard.toml");
    let config = config.to_str().unwrap();
    let before = realm_state(&src, "w1").await;

    let r = src
        .run(
            dir.path(),
            &[
                "--config", config, "realm", "copy", "--realm", "w1", "--to", "worker_1",
            ],
        )
        .await;
    r.expect_code(0);
    assert_eq!(realm_state(&dst, "w1").await, before);
    assert_eq!(
        dst.count("SELECT 1 FROM memberships WHERE realm_id = 'w1'")
            .await,
        1000
    );

    // A name the fleet file does not have: one line naming the ones it has; nothing copied.
    let r = src
        .run(
            dir.path(),
            &[
                "--config", config, "realm", "diff", "--realm", "w1", "--to", "worker_9",
            ],
        )
        .await;
    r.expect_code(2)
        .expect_one_line_error()
        .expect_stderr("targets: worker_1");
}

/// A target that refuses the password, named by URL or through the fleet file: one line, exit 2,
/// the password nowhere, the source's realm untouched.
#[tokio::test]
async fn a_wrong_target_password_is_one_line_and_changes_nothing() {
    if std::env::var("DATABASE_URL").is_ok() {
        eprintln!("skipped: the throwaway cluster's pg_hba is needed to force password auth");
        return;
    }
    // Both on the suite's server, whose pg_hba asks roles other than postgres for a password.
    let src = TestDb::new("rpw_src").await;
    let dst = TestDb::new("rpw_dst").await;
    for db in [&src, &dst] {
        db.run(&project_dir(), &["migrate"]).await.expect_code(0);
    }
    seed(&src, "w1", 20).await;
    let before = realm_state(&src, "w1").await;
    dst.exec("CREATE ROLE rg_realm_pw LOGIN PASSWORD 'right-one'")
        .await;
    let url = dst.url.replacen(
        "postgres://postgres@",
        "postgres://rg_realm_pw:wr0ng%21pw@",
        1,
    );
    let dir = TempDir::new("rpw");
    dir.write(&[(
        "schema/fleet.toml",
        &format!("[[target]]\nname = \"w\"\nurl = \"{url}\"\n"),
    )]);
    let config = project_dir().join("schema/realmguard.toml");
    for to in [url.as_str(), "w"] {
        for cmd in ["copy", "move"] {
            let r = src
                .run(
                    dir.path(),
                    &[
                        "--config",
                        config.to_str().unwrap(),
                        "realm",
                        cmd,
                        "--realm",
                        "w1",
                        "--to",
                        to,
                    ],
                )
                .await;
            r.expect_code(2)
                .expect_one_line_error()
                .expect_stderr("password authentication failed")
                .expect_not_printed("wr0ng!pw")
                .expect_not_printed("wr0ng%21pw");
        }
    }
    dst.exec("DROP ROLE rg_realm_pw").await;
    assert_eq!(realm_state(&src, "w1").await, before);
    assert_eq!(fence_triggers(&src).await, 0, "no fence left on the source");
}
