//! Test harness: one throwaway PostgreSQL cluster per test run (the same code as the embedded
//! cluster), or the server named by `DATABASE_URL`; one fresh database per test, dropped only when
//! the test passed so a failure leaves its database behind to look at.

#![allow(dead_code)]

use realmguard::embedded::Cluster;
use sqlx::{Connection, PgConnection};
use std::os::unix::process::CommandExt;
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
        Server::External(u) => {
            let mut url = url::Url::parse(u).expect("DATABASE_URL is not a URL");
            url.set_path(&format!("/{db}"));
            url.to_string()
        }
    }
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
}

impl TestDb {
    pub async fn new(tag: &str) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("rg_{}_{}_{}", tag, std::process::id(), n);
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("connect to the test server");
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create test database");
        TestDb {
            url: server_url(&name),
            name,
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
        let admin = admin_url();
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

/// `program` from the test server's binaries, run as the user the server runs as (see
/// [`give_to_server_user`]).
fn server_user_command(program: &Path) -> std::process::Command {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut c = if root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    c.current_dir("/").env("LC_ALL", "C");
    c
}

/// A streaming standby of the throwaway test cluster (`pg_basebackup -R`), on its own Unix
/// socket, stopped and removed when dropped (or, if the test process dies, by a watchdog).
pub struct Standby {
    /// The standby's `postgres` database, for pausing and resuming its replay.
    pub url: String,
    root: PathBuf,
    pg_ctl: PathBuf,
}

impl Standby {
    /// None when there is no throwaway cluster to copy (DATABASE_URL is set) or no
    /// pg_basebackup beside its server binaries: the caller says it skipped.
    pub fn start(tag: &str) -> Option<Standby> {
        let Server::Throwaway(primary) = server() else {
            return None;
        };
        let basebackup = primary.bindir.join("pg_basebackup");
        if !basebackup.is_file() {
            return None;
        }
        let root = std::env::temp_dir().join(format!("rg-standby-{}-{tag}", std::process::id()));
        let (data, socket) = (root.join("data"), root.join("socket"));
        std::fs::create_dir_all(&socket).unwrap();
        give_to_server_user(&root);
        give_to_server_user(&socket);
        let port = url::Url::parse(&primary.url("postgres"))
            .unwrap()
            .port()
            .unwrap();
        let out = server_user_command(&basebackup)
            .arg("-D")
            .arg(&data)
            .args(["-R", "-X", "stream", "-c", "fast", "-U", "postgres"])
            .arg("-h")
            .arg(&primary.socket_dir)
            .args(["-p", &port.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The copy carries the primary's socket settings; the standby gets its own socket (the
        // same port number names a different file there).
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.auto.conf"))
            .unwrap();
        use std::io::Write;
        writeln!(
            conf,
            "listen_addresses = ''\nunix_socket_directories = '{}'",
            socket.display()
        )
        .unwrap();
        let pg_ctl = primary.bindir.join("pg_ctl");
        let out = server_user_command(&pg_ctl)
            .arg("start")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-w", "-t", "60", "-s"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "starting the standby: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let watchdog = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; runuser -u postgres -- '{ctl}' -D '{data}' stop -m immediate || '{ctl}' -D '{data}' stop -m immediate; rm -rf '{root}'",
            pid = std::process::id(),
            ctl = pg_ctl.display(),
            data = data.display(),
            root = root.display(),
        );
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own process group: a Ctrl-C on the test run must not kill the cleaner.
            .process_group(0);
        // Never waited for: it is meant to outlive the test process.
        #[allow(clippy::zombie_processes)]
        cmd.spawn().unwrap();
        let host: String =
            url::form_urlencoded::byte_serialize(socket.as_os_str().as_encoded_bytes()).collect();
        Some(Standby {
            url: format!("postgres://postgres@localhost:{port}/postgres?host={host}"),
            root,
            pg_ctl,
        })
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = server_user_command(&self.pg_ctl)
            .arg("stop")
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-m", "immediate", "-s"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
