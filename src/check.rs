//! `realmguard check`: the one-command CI schema check. Lint the files, apply every migration with
//! the real runner to a scratch database, verify the result from its catalog, print one report,
//! and drop the scratch database on every path (success, failure, Ctrl-C).
//!
//! The scratch database lives on the embedded cluster by default, or on the server of
//! `--scratch-url` / `--database-url`; it is created from `template0`, so it starts empty whatever
//! was installed in `template1`, and so that concurrent checks never fail on a busy template.

use crate::config::Config;
use crate::db::{quote_ident, Target};
use crate::events::{Cancel, Event, EventSink};
use crate::lint::{self, LintReport};
use crate::migrate::{self, MigrateOptions};
use crate::output::{self, Format, JunitCase, JunitSuite};
use crate::verify;
use serde_json::json;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// Why `check` produced no report (a migration that fails is part of the report, not this).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting to the server or naming the scratch database on it.
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error("cannot create the scratch database {database} on {server} (the role needs CREATEDB; or give --scratch-url)")]
    CreateScratch {
        database: String,
        server: String,
        #[source]
        source: crate::db::PgError,
    },
    #[error("cannot verify the scratch database")]
    Verify(#[source] verify::Error),
    #[error("interrupted")]
    Interrupted,
    /// Reading `[audit] paths` or the baseline (the audit module's own error and message).
    #[error(transparent)]
    Audit(#[from] crate::audit::Error),
}

/// The error and its causes joined by ": ", as `{:#}` of an `anyhow::Error` prints them.
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// How applying the migrations went.
#[derive(Debug, Clone)]
pub struct Apply {
    pub database: String,
    pub applied: usize,
    pub duration: Duration,
    /// The migration failure, one line (cause chain included).
    pub error: Option<String>,
}

/// The combined report.
#[derive(Debug)]
pub struct CheckReport {
    pub apply: Apply,
    /// `None` when the migrations could not be applied.
    pub verify: Option<verify::Report>,
    pub lint: LintReport,
    /// The audit of `[audit] paths`, when set (schema from the migration files).
    pub audit: Option<crate::audit::AuditReport>,
}

impl CheckReport {
    pub fn errors(&self) -> usize {
        self.verify.as_ref().map_or(0, |v| v.summary.errors)
            + self.lint.errors()
            + self.audit.as_ref().map_or(0, |a| a.summary.errors)
    }

    pub fn warnings(&self) -> usize {
        self.verify.as_ref().map_or(0, |v| v.summary.warnings)
            + self.lint.warnings()
            + self.audit.as_ref().map_or(0, |a| a.summary.warnings)
    }
}

/// The whole check: lint `files`, apply them to a scratch database on `server`, verify it, drop
/// it. A migration that fails is part of the report (`Apply::error`).
pub async fn run(
    server: &Target,
    cfg: &Config,
    files: &[migrate::source::Migration],
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<CheckReport, Error> {
    // Lint the texts just loaded (BOM stripped, in version order) instead of reading them again.
    let sources = files
        .iter()
        .map(|m| lint::Source::new(m.path.display().to_string(), m.sql.clone()))
        .collect();
    let lint = lint::lint_sources(sources, cfg);
    let audit = audit_configured(cfg, files)?;
    let (apply, verify) = apply_to_scratch(server, cfg, files, sink, cancel).await?;
    Ok(CheckReport {
        verify,
        apply,
        lint,
        audit,
    })
}

/// `[audit] paths` audited against the schema the migrations build (lint's model), so that CI
/// gets one report; `None` when no paths are configured.
fn audit_configured(
    cfg: &Config,
    files: &[migrate::source::Migration],
) -> Result<Option<crate::audit::AuditReport>, Error> {
    use crate::audit;
    if cfg.audit.paths.is_empty() {
        return Ok(None);
    }
    let mut model = crate::lint::model::Schema::default();
    for m in files {
        audit::schema::apply_text(&mut model, &m.sql);
    }
    let schema = audit::schema::RealmSchema::from_model(&model, cfg);
    let audit_err = Error::Audit;
    let paths = audit::sources::collect(&cfg.audit.paths).map_err(audit_err)?;
    let queries = audit::sources::read_files(&paths).map_err(audit_err)?;
    let baseline = audit::read_baseline(&audit::baseline_path(cfg)).map_err(audit_err)?;
    let opts = audit::Options {
        cfg,
        baseline: baseline.as_ref(),
        keys: false,
    };
    Ok(Some(audit::audit(&queries, &schema, &opts)))
}

/// Create the scratch database, migrate and verify it, drop it. A migration that fails is part of
/// the report (the `Apply::error`); not being able to create the database is an error.
async fn apply_to_scratch(
    server: &Target,
    cfg: &Config,
    files: &[migrate::source::Migration],
    sink: &dyn EventSink,
    cancel: &Cancel,
) -> Result<(Apply, Option<verify::Report>), Error> {
    let name = format!(
        "realmguard_check_{}_{:08x}",
        std::process::id(),
        fastrand::u32(..)
    );
    let mut admin = server.connect().await?;
    sqlx::raw_sql(&format!(
        "CREATE DATABASE {} TEMPLATE template0",
        quote_ident(&name)
    ))
    .execute(&mut admin)
    .await
    .map_err(|e| Error::CreateScratch {
        database: name.clone(),
        server: server.display.clone(),
        source: crate::db::PgError(e),
    })?;
    sink.emit(Event::line(format!(
        "realmguard: using scratch database {name} on {}",
        server.display
    )));
    let scratch = server.with_database(&name)?;
    let started = Instant::now();
    let work = async {
        let opts = MigrateOptions {
            // check verifies the final schema itself and reports every violation, rather than
            // stopping at the first migration that introduces one.
            guard: false,
            ..MigrateOptions::default()
        };
        // The scratch apply draws no progress: check's report says what it applied.
        let (mreport, result) =
            migrate::migrate_reporting(&scratch, cfg, files, &opts, &crate::events::Silent).await;
        let applied = mreport.applied.len();
        match result {
            Err(e) => Ok::<_, Error>((applied, Some(one_line(&e)), None)),
            Ok(()) => {
                let mut conn = scratch.connect().await?;
                let report = verify::verify(&mut conn, cfg)
                    .await
                    .map_err(Error::Verify)?;
                let _ = sqlx::Connection::close(conn).await;
                Ok((applied, None, Some(report)))
            }
        }
    };
    let outcome = tokio::select! {
        r = work => r,
        _ = cancel.cancelled() => Err(Error::Interrupted),
    };
    let duration = started.elapsed();
    // Dropped on every path; FORCE ends connections a failed migration may have left behind.
    let dropped = sqlx::raw_sql(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(&name)
    ))
    .execute(&mut admin)
    .await;
    // WITH (FORCE) is PostgreSQL 13+; older servers get the plain form.
    let dropped = match dropped {
        Err(e) if crate::db::sqlstate(&e).as_deref() == Some("42601") => {
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {}", quote_ident(&name)))
                .execute(&mut admin)
                .await
        }
        other => other,
    };
    if let Err(e) = dropped {
        sink.emit(Event::line(format!(
            "realmguard: could not drop the scratch database {name}: {}",
            crate::db::describe_pg_error(&e)
        )));
    }
    let (applied, error, report) = outcome?;
    Ok((
        Apply {
            database: name,
            applied,
            duration,
            error,
        },
        report,
    ))
}

pub fn render(
    r: &CheckReport,
    format: Format,
    github: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Text => text(r, github, out),
        Format::Json => output::write_json(out, &json_value(r)),
        Format::Junit => junit(r, out),
    }
}

fn apply_line(a: &Apply) -> String {
    match &a.error {
        None => format!(
            "apply: {} migration{} applied to a scratch database in {:.1}s",
            a.applied,
            if a.applied == 1 { "" } else { "s" },
            a.duration.as_secs_f64()
        ),
        Some(e) => format!(
            "apply: FAILED after {} migration{}: {e}",
            a.applied,
            if a.applied == 1 { "" } else { "s" }
        ),
    }
}

fn text(r: &CheckReport, github: bool, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", apply_line(&r.apply))?;
    writeln!(out)?;
    if let Some(v) = &r.verify {
        verify::render(v, Format::Text, out)?;
        writeln!(out)?;
    }
    lint::render::text(&r.lint, out)?;
    if let Some(a) = &r.audit {
        writeln!(out)?;
        crate::audit::render::text(a, out)?;
    }
    if github {
        lint::render::annotations(&r.lint, out)?;
        if let Some(a) = &r.audit {
            crate::audit::render::annotations(a, out)?;
        }
        if let Some(v) = &r.verify {
            // Verify's findings belong to tables, not lines: annotations without a file.
            for x in &v.violations {
                let message = format!("{}.{}: {}", x.schema, x.table, x.message);
                output::github_annotation(out, x.severity, None, &x.rule, &message)?;
            }
        }
        if let Some(e) = &r.apply.error {
            let error = crate::rules::Severity::Error;
            output::github_annotation(out, error, None, "migrations did not apply", e)?;
        }
    }
    writeln!(
        out,
        "check: {} error{}, {} warning{}{}",
        r.errors(),
        if r.errors() == 1 { "" } else { "s" },
        r.warnings(),
        if r.warnings() == 1 { "" } else { "s" },
        if r.apply.error.is_some() {
            "; the migrations did not apply"
        } else {
            ""
        }
    )
}

pub fn json_value(r: &CheckReport) -> serde_json::Value {
    json!({
        "ok": r.apply.error.is_none() && r.errors() == 0,
        "summary": {"errors": r.errors(), "warnings": r.warnings()},
        "apply": {
            "ok": r.apply.error.is_none(),
            "applied": r.apply.applied,
            "duration_ms": r.apply.duration.as_millis() as u64,
            "error": r.apply.error,
        },
        "verify": r.verify.as_ref().map(|v| serde_json::to_value(v).unwrap_or_default()),
        "lint": lint::render::json_value(&r.lint),
        "audit": r.audit.as_ref().map(crate::audit::render::json_value),
    })
}

/// One document with three suites: apply, verify (verify's own cases) and lint.
fn junit(r: &CheckReport, out: &mut dyn Write) -> io::Result<()> {
    let apply = [JunitCase {
        classname: "check".into(),
        name: "apply migrations to a scratch database".into(),
        failure: r
            .apply
            .error
            .as_ref()
            .map(|e| ("the migrations did not apply".to_string(), e.clone())),
        ..JunitCase::default()
    }];
    let verify_cases = r.verify.as_ref().map(verify::junit_cases);
    let lint_cases = lint::render::junit_cases(&r.lint);
    let mut suites = vec![JunitSuite {
        name: "realmguard check: apply",
        cases: &apply,
    }];
    if let Some(cases) = &verify_cases {
        suites.push(JunitSuite {
            name: "realmguard verify",
            cases,
        });
    }
    suites.push(JunitSuite {
        name: "realmguard lint",
        cases: &lint_cases,
    });
    let audit_cases = r.audit.as_ref().map(crate::audit::render::junit_cases);
    if let Some(cases) = &audit_cases {
        suites.push(JunitSuite {
            name: "realmguard audit",
            cases,
        });
    }
    output::write_junit_suites(out, "realmguard check", &suites)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_their_whole_chain_as_before() {
        // The audit's error keeps its causes on the `error:` line (commands::run prints the chain).
        let audit = crate::audit::Error::ReadFile {
            path: "queries/app.sql".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let err = anyhow::Error::from(Error::Audit(audit));
        assert_eq!(
            crate::output::error_chain(&err),
            "cannot read queries/app.sql: entity not found"
        );
        // A failed migration's line in the report: every cause, as `{:#}` printed it.
        let failed = crate::migrate::Error::Baseline {
            version: 3,
            source: Box::new(crate::migrate::Error::LedgerLookup(
                sqlx::Error::RowNotFound,
            )),
        };
        assert_eq!(
            one_line(&failed),
            format!(
                "baseline stopped at version 3: cannot look for the ledger: {}",
                sqlx::Error::RowNotFound
            )
        );
    }
}
