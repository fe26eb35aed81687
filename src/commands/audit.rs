//! `realmguard audit`.

use super::cli::{AuditArgs, GlobalOpts};
use super::Outcome;
use crate::audit::{self, render, sources};
use std::io::Write;

pub(super) async fn audit(g: &GlobalOpts, a: &AuditArgs) -> anyhow::Result<Outcome> {
    let cfg = g.config()?;
    let paths = if a.paths.is_empty() {
        cfg.audit.paths.clone()
    } else {
        a.paths.clone()
    };
    if paths.is_empty() && !a.from_pg_stat_statements {
        anyhow::bail!(
            "nothing to audit: give query files or directories, set [audit] paths in the config, or use --from-pg-stat-statements"
        );
    }
    // Bad files stop here, before any database is touched.
    let files = sources::collect(&paths)?;
    let mut queries = sources::read_files(&files)?;
    let baseline_path = a
        .baseline
        .clone()
        .unwrap_or_else(|| audit::baseline_path(&cfg));
    let baseline = if a.write_baseline {
        None
    } else if a.baseline.is_some() {
        Some(audit::baseline::Baseline::read(&baseline_path)?)
    } else {
        audit::read_baseline(&baseline_path)?
    };
    let needs_db = a.schema_from.is_none() || a.from_pg_stat_statements;
    let mut conn = if needs_db {
        Some(g.database().await?.connect().await?)
    } else {
        None
    };
    let schema = match (&a.schema_from, conn.as_mut()) {
        (Some(dir), _) => audit::schema_from_dir(dir, &cfg)?,
        (None, Some(c)) => audit::schema_from_catalog(c, &cfg).await?,
        (None, None) => unreachable!("a connection is opened without --schema-from"),
    };
    if let (true, Some(c)) = (a.from_pg_stat_statements, conn.as_mut()) {
        queries.extend(audit::read_pg_stat_statements(c).await?);
    }
    if let Some(c) = conn {
        let _ = sqlx::Connection::close(c).await;
    }
    let opts = audit::Options {
        cfg: &cfg,
        baseline: baseline.as_ref(),
        keys: a.write_baseline,
    };
    let report = audit::audit(&queries, &schema, &opts);
    for note in &report.notes {
        eprintln!("{note}");
    }
    if a.write_baseline {
        let entries = audit::baseline_entries(&report);
        if let Some(dir) = baseline_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&baseline_path, audit::baseline::Baseline::render(&entries)).map_err(
            |e| anyhow::anyhow!("cannot write the baseline {}: {e}", baseline_path.display()),
        )?;
        eprintln!(
            "realmguard: wrote {} baseline entr{} to {}",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            baseline_path.display()
        );
        return Ok(Outcome::Clean);
    }
    let mut out = std::io::stdout().lock();
    render::render(
        &report,
        g.format,
        crate::lint::render::github_actions(),
        &mut out,
    )?;
    out.flush()?;
    Ok(Outcome::from_findings(!report.ok()))
}
