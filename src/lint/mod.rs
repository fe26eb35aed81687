//! `realmguard lint`: static analysis of migration SQL, before anything runs.
//!
//! Each file is split into statements with the shared splitter ([`crate::split`]) and every
//! statement is parsed on its own with sqlparser's PostgreSQL dialect, so a statement sqlparser
//! does not support (`DO` blocks, `REINDEX`, …) costs one `parse-error` finding and never the rest
//! of the file. Parsing runs on every core; the rules then walk the statements in migration order
//! over a schema model ([`model`]) that the statements build up, so a rule in file 7 sees the
//! table created in file 2.

mod files;
mod ignore;
pub mod model;
pub mod options;
pub mod pages;
mod parse;
pub mod render;
pub mod rules;

use crate::config::Config;
use crate::rules::Severity;
pub use files::collect_files;
#[cfg(test)]
use files::version_of;
use ignore::{ignored_on_line_above, ALL_RULES};
use model::{Origin, Schema};
pub use options::{LintOptions, Runner};
use parse::{parse_all, position, ParsedFile};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Default when no PATH is given.
pub const DEFAULT_DIR: &str = "migrations";

/// One migration file's text, and whether its findings are reported (files given on the command
/// line) or it only builds the schema model (earlier migrations next to a file given alone).
#[derive(Debug, Clone)]
pub struct Source {
    pub path: String,
    pub text: String,
    pub report: bool,
    /// Byte offset of the first invalid UTF-8 sequence, when the file was not UTF-8.
    pub invalid_utf8_at: Option<usize>,
}

/// A migration file or directory that cannot be linted, or a bad `--include`/`--exclude` list.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no `{DEFAULT_DIR}/` directory here; give the migration files or directories to lint")]
    NoDefaultDir,
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lint {}", path.display())]
    Lint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An entry of directory `dir` that cannot be read (shown as the OS error alone).
    #[error("{reason}")]
    DirEntry {
        dir: PathBuf,
        reason: std::io::Error,
    },
    #[error("unknown lint rule or group `{name}`; groups: {}; rules: `realmguard explain` lists them", crate::rules::GROUPS.join(", "))]
    UnknownRule { name: String },
}

impl Source {
    pub fn new(path: String, text: String) -> Source {
        Source {
            path,
            text,
            report: true,
            invalid_utf8_at: None,
        }
    }

    /// Read a file; invalid UTF-8 is replaced (and reported as a `parse-error`), not fatal.
    pub fn read(path: &Path, report: bool) -> Result<Source, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (text, invalid) = match String::from_utf8(bytes) {
            Ok(t) => (t, None),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                (String::from_utf8_lossy(e.as_bytes()).into_owned(), Some(at))
            }
        };
        // A BOM is not SQL (migrate strips it too); positions then count from the first character.
        let text = match text.strip_prefix('\u{feff}') {
            Some(t) => t.to_string(),
            None => text,
        };
        Ok(Source {
            path: path.display().to_string(),
            text,
            report,
            invalid_utf8_at: invalid,
        })
    }
}

/// One finding, located in its file.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Width of the offending text on that line, in characters (at least 1).
    #[serde(skip)]
    pub width: usize,
    pub message: String,
    pub help: String,
    /// The source line, for the text report's excerpt.
    #[serde(skip)]
    pub source_line: String,
    #[serde(skip)]
    file_index: usize,
}

/// What `lint` found over a set of files.
#[derive(Debug, Clone, Default)]
pub struct LintReport {
    pub files: usize,
    pub statements: usize,
    pub findings: Vec<Finding>,
    /// Diagnostics that are not findings (an unknown rule id in an ignore comment), for the
    /// caller to show on stderr so a typo is noticed.
    pub notes: Vec<String>,
}

impl LintReport {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }
}

/// Lint files and directories (default `migrations/`), in migration order.
pub fn lint_paths(paths: &[PathBuf], cfg: &Config) -> Result<LintReport, Error> {
    lint_paths_with(paths, cfg, &LintOptions::default())
}

/// [`lint_paths`] with the command line's options; `cfg` is already [`LintOptions::apply`]'d.
pub fn lint_paths_with(
    paths: &[PathBuf],
    cfg: &Config,
    opts: &LintOptions,
) -> Result<LintReport, Error> {
    let files = collect_files(paths)?;
    let sources = files
        .iter()
        .map(|(p, report)| Source::read(p, *report))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lint_sources_with(sources, cfg, opts))
}

/// Lint in-memory sources (the order given is the migration order).
pub fn lint_sources(sources: Vec<Source>, cfg: &Config) -> LintReport {
    lint_sources_with(sources, cfg, &LintOptions::default())
}

/// [`lint_sources`] with the command line's options (runner, server version).
pub fn lint_sources_with(sources: Vec<Source>, cfg: &Config, opts: &LintOptions) -> LintReport {
    // In batches: parse a batch on every core, analyse it in order, drop its syntax trees. Memory
    // stays bounded (whole-corpus trees cost more in page faults than the parse itself).
    const BATCH: usize = 128;
    let mut analysis = Analysis::new(cfg, opts);
    let mut it = sources.into_iter().peekable();
    while it.peek().is_some() {
        let batch: Vec<Source> = it.by_ref().take(BATCH).collect();
        for f in parse_all(batch) {
            analysis.file(f);
        }
    }
    analysis.finish()
}

pub use crate::migrate::source::is_no_transaction;

/// What stays of a file once its statements are analysed (their syntax trees are dropped): enough
/// to place the realm findings, which are only known at the end.
struct FileMeta {
    path: String,
    text: String,
    report: bool,
    ignores: Vec<Vec<String>>,
}

/// Walks every statement in order: statement rules against the model as it stood before the
/// statement, then apply it; realm rules against the finished model.
struct Analysis<'c> {
    cfg: &'c Config,
    opts: &'c LintOptions,
    schema: Schema,
    report: LintReport,
    files: Vec<FileMeta>,
}

impl<'c> Analysis<'c> {
    fn new(cfg: &'c Config, opts: &'c LintOptions) -> Self {
        Analysis {
            cfg,
            opts,
            schema: Schema::default(),
            report: LintReport::default(),
            files: Vec::new(),
        }
    }

    /// Record a finding unless its level is `off` or an ignore comment names it.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        fi: usize,
        path: &str,
        text: &str,
        rule: &str,
        (line, column, width): (usize, usize, usize),
        message: String,
        help: String,
        ignores: &[String],
    ) {
        let severity = self.cfg.severity(rule);
        if severity == Severity::Off
            || ignores.iter().any(|i| i == rule || i == ALL_RULES)
            || ignored_on_line_above(text, line, rule)
        {
            return;
        }
        self.report.findings.push(Finding {
            rule: rule.to_string(),
            severity,
            file: path.to_string(),
            line,
            column,
            width: width.max(1),
            message,
            help,
            source_line: source_line(text, line),
            file_index: fi,
        });
    }

    fn file(&mut self, f: ParsedFile) {
        let fi = self.files.len();
        let (path, text) = (f.src.path.as_str(), f.src.text.as_str());
        // Another runner's wrapping is not known: a file runs in a transaction only where it
        // opens one itself (as under psql), and realmguard's directive means nothing to it.
        let wrapped = f.in_transaction && self.opts.runner == Runner::Realmguard;
        let mut so_far = rules::FileSoFar::new(wrapped);
        if f.src.report {
            self.report.files += 1;
            self.report.statements += f.stmts.len();
            for (line, id) in &f.bad_ignores {
                // Not a finding (it has no rule id); said on stderr so a typo is noticed.
                self.report.notes.push(format!(
                    "warning: {path}:{line}: unknown rule id `{id}` in realmguard:ignore"
                ));
            }
            if let Some(at) = f.src.invalid_utf8_at {
                let (l, c) = position(text, at.min(text.len()));
                self.push(
                    fi,
                    path,
                    text,
                    rules::parse_error::ID,
                    (l, c, 1),
                    "the file is not valid UTF-8; invalid bytes were replaced before checking"
                        .into(),
                    "Save the file as UTF-8.".into(),
                    &f.file_ignores,
                );
            }
        }
        for (si, s) in f.stmts.iter().enumerate() {
            let origin = Origin {
                file: fi,
                stmt: si,
                line: s.line,
                column: s.column,
                width: 0,
            };
            match &s.ast {
                Ok(stmt) => {
                    if f.src.report {
                        let ctx = rules::Ctx {
                            schema: &self.schema,
                            so_far: &so_far,
                            wrapped,
                            in_transaction: so_far.tx.is_some(),
                            drop_concurrently: s.drop_concurrently,
                            opts: self.opts,
                        };
                        let mut found = Vec::new();
                        rules::check_statement(&ctx, stmt, &mut found);
                        for v in found {
                            let o = v.span.map_or(origin, |sp| origin.at(sp));
                            let at = (o.line, o.column, o.width);
                            self.push(fi, path, text, v.rule, at, v.message, v.help, &s.ignores);
                        }
                    }
                    so_far.track(stmt, si, &self.schema);
                    self.schema.apply(stmt, origin);
                }
                Err(msg) => {
                    if f.src.report {
                        // Kinds sqlparser lacks but the rules can judge by their keywords.
                        let ctx = rules::Ctx {
                            schema: &self.schema,
                            so_far: &so_far,
                            wrapped,
                            in_transaction: so_far.tx.is_some(),
                            drop_concurrently: false,
                            opts: self.opts,
                        };
                        let words: Vec<&str> = s.head.split(' ').collect();
                        let mut found = Vec::new();
                        let known = rules::check_unparsed(&ctx, &words, &mut found) || s.inert_do;
                        if !known {
                            found.push(rules::parse_error::violation(&s.head, msg));
                        }
                        for v in found {
                            let at = (s.line, s.column, 1);
                            self.push(fi, path, text, v.rule, at, v.message, v.help, &s.ignores);
                        }
                    }
                }
            }
        }
        if let (true, Some((si, v))) = (
            f.src.report,
            rules::ban_uncommitted_transaction::check_end(wrapped, &so_far),
        ) {
            let s = &f.stmts[si];
            let at = (s.line, s.column, 1);
            self.push(fi, path, text, v.rule, at, v.message, v.help, &s.ignores);
        }
        if let (true, Some((l, c, msg))) = (f.src.report, &f.tail_error) {
            let v = rules::parse_error::tail(msg);
            self.push(
                fi,
                path,
                text,
                v.rule,
                (*l, *c, 1),
                v.message,
                v.help,
                &f.file_ignores,
            );
        }
        let ParsedFile { src, stmts, .. } = f;
        self.files.push(FileMeta {
            path: src.path,
            text: src.text,
            report: src.report,
            ignores: stmts.into_iter().map(|s| s.ignores).collect(),
        });
    }

    fn finish(mut self) -> LintReport {
        let mut realm = Vec::new();
        rules::check_schema(&self.schema, self.cfg, &mut realm);
        let files = std::mem::take(&mut self.files);
        for v in realm {
            let f = &files[v.origin.file];
            if !f.report {
                continue;
            }
            let at = (v.origin.line, v.origin.column, v.origin.width);
            let ignores = &f.ignores[v.origin.stmt];
            self.push(
                v.origin.file,
                &f.path,
                &f.text,
                v.rule,
                at,
                v.message,
                v.help,
                ignores,
            );
        }
        self.report
            .findings
            .sort_by_key(|f| (f.file_index, f.line, f.column));
        self.report
    }
}

fn source_line(text: &str, line: usize) -> String {
    text.lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests;
