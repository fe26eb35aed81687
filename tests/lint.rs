//! `realmguard lint` end to end: the built binary on migration directories, as CI runs it.

use crate::common::{project_dir, realmguard_cmd, Run, TempDir};

async fn lint(dir: &TempDir, args: &[&str]) -> Run {
    lint_env(dir, args, &[]).await
}

async fn lint_env(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = realmguard_cmd(dir.path());
    c.arg("lint").args(args).env_remove("GITHUB_ACTIONS");
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.output().await.expect("run realmguard lint"))
}

const USERS: &str = "CREATE TABLE users (\n    id bigint NOT NULL,\n    realm_id text NOT NULL,\n    email text,\n    PRIMARY KEY (id, realm_id)\n);\n";

#[tokio::test]
async fn the_projects_own_migrations_are_clean() {
    let out = realmguard_cmd(&project_dir())
        .args(["lint"])
        .env_remove("GITHUB_ACTIONS")
        .output()
        .await
        .unwrap();
    let run = Run::from(out);
    run.expect_code(0);
    run.expect_stdout("lint: no problems in 6 files");
}

#[tokio::test]
async fn error_finding_exits_1_with_location_source_line_and_caret() {
    let d = TempDir::new("lint-err");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_index.sql",
            "-- logins look users up by email\nCREATE INDEX users_email_idx ON users (email);\n",
        ),
    ]);
    let run = lint(&d, &[]).await;
    run.expect_code(1);
    let expected = "migrations/0002_index.sql:2:33: error[require-concurrent-index-creation]: CREATE INDEX on existing table \"users\" without CONCURRENTLY blocks every write to it until the index is built\n  |\n2 | CREATE INDEX users_email_idx ON users (email);\n  |                                 ^^^^^\n  = help: Use CREATE INDEX CONCURRENTLY, in a migration whose first line is `-- realmguard:no-transaction`.\n";
    assert!(run.stdout.starts_with(expected), "{}", run.stdout);
    assert!(
        run.stdout
            .ends_with("lint: 1 error, 0 warnings in 2 files (2 statements)\n"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[tokio::test]
async fn warnings_alone_exit_0() {
    let d = TempDir::new("lint-warn");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_drop.sql",
            "ALTER TABLE users DROP COLUMN email;\n",
        ),
    ]);
    let run = lint(&d, &[]).await;
    run.expect_code(0);
    run.expect_stdout("warning[ban-drop-column]");
}

#[tokio::test]
async fn json_report_has_every_field() {
    let d = TempDir::new("lint-json");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_x.sql",
            "ALTER TABLE users ADD COLUMN tenant text NOT NULL;\nALTER TABLE users RENAME COLUMN email TO mail;\n",
        ),
    ]);
    let run = lint(&d, &["--format", "json"]).await;
    run.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(v["ok"], false);
    assert_eq!(v["summary"]["files"], 2);
    assert_eq!(v["summary"]["statements"], 3);
    assert_eq!(v["summary"]["errors"], 1);
    assert_eq!(v["summary"]["warnings"], 1);
    let first = &v["violations"][0];
    assert_eq!(first["rule"], "adding-required-field");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["file"], "migrations/0002_x.sql");
    assert_eq!(first["line"], 1);
    assert_eq!(first["column"], 30);
    assert!(first["message"].as_str().unwrap().contains("\"tenant\""));
    assert!(!first["help"].as_str().unwrap().is_empty());
    assert_eq!(v["violations"][1]["rule"], "renaming-column");
    assert_eq!(v["violations"][1]["severity"], "warning");
}

#[tokio::test]
async fn junit_report_fails_on_errors_only() {
    let d = TempDir::new("lint-junit");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_x.sql",
            "ALTER TABLE users ALTER COLUMN email TYPE varchar(10);\nALTER TABLE users DROP COLUMN email;\n",
        ),
    ]);
    let run = lint(&d, &["--format", "junit"]).await;
    run.expect_code(1);
    assert!(run.stdout.starts_with("<?xml"), "{}", run.stdout);
    run.expect_stdout(r#"tests="2" failures="1""#);
    run.expect_stdout(r#"name="migrations/0002_x.sql:1:32 changing-column-type""#);
}

#[tokio::test]
async fn github_actions_gets_annotations() {
    let d = TempDir::new("lint-gh");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_x.sql",
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\nALTER TABLE users DROP COLUMN email;\n",
        ),
    ]);
    let run = lint_env(&d, &[], &[("GITHUB_ACTIONS", "true")]).await;
    run.expect_code(1);
    let annotations: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(annotations.len(), 2, "{}", run.stdout);
    assert!(
        annotations[0].starts_with(
            "::error file=migrations/0002_x.sql,line=1,col=34,title=disallowed-unique-constraint::adding a UNIQUE constraint"
        ),
        "{}",
        annotations[0]
    );
    assert!(
        annotations[0].contains("%0A"),
        "help on a second line: {}",
        annotations[0]
    );
    assert!(
        annotations[1].starts_with(
            "::warning file=migrations/0002_x.sql,line=2,col=31,title=ban-drop-column::"
        ),
        "{}",
        annotations[1]
    );
    // Not on GitHub: no annotations.
    let plain = lint(&d, &[]).await;
    assert!(!plain.stdout.contains("::error"), "{}", plain.stdout);
}

#[tokio::test]
async fn ignore_comment_on_the_line_before_silences_that_rule_there_only() {
    let d = TempDir::new("lint-ignore");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_x.sql",
            "-- realmguard:ignore require-concurrent-index-creation\nCREATE INDEX a_idx ON users (email);\nCREATE INDEX b_idx ON users (email);\n-- realmguard:ignore ban-drop-column\nCREATE INDEX c_idx ON users (realm_id);\n",
        ),
    ]);
    let run = lint(&d, &["--format", "json"]).await;
    run.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let lines: Vec<i64> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["line"].as_i64().unwrap())
        .collect();
    // Line 2 ignored; line 3 has no comment; line 5's comment names another rule.
    assert_eq!(lines, vec![3, 5], "{}", run.stdout);
}

#[tokio::test]
async fn config_changes_levels() {
    let d = TempDir::new("lint-cfg");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_x.sql",
            "ALTER TABLE users DROP COLUMN email;\nCREATE INDEX a_idx ON users (realm_id);\n",
        ),
        (
            "schema/realmguard.toml",
            "[rules]\nban-drop-column = \"error\"\nrequire-concurrent-index-creation = \"off\"\n",
        ),
    ]);
    let run = lint(&d, &[]).await;
    run.expect_code(1);
    run.expect_stdout("error[ban-drop-column]");
    assert!(
        !run.stdout.contains("require-concurrent-index-creation"),
        "{}",
        run.stdout
    );

    d.write(&[(
        "schema/realmguard.toml",
        "[rules]\nrequire-concurrent-index-creation = \"warning\"\n",
    )]);
    lint(&d, &[]).await.expect_code(0);

    d.write(&[(
        "schema/realmguard.toml",
        "[rules]\nno-such-rule = \"off\"\n",
    )]);
    let bad = lint(&d, &[]).await;
    bad.expect_one_line_error();
    bad.expect_stderr("no-such-rule");
}

#[tokio::test]
async fn unsupported_statement_costs_one_parse_error_and_the_rest_is_checked() {
    let d = TempDir::new("lint-parse");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_x.sql",
            "DO $$\nBEGIN\n  EXECUTE 'ANALYZE users';\nEND\n$$;\nCREATE STATISTICS s1 ON id, realm_id FROM users;\nALTER TABLE users DROP COLUMN email;\nSELECT 'unterminated;\nALTER TABLE users DROP COLUMN realm_id;\n",
        ),
    ]);
    let run = lint(&d, &["--format", "json"]).await;
    run.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let found: Vec<(String, i64)> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["line"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("parse-error".to_string(), 1),
            ("parse-error".to_string(), 6),
            ("ban-drop-column".to_string(), 7),
            ("parse-error".to_string(), 8),
        ],
        "{}",
        run.stdout
    );
    let msg = v["violations"][0]["message"].as_str().unwrap();
    assert!(msg.contains("so no rule could check what it runs"), "{msg}");
}

#[tokio::test]
async fn a_file_given_alone_is_judged_against_the_earlier_migrations() {
    let d = TempDir::new("lint-one");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        // An earlier problem, not in the file asked about: not reported.
        ("migrations/0002_bad.sql", "CREATE TABLE tags (id int PRIMARY KEY, realm_id text);\n"),
        (
            "migrations/0007_posts.sql",
            "CREATE TABLE posts (\n    id bigint,\n    realm_id text NOT NULL,\n    author_id bigint REFERENCES users (id) ON DELETE CASCADE,\n    PRIMARY KEY (id, realm_id)\n);\n",
        ),
    ]);
    let run = lint(&d, &["--format", "json", "migrations/0007_posts.sql"]).await;
    run.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["summary"]["files"], 1);
    let rules: Vec<&str> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, vec!["fk-missing-realm"], "{}", run.stdout);
    assert_eq!(v["violations"][0]["file"], "migrations/0007_posts.sql");
}

#[tokio::test]
async fn invalid_utf8_is_a_parse_error_not_a_crash() {
    let d = TempDir::new("lint-utf8");
    d.write(&[("migrations/0001_users.sql", USERS)]);
    std::fs::write(
        d.path().join("migrations/0002_x.sql"),
        b"-- caf\xe9\nALTER TABLE users DROP COLUMN email;\n",
    )
    .unwrap();
    let run = lint(&d, &[]).await;
    run.expect_code(1);
    run.expect_stdout("0002_x.sql:1:7: error[parse-error]: the file is not valid UTF-8");
    run.expect_stdout("warning[ban-drop-column]");
}

#[tokio::test]
async fn missing_paths_are_one_line_errors() {
    let d = TempDir::new("lint-missing");
    let run = lint(&d, &[]).await;
    run.expect_one_line_error();
    run.expect_stderr("migrations/");
    let run = lint(&d, &["nowhere.sql"]).await;
    run.expect_one_line_error();
    run.expect_stderr("nowhere.sql");
}

#[tokio::test]
async fn include_turns_on_opt_in_rules_exclude_turns_off_rules_and_groups() {
    let d = TempDir::new("lint-include");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_x.sql",
            "CREATE TABLE notes (id bigint PRIMARY KEY, realm_id text NOT NULL, body text);\nALTER TABLE users DROP COLUMN email;\n",
        ),
    ]);
    let ids = |run: &Run| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        v["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_string())
            .collect()
    };
    let plain = lint(&d, &["--format", "json"]).await;
    assert_eq!(
        ids(&plain),
        ["composite-primary-key", "ban-drop-column"],
        "{}",
        plain.stdout
    );
    // The opt-in rule runs on top of the defaults.
    let with = lint(
        &d,
        &["--format", "json", "--include", "require-table-schema"],
    )
    .await;
    assert_eq!(
        ids(&with),
        [
            "require-table-schema",
            "require-table-schema",
            "composite-primary-key",
            "require-table-schema",
            "ban-drop-column"
        ],
        "{}",
        with.stdout
    );
    // A group and an id, in one list or repeated.
    let without = lint(
        &d,
        &[
            "--format",
            "json",
            "--exclude",
            "realm",
            "--exclude=ban-drop-column",
        ],
    )
    .await;
    without.expect_code(0);
    assert!(ids(&without).is_empty(), "{}", without.stdout);
    let both = lint(
        &d,
        &[
            "--format",
            "json",
            "--include",
            "require-table-schema",
            "--exclude",
            "style,realm",
        ],
    )
    .await;
    assert_eq!(ids(&both), ["ban-drop-column"], "{}", both.stdout);

    let bad = lint(&d, &["--exclude", "ban-drop-colum"]).await;
    bad.expect_one_line_error();
    bad.expect_stderr("unknown lint rule or group `ban-drop-colum`");
}

#[tokio::test]
async fn another_runner_needs_timeouts_and_wraps_no_file_in_a_transaction() {
    let d = TempDir::new("lint-runner");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            // No directive: realmguard's runner wraps it (CONCURRENTLY would fail), psql-like
            // runners do not.
            "migrations/0002_idx.sql",
            "SET lock_timeout = '2s';\nSET statement_timeout = '10min';\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);\n",
        ),
        (
            "migrations/0003_col.sql",
            "ALTER TABLE users ADD COLUMN IF NOT EXISTS nick text;\n",
        ),
    ]);
    let ours = lint(&d, &[]).await;
    ours.expect_code(1);
    ours.expect_stdout("0002_idx.sql:3:1: error[ban-concurrent-index-creation-in-transaction]");
    assert!(
        !ours.stdout.contains("require-timeout-settings"),
        "{}",
        ours.stdout
    );

    let other = lint(&d, &["--assume-runner", "other"]).await;
    other.expect_code(0);
    assert!(
        !other
            .stdout
            .contains("ban-concurrent-index-creation-in-transaction"),
        "{}",
        other.stdout
    );
    other.expect_stdout("0003_col.sql:1:1: warning[require-timeout-settings]");
    assert!(!other.stdout.contains("0002_idx.sql"), "{}", other.stdout);

    let bad = lint(&d, &["--assume-runner", "flyway"]).await;
    bad.expect_code(2);
}

#[tokio::test]
async fn pg_version_changes_the_verdict_on_defaults() {
    let d = TempDir::new("lint-pgver");
    d.write(&[
        ("migrations/0001_users.sql", USERS),
        (
            "migrations/0002_x.sql",
            "ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;\n",
        ),
    ]);
    lint(&d, &[]).await.expect_code(0);
    lint(&d, &["--pg-version", "15"]).await.expect_code(0);
    let old = lint(&d, &["--pg-version", "10"]).await;
    old.expect_code(1);
    old.expect_stdout("error[adding-field-with-default]");
    old.expect_stdout("before 11");
    lint(&d, &["--pg-version", "ten"]).await.expect_code(2);
}

async fn explain(dir: &TempDir, args: &[&str]) -> Run {
    let mut c = realmguard_cmd(dir.path());
    c.arg("explain").args(args);
    Run::from(c.output().await.expect("run realmguard explain"))
}

#[tokio::test]
async fn explain_prints_the_page_of_every_listed_rule() {
    let d = TempDir::new("explain");
    let list = explain(&d, &[]).await;
    list.expect_code(0);
    let ids: Vec<&str> = list
        .stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // Every lint rule is listed: squawk's, realmguard's own, the realm rules.
    for id in [
        "require-enum-value-ordering",
        "require-timeout-settings",
        "parse-error",
        "fk-missing-realm",
    ] {
        assert!(ids.contains(&id), "{id} not listed:\n{}", list.stdout);
    }
    assert!(ids.len() >= 44, "{}", list.stdout);
    assert!(
        !ids.contains(&"realm-fk-missing"),
        "a verify-only rule is listed"
    );
    for id in &ids {
        let page = explain(&d, &[id]).await;
        page.expect_code(0);
        page.expect_stdout(&format!("\n# {id}\n"));
        page.expect_stdout("## The safe way");
    }
    let page = explain(&d, &["require-table-schema"]).await;
    page.expect_stdout("require-table-schema: default level off, group style");
}

#[tokio::test]
async fn explain_of_an_unknown_id_is_one_line_exit_2() {
    let d = TempDir::new("explain-bad");
    for bad in ["no-such-rule", "realm-fk-missing"] {
        let run = explain(&d, &[bad]).await;
        run.expect_one_line_error();
        run.expect_stderr(&format!(
            "no lint rule `{bad}`; `realmguard explain` lists the rule ids"
        ));
    }
}
