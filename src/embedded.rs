//! The embedded local cluster: so that a newcomer can run every command with no server to set
//! up, realmguard initialises a PostgreSQL cluster from the installed server binaries under
//! `.realmguard/pg` (or `$REALMGUARD_HOME/pg`), listening only on a Unix socket inside it, and
//! starts it on demand. The test harness uses the same code for its throwaway cluster.
//!
//! PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user.
//! That user must be able to reach the data directory: a checkout under a 0700 home is not
//! reachable, so we check as that user and fall back to a private directory under the system temp
//! dir (named after the project path, so every run finds the same one).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PORT: u16 = 5432;
/// sun_path is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
const INSTALL_HINT: &str =
    "install them with `apt-get install postgresql` (or set DATABASE_URL to use a running server)";

/// Why the embedded cluster could not be found, created, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot determine the current directory")]
    CurrentDir(#[source] std::io::Error),
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file operation on `path` failed; shown as the OS error alone, as it always was (kept
    /// out of the cause chain, which would say it twice).
    #[error("{reason}")]
    Io {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("neither {} nor {} can hold the embedded cluster (the `postgres` user cannot reach them or the socket path is too long); set REALMGUARD_HOME to a short directory it can reach", preferred.display(), fallback.display())]
    NoRoot {
        preferred: PathBuf,
        fallback: PathBuf,
    },
    #[error("cannot hand {} to the postgres user", path.display())]
    HandOver {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the cluster watchdog")]
    Watchdog(#[source] std::io::Error),
    #[error("cannot run {what}")]
    Run {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {last} (server log: {})", log.display())]
    Failed {
        what: String,
        last: String,
        log: PathBuf,
    },
    #[error("cannot lock the embedded cluster directory")]
    Lock(#[source] std::io::Error),
    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("REALMGUARD_PG_BINDIR={} holds no initdb/postgres/pg_ctl; {INSTALL_HINT}", dir.display())]
    BadBindir { dir: PathBuf },
    #[error("PostgreSQL server binaries (initdb, postgres, pg_ctl) not found; {INSTALL_HINT}")]
    NoBinaries,
    #[error("running as root needs a `postgres` system user to run the server; {INSTALL_HINT}")]
    NoPostgresUser,
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// The file operation's OS error, naming `path` (rendered as before: the OS error alone).
fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |reason| Error::Io {
        path: path.to_path_buf(),
        reason,
    }
}

#[derive(Debug, Clone)]
pub struct Cluster {
    /// Directory owning everything: data/, socket/, server.log, lock.
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub log_file: PathBuf,
    pub bindir: PathBuf,
    /// uid/gid of the `postgres` user when we are root.
    run_as: Option<(u32, u32)>,
    /// Extra postgresql.conf settings written at initdb time.
    settings: Vec<(String, String)>,
    /// pg_hba.conf lines put before the default ones at initdb time.
    hba_first: Vec<String>,
    /// The server's port: the Unix socket's name, and TCP's when a setting enables it.
    port: u16,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterStatus {
    pub running: bool,
    pub pid: Option<u32>,
    pub url: String,
    pub data_dir: String,
    pub log_file: String,
}

impl Cluster {
    /// The project's cluster: `$REALMGUARD_HOME/pg`, else `./.realmguard/pg`.
    pub fn default_for_cwd() -> Result<Cluster> {
        let home = match std::env::var_os("REALMGUARD_HOME") {
            Some(h) if !h.is_empty() => PathBuf::from(h),
            _ => std::env::current_dir()
                .map_err(Error::CurrentDir)?
                .join(".realmguard"),
        };
        Self::at(&home, Vec::new())
    }

    /// A cluster rooted at `home/pg` (or the temp-dir fallback when `postgres` cannot reach it).
    pub fn at(home: &Path, settings: Vec<(String, String)>) -> Result<Cluster> {
        let bindir = find_bindir()?;
        let run_as = if is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        fs::create_dir_all(home).map_err(|source| Error::Create {
            path: home.to_path_buf(),
            source,
        })?;
        let home = home.canonicalize().map_err(io_at(home))?;
        let preferred = home.join("pg");
        let root = if Self::usable_root(&preferred, run_as)? {
            preferred
        } else {
            let fallback = std::env::temp_dir().join(format!(
                "realmguard-{}-{:016x}",
                fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0),
                fnv1a(home.as_os_str().as_encoded_bytes())
            ));
            if !Self::usable_root(&fallback, run_as)? {
                return Err(Error::NoRoot {
                    preferred,
                    fallback,
                });
            }
            fallback
        };
        Ok(Cluster {
            data_dir: root.join("data"),
            socket_dir: root.join("socket"),
            log_file: root.join("server.log"),
            root,
            bindir,
            run_as,
            settings,
            hba_first: Vec::new(),
            port: PORT,
        })
    }

    /// Create `root` for the server's user and check, as that user, that it can work there.
    fn usable_root(root: &Path, run_as: Option<(u32, u32)>) -> Result<bool> {
        // The longest socket name any port gives (a throwaway cluster may not use PORT).
        let socket = root.join("socket").join(format!(".s.PGSQL.{}", u16::MAX));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Ok(false);
        }
        if let Err(e) = fs::create_dir_all(root) {
            if run_as.is_some() {
                return Ok(false);
            }
            return Err(Error::Create {
                path: root.to_path_buf(),
                source: e,
            });
        }
        let Some((uid, gid)) = run_as else {
            return Ok(true);
        };
        let meta = fs::metadata(root).map_err(io_at(root))?;
        if meta.uid() != uid {
            std::os::unix::fs::chown(root, Some(uid), Some(gid)).map_err(|source| {
                Error::HandOver {
                    path: root.to_path_buf(),
                    source,
                }
            })?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io_at(root))?;
        }
        let ok = Command::new("test")
            .arg("-w")
            .arg(root)
            .arg("-a")
            .arg("-x")
            .arg(root)
            .uid(uid)
            .gid(gid)
            .current_dir("/")
            .stdin(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        Ok(ok)
    }

    #[cfg(feature = "test-support")]
    /// A throwaway cluster for a test run: temp dir, durability off, removed by a watchdog once
    /// the process `owner_pid` is gone (however it ended: pass, fail, panic or kill).
    pub fn throwaway(owner_pid: u32) -> Result<Cluster> {
        Self::throwaway_with(owner_pid, PORT, &[], &[])
    }

    #[cfg(feature = "test-support")]
    /// [`Cluster::throwaway`] on `port` with more settings (later ones win, so
    /// `listen_addresses` can open TCP) and pg_hba.conf lines before the suite's own.
    pub fn throwaway_with(
        owner_pid: u32,
        port: u16,
        settings: &[(&str, &str)],
        hba_first: &[&str],
    ) -> Result<Cluster> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let home = std::env::temp_dir().join(format!("rg-test-{owner_pid}-{nanos:x}"));
        let settings = [
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "300"),
            ("shared_buffers", "128MB"),
        ]
        .iter()
        .chain(settings)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut cluster = Self::at(&home, settings)?;
        cluster.port = port;
        cluster
            .hba_first
            .extend(hba_first.iter().map(|l| l.to_string()));
        // Trust for everyone on the private socket, except the test roles rg_pw_user and
        // rg_realm_pw, which must give a password: that is how the suite proves a wrong password
        // is reported cleanly (two roles, because roles are cluster-wide and tests run at once).
        cluster
            .hba_first
            .push("local all rg_pw_user,rg_realm_pw scram-sha-256".into());
        cluster.ensure_started()?;
        cluster.spawn_watchdog(owner_pid, &home)?;
        Ok(cluster)
    }

    #[cfg(feature = "test-support")]
    /// Stop this cluster and remove it and `home` once process `owner_pid` is gone, however it
    /// ended (a throwaway cluster's cleaner; the test suite also gives one to a standby it
    /// copies from a throwaway primary).
    pub fn spawn_watchdog(&self, owner_pid: u32, home: &Path) -> Result<()> {
        let script = format!(
            "while [ -d /proc/{owner_pid} ]; do sleep 1; done; {} -D {} stop -m immediate >/dev/null 2>&1; rm -rf {} {}",
            sh_quote(&self.bindir.join("pg_ctl").to_string_lossy()),
            sh_quote(&self.data_dir.to_string_lossy()),
            sh_quote(&self.root.to_string_lossy()),
            sh_quote(&home.to_string_lossy()),
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: a Ctrl-C on the test run must not kill the cleaner.
        cmd.process_group(0);
        if let Some((uid, gid)) = self.run_as {
            // The home itself was created by root; let the server's user remove it.
            let _ = std::os::unix::fs::chown(home, Some(uid), Some(gid));
            cmd.uid(uid).gid(gid).current_dir("/");
        }
        cmd.spawn().map_err(Error::Watchdog)?;
        Ok(())
    }

    /// A connection URL for database `db` over the Unix socket.
    pub fn url(&self, db: &str) -> String {
        let host: String =
            url::form_urlencoded::byte_serialize(self.socket_dir.as_os_str().as_encoded_bytes())
                .collect();
        format!(
            "postgres://postgres@localhost:{}/{db}?host={host}",
            self.port
        )
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(program));
        cmd.stdin(Stdio::null());
        // The server's user may not be allowed into our working directory.
        cmd.current_dir(&self.root);
        cmd.env_remove("PGDATA").env("LC_ALL", "C");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<()> {
        let out = cmd.output().map_err(|source| Error::Run {
            what: what.to_string(),
            source,
        })?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr);
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            return Err(Error::Failed {
                what: what.to_string(),
                last: last.to_string(),
                log: self.log_file.clone(),
            });
        }
        Ok(())
    }

    pub fn is_initialised(&self) -> bool {
        // Root may stat inside the postgres-owned 0700 directory; a non-root owner owns it.
        self.data_dir.join("PG_VERSION").exists()
    }

    pub fn is_running(&self) -> bool {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("status")
            .arg("-D")
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.status().map(|s| s.success()).unwrap_or(false)
    }

    /// Initialise (first time) and start (when stopped). Safe to call from several processes at
    /// once: a file lock serialises them.
    pub fn ensure_started(&self) -> Result<()> {
        let lock_path = self.root.join("lock");
        let lock = File::create(&lock_path).map_err(|source| Error::Create {
            path: lock_path.clone(),
            source,
        })?;
        lock.lock().map_err(Error::Lock)?;
        if !self.is_initialised() {
            self.initdb()?;
        }
        if !self.is_running() {
            fs::create_dir_all(&self.socket_dir).map_err(io_at(&self.socket_dir))?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&self.socket_dir, Some(uid), Some(gid))
                    .map_err(io_at(&self.socket_dir))?;
            }
            let mut cmd = self.command("pg_ctl");
            cmd.arg("start")
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_file)
                .args(["-w", "-t", "60", "-s"]);
            self.run(cmd, "starting the embedded PostgreSQL")?;
        }
        Ok(())
    }

    fn initdb(&self) -> Result<()> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(&self.data_dir).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
        ]);
        self.run(cmd, "initdb")?;
        let mut conf = format!(
            "\n# realmguard embedded cluster: Unix socket only (unless a setting below opens TCP)\nlisten_addresses = ''\nport = {}\nunix_socket_directories = '{}'\n",
            self.port,
            self.socket_dir.to_string_lossy().replace('\'', "''")
        );
        for (k, v) in &self.settings {
            conf.push_str(&format!("{k} = '{v}'\n"));
        }
        let path = self.data_dir.join("postgresql.conf");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
        f.write_all(conf.as_bytes()).map_err(io_at(&path))?;
        if !self.hba_first.is_empty() {
            let hba = self.data_dir.join("pg_hba.conf");
            let old = fs::read_to_string(&hba).map_err(|source| Error::Read {
                path: hba.clone(),
                source,
            })?;
            fs::write(&hba, format!("{}\n{old}", self.hba_first.join("\n")))
                .map_err(io_at(&hba))?;
        }
        Ok(())
    }

    pub fn stop(&self) -> Result<bool> {
        if !self.is_running() {
            return Ok(false);
        }
        let mut cmd = self.command("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-s"]);
        self.run(cmd, "stopping the embedded PostgreSQL")?;
        Ok(true)
    }

    #[cfg(feature = "test-support")]
    /// Stop at once, as a crash would (`pg_ctl stop -m immediate`): sessions are cut without
    /// a goodbye and the next start recovers from the WAL. For tests of a server that goes away.
    pub fn kill(&self) -> Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "-s"]);
        self.run(cmd, "stopping PostgreSQL immediately")
    }

    pub fn status(&self) -> ClusterStatus {
        let running = self.is_running();
        let pid = if running {
            let mut cmd = self.command("pg_ctl");
            cmd.arg("status").arg("-D").arg(&self.data_dir);
            cmd.output().ok().and_then(|o| {
                let s = String::from_utf8_lossy(&o.stdout).to_string();
                s.split("PID: ")
                    .nth(1)?
                    .split(')')
                    .next()?
                    .trim()
                    .parse()
                    .ok()
            })
        } else {
            None
        };
        ClusterStatus {
            running,
            pid,
            url: self.url("postgres"),
            data_dir: self.data_dir.display().to_string(),
            log_file: self.log_file.display().to_string(),
        }
    }
}

/// Where the server binaries are: `$REALMGUARD_PG_BINDIR`, `pg_config --bindir`, `PATH`, then the
/// newest `/usr/lib/postgresql/*/bin`.
pub fn find_bindir() -> Result<PathBuf> {
    let has_server = |d: &Path| {
        d.join("initdb").is_file() && d.join("postgres").is_file() && d.join("pg_ctl").is_file()
    };
    if let Some(d) = std::env::var_os("REALMGUARD_PG_BINDIR") {
        let d = PathBuf::from(d);
        if has_server(&d) {
            return Ok(d);
        }
        return Err(Error::BadBindir { dir: d });
    }
    if let Ok(out) = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
    {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&d) {
            return Ok(d);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(d) = std::env::split_paths(&path).find(|d| has_server(d)) {
            return Ok(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d).ok_or(Error::NoBinaries)
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn postgres_user() -> Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "postgres")
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .ok_or(Error::NoPostgresUser)
}

#[cfg(feature = "test-support")]
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// FNV-1a: a stable, dependency-free name for the fallback directory.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_the_socket_dir() {
        let c = Cluster {
            root: "/tmp/x y".into(),
            data_dir: "/tmp/x y/data".into(),
            socket_dir: "/tmp/x y/socket".into(),
            log_file: "/tmp/x y/server.log".into(),
            bindir: "/bin".into(),
            run_as: None,
            settings: vec![],
            hba_first: vec![],
            port: PORT,
        };
        assert_eq!(
            c.url("app"),
            "postgres://postgres@localhost:5432/app?host=%2Ftmp%2Fx+y%2Fsocket"
        );
        // Another port names another socket file, and the URL says so.
        let c = Cluster { port: 6543, ..c };
        assert_eq!(
            c.url("app"),
            "postgres://postgres@localhost:6543/app?host=%2Ftmp%2Fx+y%2Fsocket"
        );
    }

    #[test]
    fn fallback_names_are_stable() {
        assert_eq!(fnv1a(b"/root/work"), fnv1a(b"/root/work"));
        assert_ne!(fnv1a(b"/root/work"), fnv1a(b"/root/work2"));
    }
}
