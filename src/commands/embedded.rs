//! `realmguard embedded status/start/stop/url`: the embedded local cluster.

use super::cli::{EmbeddedCommand, GlobalOpts};
use super::Outcome;
use crate::embedded::Cluster;
use crate::output::{self, Format};
use std::io::Write;

/// `realmguard embedded …`.
pub async fn run(g: &GlobalOpts, c: &EmbeddedCommand) -> anyhow::Result<Outcome> {
    g.format.reject_junit("embedded")?;
    let cluster = Cluster::default_for_cwd()?;
    match c {
        EmbeddedCommand::Start => cluster.ensure_started()?,
        EmbeddedCommand::Stop => {
            if !cluster.stop()? {
                eprintln!("realmguard: the embedded cluster was not running");
            }
        }
        EmbeddedCommand::Url => {
            cluster.ensure_started()?;
            writeln!(std::io::stdout().lock(), "{}", cluster.url("postgres"))?;
            return Ok(Outcome::Clean);
        }
        EmbeddedCommand::Status => {}
    }
    let st = cluster.status();
    let mut out = std::io::stdout().lock();
    match g.format {
        Format::Json => output::write_json(&mut out, &st)?,
        _ => {
            let rows = vec![
                vec!["running".into(), st.running.to_string()],
                vec!["pid".into(), st.pid.map_or("-".into(), |p| p.to_string())],
                vec!["url".into(), st.url.clone()],
                vec!["data".into(), st.data_dir.clone()],
                vec!["log".into(), st.log_file.clone()],
            ];
            writeln!(out, "{}", output::table(&["embedded cluster", ""], &rows))?;
        }
    }
    Ok(Outcome::Clean)
}
