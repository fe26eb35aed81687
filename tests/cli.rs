//! Command-line behaviour that needs no particular schema: bad input gets one clear line, exit 2,
//! no panic, no password.

use crate::common::{realmguard_cmd, Run, TempDir, TestDb};

async fn run_with_url(dir: &std::path::Path, url: &str, args: &[&str]) -> Run {
    let mut c = realmguard_cmd(dir);
    c.env("DATABASE_URL", url).args(args);
    Run::from(c.output().await.unwrap())
}

#[tokio::test]
async fn a_file_name_that_does_not_fit_shows_the_expected_form() {
    let db = TestDb::new("badname").await;
    let dir = TempDir::new("badname");
    dir.write(&[
        ("migrations/0001_ok.sql", "SELECT 1;"),
        ("migrations/add-users.sql", "SELECT 1;"),
    ]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_one_line_error();
    assert!(
        r.stderr.contains("add-users.sql") && r.stderr.contains("<VERSION>_<description>.sql"),
        "{}",
        r.stderr
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'realmguard'")
            .await,
        "0"
    );
}

#[tokio::test]
async fn a_missing_directory_is_one_line() {
    let db = TestDb::new("nodir").await;
    let dir = TempDir::new("nodir");
    let r = db.run(dir.path(), &["migrate", "--dir", "nowhere"]).await;
    r.expect_one_line_error();
    r.expect_stderr("nowhere");
}

#[tokio::test]
async fn malformed_urls_never_echo_the_password() {
    let dir = TempDir::new("badurl");
    dir.write(&[("migrations/0001_ok.sql", "SELECT 1;")]);
    for url in [
        "postgres://bob:hunter2@host:notaport/db",
        "not a url hunter2",
        "mysql://bob:hunter2@h/db",
    ] {
        let r = run_with_url(dir.path(), url, &["migrate"]).await;
        r.expect_one_line_error();
        r.expect_not_printed("hunter2");
    }
}

#[tokio::test]
async fn a_closed_port_is_one_line_without_the_password() {
    let dir = TempDir::new("closed");
    dir.write(&[("migrations/0001_ok.sql", "SELECT 1;")]);
    let r = run_with_url(
        dir.path(),
        "postgres://bob:hunter2@127.0.0.1:1/db",
        &["status"],
    )
    .await;
    r.expect_one_line_error();
    assert!(
        r.stderr.contains("cannot connect") && r.stderr.contains("bob:***@127.0.0.1:1"),
        "{}",
        r.stderr
    );
    r.expect_not_printed("hunter2");
}

#[tokio::test]
async fn a_wrong_password_is_one_line_without_the_password() {
    let db = TestDb::new("pw").await;
    if std::env::var("DATABASE_URL").is_ok() {
        eprintln!("skipped: the throwaway cluster's pg_hba is needed to force password auth");
        return;
    }
    db.exec("CREATE ROLE rg_pw_user LOGIN PASSWORD 'right-one'")
        .await;
    let dir = TempDir::new("pw");
    dir.write(&[("migrations/0001_ok.sql", "SELECT 1;")]);
    let url = db.url.replacen(
        "postgres://postgres@",
        "postgres://rg_pw_user:wrong%21pw@",
        1,
    );
    let r = run_with_url(dir.path(), &url, &["migrate"]).await;
    db.exec("DROP ROLE rg_pw_user").await;
    r.expect_one_line_error();
    r.expect_stderr("password authentication failed");
    r.expect_not_printed("wrong!pw")
        .expect_not_printed("wrong%21pw");
}

#[tokio::test]
async fn bad_arguments_exit_2() {
    let dir = TempDir::new("args");
    let r = Run::from(
        realmguard_cmd(dir.path())
            .args(["migrate", "--lock-timeout", "soon"])
            .output()
            .await
            .unwrap(),
    );
    r.expect_code(2);
    let r = Run::from(
        realmguard_cmd(dir.path())
            .args(["frobnicate"])
            .output()
            .await
            .unwrap(),
    );
    r.expect_code(2);
    // Refused before any connection: no database is named, none is needed.
    let r = Run::from(
        realmguard_cmd(dir.path())
            .args(["backfill", "run", "--workers", "65"])
            .output()
            .await
            .unwrap(),
    );
    r.expect_code(2);
    r.expect_stderr("--workers");
}

#[tokio::test]
async fn an_unknown_config_key_is_named() {
    let db = TestDb::new("cfg").await;
    let dir = TempDir::new("cfg");
    dir.write(&[
        ("migrations/0001_ok.sql", "SELECT 1;"),
        ("schema/realmguard.toml", "realm_colum = \"x\"\n"),
    ]);
    let r = db.run(dir.path(), &["migrate"]).await;
    r.expect_one_line_error();
    r.expect_stderr("realm_colum");
}
