//! `realmguard audit` end to end: every input format, the outputs, exemptions and the baseline,
//! the schema from migrations against the live catalog, pg_stat_statements on a real server,
//! and check running the audit.

use crate::common::{project_dir, realmguard_cmd, Run, TempDir, TestDb};
use realmguard::embedded::Cluster;
use sqlx::{Connection, PgConnection};

async fn run(dir: &std::path::Path, args: &[&str]) -> Run {
    Run::from(
        realmguard_cmd(dir)
            .args(args)
            .output()
            .await
            .expect("run realmguard"),
    )
}

fn migrations() -> String {
    project_dir().join("migrations").display().to_string()
}

const LEAK: &str = "-- name: GroupsOfUser :many\nSELECT g.id FROM memberships m\nJOIN groups g ON g.id = m.group_id\nWHERE m.realm_id = @realm_id AND m.user_id = @user_id;\n";

#[tokio::test]
async fn the_projects_example_queries_audit_clean() {
    let m = migrations();
    let r = run(
        &project_dir(),
        &["audit", "--schema-from", &m, "examples/queries"],
    )
    .await;
    r.expect_code(0)
        .expect_stdout("audit: 0 errors, 0 warnings in ");
}

#[tokio::test]
async fn a_sqlc_file_reports_the_leak_with_name_place_and_fix() {
    let d = TempDir::new("audit-sqlc");
    d.write(&[("queries/groups.sql", LEAK)]);
    let m = migrations();
    let r = run(d.path(), &["audit", "--schema-from", &m, "queries"]).await;
    r.expect_code(1)
        .expect_stdout("queries/groups.sql:3:6: error[join-without-realm]: `groups g` is joined to `memberships m`")
        .expect_stdout("  query: GroupsOfUser")
        .expect_stdout("help: add `AND g.realm_id = m.realm_id` to the join")
        .expect_stdout("audit: 1 error, 0 warnings in 1 query (1 touching realm tables)");
    let r = run(
        d.path(),
        &["audit", "--schema-from", &m, "queries", "--format", "json"],
    )
    .await;
    r.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    assert_eq!(v["ok"], false);
    assert_eq!(v["summary"]["queries"], 1);
    assert_eq!(v["summary"]["realm_queries"], 1);
    assert_eq!(v["summary"]["errors"], 1);
    assert_eq!(v["summary"]["opaque"], 0);
    let x = &v["violations"][0];
    for (k, want) in [
        ("rule", "join-without-realm"),
        ("severity", "error"),
        ("file", "queries/groups.sql"),
        ("query_name", "GroupsOfUser"),
        ("table", "groups"),
    ] {
        assert_eq!(x[k], want, "{k}: {x}");
    }
    assert_eq!(
        (x["line"].clone(), x["column"].clone()),
        (3.into(), 6.into())
    );
    assert!(x["message"].is_string() && x["help"].is_string());
    let r = run(
        d.path(),
        &["audit", "--schema-from", &m, "queries", "--format", "junit"],
    )
    .await;
    r.expect_code(1).expect_stdout("<failure message=");
}

#[tokio::test]
async fn github_annotations_under_actions() {
    let d = TempDir::new("audit-gh");
    d.write(&[("q.sql", LEAK)]);
    let m = migrations();
    let out = realmguard_cmd(d.path())
        .env("GITHUB_ACTIONS", "true")
        .args(["audit", "--schema-from", &m, "q.sql"])
        .output()
        .await
        .unwrap();
    let r = Run::from(out);
    r.expect_code(1)
        .expect_stdout("::error file=q.sql,line=3,col=6,title=join-without-realm::");
}

#[tokio::test]
async fn sqlx_offline_data_and_json_lines_logs() {
    let d = TempDir::new("audit-formats");
    let sqlx = serde_json::json!({
        "db_name": "PostgreSQL",
        "query": "SELECT id FROM users WHERE email = $1",
        "describe": {},
        "hash": "5c0ffee"
    });
    // serde_json writes keys in order: "query" is on line 5.
    // Prisma's query events: the realm bound, and one lookup by id only.
    let log = concat!(
        r#"{"timestamp":"2026-01-01T00:00:00Z","level":"info","message":"started"}"#,
        "\n",
        r#"{"query":"SELECT \"public\".\"groups\".\"id\" FROM \"public\".\"groups\" WHERE (\"public\".\"groups\".\"realm_id\" = $1 AND \"public\".\"groups\".\"id\" = $2) LIMIT $3 OFFSET $4","params":"[\"hub\",1,1,0]","duration":1}"#,
        "\n",
        r#"{"query":"SELECT \"public\".\"groups\".\"id\" FROM \"public\".\"groups\" WHERE \"public\".\"groups\".\"id\" = $1 LIMIT $2","params":"[1,1]","duration":1}"#,
        "\n",
    );
    d.write(&[
        (
            "app/.sqlx/query-5c0ffee.json",
            &serde_json::to_string_pretty(&sqlx).unwrap(),
        ),
        ("logs/prisma.jsonl", log),
    ]);
    let m = migrations();
    let r = run(
        d.path(),
        &[
            "audit",
            "--schema-from",
            &m,
            "app",
            "logs",
            "--format",
            "json",
        ],
    )
    .await;
    r.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let found: Vec<(String, String, u64)> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["file"].as_str().unwrap().to_string(),
                x["query_name"].as_str().unwrap_or("").to_string(),
                x["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "app/.sqlx/query-5c0ffee.json".to_string(),
                "5c0ffee".to_string(),
                5
            ),
            ("logs/prisma.jsonl".to_string(), String::new(), 3),
        ]
    );
    assert_eq!(v["summary"]["queries"], 3);
    // A log line that is not JSON is bad input, named by its line.
    d.write(&[("logs/prisma.jsonl", "{\"query\":\"SELECT 1\"}\nnot json\n")]);
    let r = run(d.path(), &["audit", "--schema-from", &m, "logs"]).await;
    r.expect_one_line_error()
        .expect_stderr("logs/prisma.jsonl:2: not a JSON object");
}

#[tokio::test]
async fn bad_input_is_one_error_line() {
    let d = TempDir::new("audit-bad");
    let m = migrations();
    run(d.path(), &["audit", "--schema-from", &m])
        .await
        .expect_one_line_error();
    run(d.path(), &["audit", "--schema-from", &m, "missing.sql"])
        .await
        .expect_one_line_error();
    d.write(&[("q.sql", "SELECT 1;")]);
    run(d.path(), &["audit", "--schema-from", "nowhere", "q.sql"])
        .await
        .expect_one_line_error();
    d.write(&[("schema/realmguard.toml", "[audit]\npath = [\"q.sql\"]\n")]);
    run(d.path(), &["audit", "--schema-from", &m, "q.sql"])
        .await
        .expect_one_line_error()
        .expect_stderr("path");
}

#[tokio::test]
async fn exemptions_need_a_reason() {
    let d = TempDir::new("audit-exempt");
    d.write(&[(
        "q.sql",
        "-- realmguard:cross-realm the nightly export reads every realm\nSELECT * FROM users;\n-- realmguard:cross-realm\nSELECT * FROM groups;\n",
    )]);
    let m = migrations();
    let r = run(d.path(), &["audit", "--schema-from", &m, "q.sql"]).await;
    r.expect_code(1)
        .expect_stdout("q.sql:4:15: error[query-missing-realm-filter]")
        .expect_stdout("1 exempted")
        .expect_stderr("warning: q.sql:4: `-- realmguard:cross-realm` needs a reason");
    assert!(!r.stdout.contains("q.sql:2:"), "{}", r.stdout);
}

#[tokio::test]
async fn a_baseline_accepts_todays_findings_and_reports_stale_entries() {
    let d = TempDir::new("audit-baseline");
    d.write(&[(
        "q.sql",
        "SELECT * FROM users WHERE id = 1;\nSELECT * FROM groups WHERE id = $1;\n",
    )]);
    let m = migrations();
    let r = run(
        d.path(),
        &["audit", "--schema-from", &m, "q.sql", "--write-baseline"],
    )
    .await;
    r.expect_code(0)
        .expect_stderr("wrote 2 baseline entries to schema/audit-baseline.json");
    let r = run(d.path(), &["audit", "--schema-from", &m, "q.sql"]).await;
    r.expect_code(0).expect_stdout("2 in the baseline");
    // The same query with another constant, moved down a line, is still accepted; the fixed one
    // leaves a stale entry; a new leak is reported.
    d.write(&[(
        "q.sql",
        "\nSELECT *\n  FROM users WHERE id = 2;\nSELECT * FROM groups WHERE id = $1 AND realm_id = $2;\nSELECT * FROM memberships;\n",
    )]);
    let r = run(d.path(), &["audit", "--schema-from", &m, "q.sql"]).await;
    r.expect_code(1)
        .expect_stdout("q.sql:5:15: error[query-missing-realm-filter]")
        .expect_stdout("schema/audit-baseline.json:5:1: warning[baseline-stale]")
        .expect_stdout("1 in the baseline");
}

#[tokio::test]
async fn schema_from_migrations_agrees_with_the_live_catalog() {
    let db = TestDb::new("audit_catalog").await;
    db.run(&project_dir(), &["migrate"]).await.expect_code(0);
    let d = TempDir::new("audit-catalog");
    let bad = "SELECT * FROM users WHERE id = $1;\nSELECT * FROM realms;\nSELECT g.id FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.realm_id = $1;\nSELECT * FROM membership_statements WHERE realm_id IN ($1, $2);\n";
    d.write(&[("bad.sql", bad)]);
    let examples = project_dir().join("examples/queries").display().to_string();
    let m = migrations();
    for paths in [vec!["bad.sql"], vec![examples.as_str()]] {
        let mut live = vec!["audit", "--format", "json"];
        live.extend(&paths);
        let mut offline = live.clone();
        offline.extend(["--schema-from", m.as_str()]);
        let a = db.run(d.path(), &live).await;
        let b = db.run(d.path(), &offline).await;
        assert_eq!(a.code, b.code, "{}\n{}", a.stderr, b.stderr);
        assert_eq!(a.stdout, b.stdout);
    }
    let a = db.run(d.path(), &["audit", "bad.sql"]).await;
    a.expect_code(1)
        .expect_stdout("audit: 2 errors, 1 warning in 4 queries (3 touching realm tables)");
}

#[tokio::test]
async fn pg_stat_statements_of_a_real_server() {
    if std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        return; // the suite's own server: we cannot give it shared_preload_libraries
    }
    let cluster = Cluster::throwaway_with(
        std::process::id(),
        5432,
        &[("shared_preload_libraries", "pg_stat_statements")],
        &[],
    )
    .expect("start a cluster with pg_stat_statements");
    let url = cluster.url("postgres");
    let d = TempDir::new("audit-pgss");
    run(
        d.path(),
        &["--database-url", &url, "migrate", "--dir", &migrations()],
    )
    .await
    .expect_code(0);
    let mut c = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("CREATE EXTENSION pg_stat_statements; SELECT pg_stat_statements_reset();")
        .execute(&mut c)
        .await
        .unwrap();
    // The application's queries, with constants (pg_stat_statements turns them into $n).
    for sql in [
        "SELECT * FROM groups WHERE realm_id = 'hub' AND id = 1",
        "SELECT g.id FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.realm_id = 'hub'",
        "UPDATE users SET display_name = 'x' WHERE id = 7",
    ] {
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    }
    let r = run(
        d.path(),
        &[
            "--database-url",
            &url,
            "audit",
            "--from-pg-stat-statements",
            "--format",
            "json",
        ],
    )
    .await;
    r.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let mut found: Vec<(String, String)> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["rule"].as_str().unwrap().into(),
                x["table"].as_str().unwrap().into(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("join-without-realm".to_string(), "groups".to_string()),
            (
                "query-missing-realm-filter".to_string(),
                "users".to_string()
            ),
        ],
        "{}",
        r.stdout
    );
    assert!(v["violations"][0]["query_name"]
        .as_str()
        .unwrap()
        .starts_with("queryid "));
    let text = run(
        d.path(),
        &["--database-url", &url, "audit", "--from-pg-stat-statements"],
    )
    .await;
    text.expect_stdout("pg_stat_statements (queryid ");
    // Without the extension: one clear error.
    let d2 = TestDb::new("audit_nopgss").await;
    d2.run(d.path(), &["audit", "--from-pg-stat-statements"])
        .await
        .expect_one_line_error()
        .expect_stderr("CREATE EXTENSION pg_stat_statements");
    let _ = c.close().await;
    cluster.stop().unwrap();
}

#[tokio::test]
async fn check_runs_the_audit_when_paths_are_set() {
    let db = TestDb::new("audit_check").await;
    let d = TempDir::new("audit-check");
    let mut files: Vec<(String, String)> = std::fs::read_dir(project_dir().join("migrations"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                format!("migrations/{}", p.file_name().unwrap().to_str().unwrap()),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.push(("queries/q.sql".into(), LEAK.into()));
    files.push((
        "schema/realmguard.toml".into(),
        "[audit]\npaths = [\"queries\"]\n".into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    d.write(&refs);
    let r = db.run(d.path(), &["check"]).await;
    r.expect_code(1)
        .expect_stdout("lint: no problems")
        .expect_stdout("error[join-without-realm]")
        .expect_stdout("check: 1 error, 0 warnings");
    let r = db.run(d.path(), &["check", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["audit"]["summary"]["errors"], 1);
}
