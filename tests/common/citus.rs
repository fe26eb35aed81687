//! A real local Citus cluster for the tests: a coordinator and two workers, three throwaway
//! clusters with `shared_preload_libraries = 'citus'`, started once per run. The workers listen
//! only on their Unix socket directories, which Citus (libpq) accepts as node host names; the
//! coordinator also listens on TCP 127.0.0.1, where Citus turns TLS on with its own self-signed
//! certificate. Each test gets a database of the same name on all three nodes, with the
//! extension created and the nodes registered in it (Citus's metadata is per database).

use super::{TestDb, COUNTER};
use realmguard::embedded::Cluster;
use sqlx::{Connection, PgConnection};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

pub struct CitusCluster {
    pub coordinator: Cluster,
    pub workers: Vec<Cluster>,
    /// The coordinator's port (Unix socket and TCP on 127.0.0.1).
    pub port: u16,
}

static CITUS: OnceLock<Option<CitusCluster>> = OnceLock::new();

/// Whether this machine's PostgreSQL has Citus; `None` (after printing why) when it does not.
pub fn citus() -> Option<&'static CitusCluster> {
    CITUS
        .get_or_init(|| {
            let bindir = realmguard::embedded::find_bindir().ok()?;
            // The library directory of the server these tests run (pg_config beside its
            // binaries); never another installation's: Citus built for 15 cannot load into the
            // 16–18 binaries scripts/test-pg-versions.sh runs the suite with.
            let Some(lib) = std::process::Command::new(bindir.join("pg_config"))
                .arg("--pkglibdir")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            else {
                eprintln!("skipped: no pg_config beside {} to find its libraries (Citus is installed into the packaged PostgreSQL 15)", bindir.display());
                return None;
            };
            if !std::path::Path::new(&lib).join("citus.so").exists() {
                eprintln!("skipped: Citus is not installed ({lib}/citus.so missing; ../shared/citus/install.sh installs it)");
                return None;
            }
            let port = free_port();
            let pid = std::process::id();
            let base = [
                ("shared_preload_libraries", "citus"),
                ("shared_buffers", "32MB"),
                ("max_connections", "200"),
            ];
            let mut coord_settings = base.to_vec();
            coord_settings.push(("listen_addresses", "127.0.0.1"));
            let coordinator = Cluster::throwaway_with(
                pid,
                port,
                &coord_settings,
                &["host all all 127.0.0.1/32 trust"],
            )
            .expect("cannot start the Citus coordinator");
            let workers = (0..2)
                .map(|_| {
                    Cluster::throwaway_with(pid, 5432, &base, &[])
                        .expect("cannot start a Citus worker")
                })
                .collect();
            Some(CitusCluster {
                coordinator,
                workers,
                port,
            })
        })
        .as_ref()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test database on every node of the Citus cluster.
pub struct CitusDb {
    /// The database on the coordinator (what realmguard is pointed at).
    pub db: TestDb,
    /// The same database on each worker.
    pub workers: Vec<TestDb>,
}

async fn exec(url: &str, sql: &str) {
    let mut c = PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    sqlx::raw_sql(sql)
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"));
}

impl CitusCluster {
    pub async fn db(&self, tag: &str) -> CitusDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("rg_citus_{tag}_{}_{n}", std::process::id());
        let mut nodes = Vec::new();
        for c in std::iter::once(&self.coordinator).chain(&self.workers) {
            let admin = c.url("postgres");
            exec(&admin, &format!("CREATE DATABASE \"{name}\"")).await;
            let db = TestDb {
                url: super::with_database(&admin, &name),
                name: name.clone(),
                admin,
            };
            exec(&db.url, "CREATE EXTENSION citus").await;
            nodes.push(db);
        }
        let coordinator = nodes.remove(0);
        let host = |c: &Cluster| c.socket_dir.to_string_lossy().replace('\'', "''");
        let mut sql = format!(
            "SELECT citus_set_coordinator_host('{}', {});",
            host(&self.coordinator),
            self.port
        );
        for w in &self.workers {
            sql.push_str(&format!("SELECT citus_add_node('{}', 5432);", host(w)));
        }
        // Under the full suite's load the coordinator's first connection to a worker's new
        // database has failed once ("failure on connection marked as essential"); both calls
        // are idempotent, so a failed registration is retried before the test is failed.
        for attempt in 1.. {
            let mut c = PgConnection::connect(&coordinator.url)
                .await
                .unwrap_or_else(|e| panic!("connect {}: {e}", coordinator.url));
            match sqlx::raw_sql(&sql).execute(&mut c).await {
                Ok(_) => break,
                Err(e) if attempt < 4 => {
                    eprintln!(
                        "registering the Citus nodes failed (attempt {attempt}): {e}; retrying"
                    );
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => panic!("{e}\nSQL: {sql}"),
            }
        }
        CitusDb {
            db: coordinator,
            workers: nodes,
        }
    }

    /// The coordinator's database `db` over TCP (where Citus's TLS certificate is offered).
    pub fn tcp_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}
