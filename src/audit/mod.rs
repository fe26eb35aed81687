//! `realmguard audit`: find the application's queries that can read or write across realms.
//!
//! Queries come from `.sql` files (sqlc query files too), sqlx offline data, JSON-lines query
//! logs and pg_stat_statements ([`sources`]); the schema from the live catalog or the migration
//! files ([`schema`]). Each statement is parsed on its own and every reference to a realm-scoped
//! table is checked for a binding to one realm at its own query level ([`analyze`]); the rules,
//! exemptions and baseline decide what is reported. See `docs/audit.md`.

pub mod analyze;
pub mod baseline;
mod bind;
pub mod error;
pub mod render;
pub mod rules;
pub mod schema;
mod scope;
pub mod sources;

use crate::config::Config;
use crate::rules::Severity;
use baseline::{Baseline, Entry};
pub use error::{Error, Result};
use schema::RealmSchema;
use serde::Serialize;
use sources::{Exempt, Query};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::collections::HashSet;

/// One finding, placed at its query.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub query_name: Option<String>,
    pub table: String,
    pub alias: String,
    pub message: String,
    pub help: String,
    /// The source line, for the text report's excerpt (empty for embedded queries).
    #[serde(skip)]
    pub source_line: String,
    /// The baseline key of its query.
    #[serde(skip)]
    pub query_key: String,
    #[serde(skip)]
    pub normalized: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub queries: usize,
    pub realm_queries: usize,
    pub errors: usize,
    pub warnings: usize,
    pub opaque: usize,
    /// Findings left out by a `realmguard:cross-realm` comment or the baseline.
    pub exempted: usize,
    pub baselined: usize,
}

#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    pub summary: Summary,
    pub findings: Vec<Finding>,
    /// Diagnostics that are not findings (an exemption without a reason), for stderr.
    pub notes: Vec<String>,
    /// Every finding before exemptions and baseline, for `--write-baseline`.
    pub all: Vec<Finding>,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.summary.errors == 0
    }
}

/// What to audit with.
pub struct Options<'a> {
    pub cfg: &'a Config,
    pub baseline: Option<&'a Baseline>,
    /// Compute baseline keys even without a baseline (for `--write-baseline`).
    pub keys: bool,
}

struct Analysed {
    outcome: analyze::Outcome,
    parse_error: Option<String>,
}

fn analyse_one(schema: &RealmSchema, setting: &str, q: &Query) -> Analysed {
    if let Some(e) = &q.error {
        return Analysed {
            outcome: analyze::Outcome::default(),
            parse_error: Some(e.clone()),
        };
    }
    let parsed = std::panic::catch_unwind(|| {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&q.text)
            .and_then(|mut p| p.parse_statements())
    });
    match parsed {
        Ok(Ok(stmts)) => {
            let mut outcome = analyze::Outcome::default();
            for st in &stmts {
                let o = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    analyze::statement(schema, setting, st)
                }))
                .unwrap_or_else(|_| analyze::Outcome {
                    findings: vec![rules::parse_failure("the analysis crashed on it")],
                    realm: false,
                    opaque: true,
                });
                outcome.findings.extend(o.findings);
                outcome.realm |= o.realm;
                outcome.opaque |= o.opaque;
            }
            Analysed {
                outcome,
                parse_error: None,
            }
        }
        Ok(Err(e)) => Analysed {
            outcome: analyze::Outcome::default(),
            parse_error: Some(e.to_string()),
        },
        Err(_) => Analysed {
            outcome: analyze::Outcome::default(),
            parse_error: Some("the parser crashed on it".into()),
        },
    }
}

/// Parse and analyse on every core, in order.
fn analyse_all(schema: &RealmSchema, setting: &str, queries: &[Query]) -> Vec<Analysed> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(queries.len().div_ceil(64))
        .max(1);
    if threads == 1 {
        return queries
            .iter()
            .map(|q| analyse_one(schema, setting, q))
            .collect();
    }
    let per = queries.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(per)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|q| analyse_one(schema, setting, q))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("audit worker panicked"))
            .collect()
    })
}

/// Audit `queries` against `schema`.
pub fn audit(queries: &[Query], schema: &RealmSchema, opts: &Options) -> AuditReport {
    let cfg = opts.cfg;
    let mut report = AuditReport::default();
    let results = analyse_all(schema, &cfg.realm_setting, queries);
    let accepted: HashSet<(&str, &str, &str)> = opts
        .baseline
        .map(|b| {
            b.entries
                .iter()
                .map(|e| (e.query.as_str(), e.rule.as_str(), e.table.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut used: HashSet<(String, String, String)> = HashSet::new();
    let mut audited_files: HashSet<&str> = HashSet::new();
    let keys = opts.keys || opts.baseline.is_some();
    for (q, a) in queries.iter().zip(results) {
        audited_files.insert(&q.file);
        report.summary.queries += 1;
        let mut raws = a.outcome.findings;
        if let Some(e) = &a.parse_error {
            raws.push(rules::parse_failure(e));
        }
        if a.outcome.realm {
            report.summary.realm_queries += 1;
        }
        if a.outcome.opaque || a.parse_error.is_some() {
            report.summary.opaque += 1;
        }
        if q.exempt == Exempt::NoReason {
            report.notes.push(format!(
                "warning: {}: `-- realmguard:cross-realm` needs a reason; the exemption is ignored",
                place(q)
            ));
        }
        let (normalized, key) = if keys && !raws.is_empty() {
            let n = baseline::normalize(&q.text);
            let k = baseline::key(&n);
            (n, k)
        } else {
            (String::new(), String::new())
        };
        for r in raws {
            let severity = cfg.severity(r.rule);
            if severity == Severity::Off {
                continue;
            }
            let f = finding(q, r, severity, &key, &normalized);
            report.all.push(f.clone());
            if matches!(q.exempt, Exempt::Reason(_)) {
                report.summary.exempted += 1;
                continue;
            }
            if accepted.contains(&(key.as_str(), f.rule.as_str(), f.table.as_str())) {
                used.insert((key.clone(), f.rule.clone(), f.table.clone()));
                report.summary.baselined += 1;
                continue;
            }
            report.findings.push(f);
        }
    }
    if let Some(b) = opts.baseline {
        for e in &b.entries {
            let again = audited_files.contains(e.file.as_str());
            if again && !used.contains(&(e.query.clone(), e.rule.clone(), e.table.clone())) {
                let severity = cfg.severity(rules::BASELINE_STALE);
                if severity == Severity::Off {
                    continue;
                }
                report.findings.push(Finding {
                    rule: rules::BASELINE_STALE.into(),
                    severity,
                    file: b.path.clone(),
                    line: e.line,
                    column: 1,
                    query_name: None,
                    table: e.table.clone(),
                    alias: String::new(),
                    message: format!(
                        "the baseline accepts {} on `{}` for a query of {} that changed or no longer exists",
                        e.rule, e.table, e.file
                    ),
                    help: "rewrite the baseline with `realmguard audit --write-baseline`".into(),
                    source_line: String::new(),
                    query_key: e.query.clone(),
                    normalized: e.sql.clone(),
                });
            }
        }
    }
    for f in &report.findings {
        match f.severity {
            Severity::Error => report.summary.errors += 1,
            Severity::Warning => report.summary.warnings += 1,
            Severity::Off => {}
        }
    }
    report
}

/// The baseline that accepts every finding of `report` (baseline-stale ones aside).
pub fn baseline_entries(report: &AuditReport) -> Vec<Entry> {
    let mut seen = HashSet::new();
    report
        .all
        .iter()
        .filter(|f| f.rule != rules::BASELINE_STALE)
        .filter(|f| seen.insert((f.query_key.clone(), f.rule.clone(), f.table.clone())))
        .map(|f| Entry {
            query: f.query_key.clone(),
            rule: f.rule.clone(),
            table: f.table.clone(),
            file: f.file.clone(),
            sql: f.normalized.chars().take(200).collect(),
            line: 0,
        })
        .collect()
}

fn place(q: &Query) -> String {
    if q.line == 0 {
        match &q.name {
            Some(n) => format!("{} ({n})", q.file),
            None => q.file.clone(),
        }
    } else {
        format!("{}:{}", q.file, q.line)
    }
}

fn finding(q: &Query, r: rules::Raw, severity: Severity, key: &str, normalized: &str) -> Finding {
    let (line, column) = if q.embedded || r.span.start.line == 0 || q.line == 0 {
        (q.line, q.column)
    } else {
        let (l, c) = (r.span.start.line as usize, r.span.start.column as usize);
        (q.line + l - 1, if l == 1 { q.column + c - 1 } else { c })
    };
    let source_line = if q.embedded || q.line == 0 {
        String::new()
    } else {
        // The statement's own line `l` of its text, with what precedes it on the file's line
        // unknown: show the statement text's line (indentation aside, the same columns).
        let rel = line - q.line;
        let text_line = q.text.lines().nth(rel).unwrap_or("");
        if rel == 0 {
            format!("{}{}", " ".repeat(q.column - 1), text_line)
        } else {
            text_line.to_string()
        }
    };
    Finding {
        rule: r.rule.to_string(),
        severity,
        file: q.file.clone(),
        line,
        column,
        query_name: q.name.clone(),
        table: r.table,
        alias: r.alias,
        message: r.message,
        help: r.help,
        source_line,
        query_key: key.to_string(),
        normalized: normalized.to_string(),
    }
}

/// Where the baseline is: `[audit] baseline`, else `schema/audit-baseline.json`.
pub fn baseline_path(cfg: &Config) -> std::path::PathBuf {
    if cfg.audit.baseline.is_empty() {
        std::path::PathBuf::from(DEFAULT_BASELINE)
    } else {
        std::path::PathBuf::from(&cfg.audit.baseline)
    }
}

pub const DEFAULT_BASELINE: &str = "schema/audit-baseline.json";

/// The baseline at `path` when the file exists.
pub fn read_baseline(path: &std::path::Path) -> Result<Option<Baseline>> {
    if path.exists() {
        Baseline::read(path).map(Some)
    } else {
        Ok(None)
    }
}

/// The schema built from migration files (lint's model), no database needed.
pub fn schema_from_dir(dir: &std::path::Path, cfg: &Config) -> Result<RealmSchema> {
    if !dir.is_dir() {
        return Err(Error::NotADirectory {
            path: dir.display().to_string(),
        });
    }
    Ok(RealmSchema::from_model(&schema::model_of_dir(dir)?, cfg))
}

/// The schema read from the live catalog.
pub async fn schema_from_catalog(
    conn: &mut sqlx::PgConnection,
    cfg: &Config,
) -> Result<RealmSchema> {
    let cat = crate::catalog::Catalog::load(conn, &cfg.realms_table, &cfg.realm_column)
        .await
        .map_err(|source| Error::Catalog { source })?;
    Ok(RealmSchema::from_catalog(&cat, cfg))
}

/// Every statement pg_stat_statements holds for the connection's database.
pub async fn read_pg_stat_statements(conn: &mut sqlx::PgConnection) -> Result<Vec<Query>> {
    let installed: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('pg_stat_statements')::text")
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| Error::FindPgStatStatements { source })?;
    if installed.is_none() {
        return Err(Error::NoPgStatStatements);
    }
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT coalesce(queryid, 0), query FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND query IS NOT NULL
          ORDER BY queryid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::ReadPgStatStatements {
        message: crate::db::describe_pg_error(&e),
    })?;
    Ok(sources::from_pg_stat_statements(&rows))
}
