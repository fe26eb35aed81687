//! Test harness: one throwaway PostgreSQL cluster per test run (the same code as the embedded
//! cluster), or the server named by `DATABASE_URL`; one fresh database per test, dropped only when
//! the test passed so a failure leaves its database behind to look at.

#![allow(dead_code)]

pub mod citus;

use realmguard::embedded::Cluster;
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

enum Server {
    Throwaway(Cluster),
    External(String),
}

static SERVER: OnceLock<Server> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => Server::External(u),
        _ => Server::Throwaway(
            Cluster::throwaway(std::process::id())
                .expect("cannot start the throwaway test cluster"),
        ),
    })
}

/// URL of database `db` on the test server.
pub fn server_url(db: &str) -> String {
    match server() {
        Server::Throwaway(c) => c.url(db),
        Server::External(u) => with_database(u, db),
    }
}

/// `url` (of any database on a server) pointing at database `db` of the same server.
fn with_database(url: &str, db: &str) -> String {
    let mut url = url::Url::parse(url).expect("not a URL");
    url.set_path(&format!("/{db}"));
    url.to_string()
}

fn admin_url() -> String {
    match server() {
        Server::Throwaway(c) => c.url("postgres"),
        Server::External(u) => u.clone(),
    }
}

/// A fresh database for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// The server's maintenance database, where this one is dropped from.
    admin: String,
}

impl TestDb {
    pub async fn new(tag: &str) -> TestDb {
        Self::on(&admin_url(), tag).await
    }

    /// A fresh database on the server whose maintenance database is `admin`.
    pub async fn on(admin: &str, tag: &str) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("rg_{}_{}_{}", tag, std::process::id(), n);
        let mut c = PgConnection::connect(admin)
            .await
            .expect("connect to the test server");
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut c)
            .await
            .expect("create test database");
        TestDb {
            url: with_database(admin, &name),
            name,
            admin: admin.to_string(),
        }
    }

    pub async fn conn(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Run SQL (several statements allowed) and panic with the error on failure.
    pub async fn exec(&self, sql: &str) {
        let mut c = self.conn().await;
        sqlx::raw_sql(sql)
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"));
    }

    /// First column of the first row, as text (NULL as "NULL").
    pub async fn scalar(&self, sql: &str) -> String {
        let mut c = self.conn().await;
        let v: Option<String> = sqlx::query_scalar(&format!("SELECT ({sql})::text"))
            .fetch_one(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"));
        v.unwrap_or_else(|| "NULL".into())
    }

    /// The server's `server_version_num` (180004 for 18.4), for tests of one major's behaviour.
    pub async fn server_version(&self) -> u32 {
        self.scalar("current_setting('server_version_num')")
            .await
            .parse()
            .expect("server_version_num is a number")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM ({sql}) q"))
            .await
            .parse()
            .unwrap()
    }

    /// The realmguard binary with DATABASE_URL pointing at this database, run in `dir`.
    pub fn cmd(&self, dir: &Path) -> tokio::process::Command {
        let mut c = realmguard_cmd(dir);
        c.env("DATABASE_URL", &self.url);
        c
    }

    pub async fn run(&self, dir: &Path, args: &[&str]) -> Run {
        Run::from(
            self.cmd(dir)
                .args(args)
                .output()
                .await
                .expect("run realmguard"),
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test database kept for inspection: {}", self.url);
            return;
        }
        let name = self.name.clone();
        let admin = self.admin.clone();
        // Drop runs outside any runtime guarantee: use a private one on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = PgConnection::connect(&admin).await {
                    let _ =
                        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut c)
                            .await;
                }
            })
        })
        .join();
    }
}

/// The realmguard binary, without DATABASE_URL, in `dir`.
pub fn realmguard_cmd(dir: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_realmguard"));
    c.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    c.kill_on_drop(true);
    c
}

/// What a finished realmguard process left.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panic with everything the process printed unless it exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panic with everything the process printed unless its stdout contains `text`.
    pub fn expect_stdout(&self, text: &str) -> &Self {
        self.expect_in("stdout", &self.stdout, text)
    }

    /// Panic with everything the process printed unless its stderr contains `text`.
    pub fn expect_stderr(&self, text: &str) -> &Self {
        self.expect_in("stderr", &self.stderr, text)
    }

    fn expect_in(&self, stream: &str, printed: &str, text: &str) -> &Self {
        assert!(
            printed.contains(text),
            "{stream} lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panic unless `text` (a password, say) appears in neither stream.
    pub fn expect_not_printed(&self, text: &str) -> &Self {
        assert!(
            !self.stdout.contains(text) && !self.stderr.contains(text),
            "{text:?} was printed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// A user-facing error: exactly one `error:` line on stderr (besides `realmguard:` progress
    /// notes), no panic, no backtrace.
    pub fn expect_one_line_error(&self) -> &Self {
        self.expect_code(2);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.starts_with("realmguard: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one error line, got:\n{}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "{}",
            self.stderr
        );
        self
    }
}

/// A temporary directory, removed when the test passed.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("rg-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Write `files` (relative path, content) below this directory.
    pub fn write(&self, files: &[(&str, &str)]) -> &Self {
        for (rel, content) in files {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        self
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The project's own files (migrations/, schema/), for tests that use them.
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Hand `path` to the user the test server runs as: `postgres` when we are root (PostgreSQL
/// refuses to run as root), else ourselves, who own it already.
pub fn give_to_server_user(path: &Path) {
    let id = |args: &[&str]| -> u32 {
        let out = std::process::Command::new("id")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    if id(&["-u"]) == 0 {
        let (uid, gid) = (id(&["-u", "postgres"]), id(&["-g", "postgres"]));
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// A primary and a streaming standby of it, both throwaway clusters of their own (so the lag a
/// test makes is its own, whatever the other tests write). The standby is a copy of the
/// primary's data directory taken while the primary was cleanly stopped, which needs no
/// `pg_basebackup` (the PostgreSQL 16-18 binaries CI tests with come without it).
pub struct Replicated {
    pub primary: Cluster,
    standby: Cluster,
}

impl Replicated {
    /// None under DATABASE_URL: the suite then has no server binaries of its own to use.
    pub fn start(tag: &str) -> Option<Replicated> {
        if matches!(server(), Server::External(_)) {
            return None;
        }
        let primary = Cluster::throwaway(std::process::id()).expect("start the primary");
        primary.stop().expect("stop the primary for the copy");
        let home = std::env::temp_dir().join(format!("rg-standby-{}-{tag}", std::process::id()));
        let standby = Cluster::at(&home, Vec::new()).expect("a place for the standby");
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(&primary.data_dir)
            .arg(&standby.data_dir)
            .status()
            .unwrap();
        assert!(copied.success(), "cannot copy the primary's data directory");
        // The copy carries the primary's socket settings: the standby gets its own socket (the
        // same port number names another file there), and streams from the primary's.
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(standby.data_dir.join("postgresql.auto.conf"))
            .unwrap();
        use std::io::Write;
        let port = url::Url::parse(&primary.url("postgres"))
            .unwrap()
            .port()
            .unwrap();
        writeln!(
            conf,
            "unix_socket_directories = '{}'\nprimary_conninfo = 'host={} port={port} user=postgres application_name=rg_standby'",
            standby.socket_dir.display(),
            primary.socket_dir.display(),
        )
        .unwrap();
        std::fs::write(standby.data_dir.join("standby.signal"), "").unwrap();
        give_to_server_user(&standby.data_dir.join("standby.signal"));
        primary.ensure_started().expect("restart the primary");
        standby.ensure_started().expect("start the standby");
        standby
            .spawn_watchdog(std::process::id(), &home)
            .expect("a watchdog for the standby");
        Some(Replicated { primary, standby })
    }

    /// The standby's `postgres` database, for pausing and resuming its replay.
    pub fn standby_url(&self) -> String {
        self.standby.url("postgres")
    }
}
