//! `realmguard fleet`: status, migrate and verify across the hub and every worker-instance
//! database at once. `config` reads `schema/fleet.toml`, `targets` turns it into databases,
//! `run` schedules the work, `report` says what happened. See `docs/fleet.md`.

pub mod config;
pub mod error;
pub mod report;
pub mod run;
pub mod targets;

pub use config::{FleetFile, FleetFileError, OnError};
pub use error::{Error, Result};
pub use report::{Action, FleetReport, State, TargetReport, Verdict};
pub use run::{run, FleetOptions};
pub use targets::FleetTarget;

use serde::Serialize;
use std::path::Path;

/// What `fleet init --local N` made.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub fleet_file: String,
    /// Databases created (the others existed already).
    pub created: Vec<String>,
    pub targets: Vec<String>,
}

/// Create `hub` and `worker_1..worker_N` on the embedded cluster (those missing) and write a
/// fleet file naming them, with `hub` as the canary. An existing file is kept unless `force`.
pub async fn init_local(n: usize, path: &Path, force: bool) -> Result<InitReport> {
    if path.exists() && !force {
        return Err(Error::FileExists {
            path: path.display().to_string(),
        });
    }
    let embedded = |source| Error::Embedded { source };
    let cluster = crate::embedded::Cluster::default_for_cwd().map_err(embedded)?;
    cluster.ensure_started().map_err(embedded)?;
    let admin = crate::db::Target::from_url(&cluster.url("postgres"))
        .map_err(|source| Error::Url { source })?;
    let mut conn = admin
        .connect()
        .await
        .map_err(|source| Error::Connect { source })?;
    let names: Vec<String> = std::iter::once("hub".to_string())
        .chain((1..=n).map(|i| format!("worker_{i}")))
        .collect();
    let mut created = Vec::new();
    for name in &names {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .map_err(|source| Error::ListDatabases { source })?;
        if !exists {
            sqlx::raw_sql(&format!("CREATE DATABASE {}", crate::db::quote_ident(name)))
                .execute(&mut conn)
                .await
                .map_err(|source| Error::CreateDatabase {
                    name: name.clone(),
                    source,
                })?;
            created.push(name.clone());
        }
    }
    let _ = sqlx::Connection::close(conn).await;
    let mut text = format!(
        "# The embedded local cluster's hub and {n} worker database(s), written by\n\
         # `realmguard fleet init --local {n}`. For real servers keep secrets out of this file:\n\
         # `url_env = \"HUB_DATABASE_URL\"` reads the URL from that environment variable.\n\
         on_error = \"stop\"\ncanary = \"canary\"\n"
    );
    for name in &names {
        text.push_str(&format!(
            "\n[[target]]\nname = {}\nurl = {}\n",
            toml_string(name),
            toml_string(&cluster.url(name))
        ));
        if name == "hub" {
            text.push_str("group = \"canary\"\n");
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| Error::WriteFile {
        path: path.display().to_string(),
        source,
    })?;
    Ok(InitReport {
        fleet_file: path.display().to_string(),
        created,
        targets: names,
    })
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
