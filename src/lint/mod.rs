//! `realmguard lint`: static analysis of migration SQL, before anything runs.
//!
//! Each file is split into statements with the shared splitter ([`crate::split`]) and every
//! statement is parsed on its own with sqlparser's PostgreSQL dialect, so a statement sqlparser
//! does not support (`DO` blocks, `REINDEX`, …) costs one `parse-error` finding and never the rest
//! of the file. Parsing runs on every core; the rules then walk the statements in migration order
//! over a schema model ([`model`]) that the statements build up, so a rule in file 7 sees the
//! table created in file 2.

pub mod model;
pub mod options;
pub mod pages;
pub mod render;
pub mod rules;

use crate::config::Config;
use crate::rules::Severity;
use model::{Origin, Schema};
pub use options::{LintOptions, Runner};
use serde::Serialize;
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use std::collections::HashMap;
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
    /// An entry of directory `dir` that cannot be read (shown as the OS error).
    #[error("{source}")]
    DirEntry {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
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

/// The files to lint, in migration order, each with whether it is reported. A directory gives its
/// `*.sql` files; a file given on its own brings along the earlier migrations of its directory as
/// context (unreported), so the realm rules know the tables it alters.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, bool)>, Error> {
    let default = [PathBuf::from(DEFAULT_DIR)];
    let paths = if paths.is_empty() {
        if !Path::new(DEFAULT_DIR).is_dir() {
            return Err(Error::NoDefaultDir);
        }
        &default[..]
    } else {
        paths
    };
    // Files grouped by directory (first-seen order), each group sorted by version.
    let mut groups: Vec<(PathBuf, Vec<(PathBuf, bool)>)> = Vec::new();
    // Where each file already is (group, index), so a file named twice is linted once; a map,
    // because comparing paths pairwise costs seconds at thousands of files.
    let mut seen: HashMap<PathBuf, (usize, usize)> = HashMap::new();
    let mut add = |groups: &mut Vec<(PathBuf, Vec<(PathBuf, bool)>)>, p: PathBuf, report: bool| {
        if let Some(&(gi, i)) = seen.get(&p) {
            groups[gi].1[i].1 |= report;
            return;
        }
        let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
        let gi = match groups.iter().position(|(d, _)| *d == dir) {
            Some(i) => i,
            None => {
                groups.push((dir, Vec::new()));
                groups.len() - 1
            }
        };
        let g = &mut groups[gi].1;
        seen.insert(p.clone(), (gi, g.len()));
        g.push((p, report));
    };
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| Error::Lint {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            for f in sql_files(p)? {
                add(&mut groups, f, true);
            }
        } else {
            if let Some(v) = version_of(p) {
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                for f in sql_files(&dir)? {
                    if version_of(&f).is_some_and(|fv| fv < v) {
                        let f = if p.parent().is_some_and(|d| d.as_os_str().is_empty()) {
                            PathBuf::from(f.file_name().unwrap_or_default())
                        } else {
                            f
                        };
                        add(&mut groups, f, false);
                    }
                }
            }
            add(&mut groups, p.clone(), true);
        }
    }
    let mut out = Vec::new();
    for (_, mut files) in groups {
        files.sort_by_cached_key(|(p, _)| (version_of(p).is_none(), version_of(p), p.clone()));
        out.extend(files);
    }
    Ok(out)
}

fn sql_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut v = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries {
        let p = e
            .map_err(|source| Error::DirEntry {
                dir: dir.to_path_buf(),
                source,
            })?
            .path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // The same files migrate applies: down migrations and hidden files are not part of it.
        if name.ends_with(".sql")
            && !name.ends_with(".down.sql")
            && !name.starts_with('.')
            && p.is_file()
        {
            v.push(p);
        }
    }
    Ok(v)
}

/// The version migrate would give the file (its own name parser, so the two never disagree on
/// what is a migration or on its order).
fn version_of(p: &Path) -> Option<i64> {
    crate::migrate::source::parse_name(p.file_name()?.to_str()?).map(|(v, _)| v)
}

struct ParsedStmt {
    line: usize,
    column: usize,
    /// The statement's first words, to tell which rules a parse failure kept from checking it.
    head: String,
    ast: Result<Statement, String>,
    drop_concurrently: bool,
    /// A `DO` block whose body holds none of the statement kinds a rule judges.
    inert_do: bool,
    ignores: Vec<String>,
}

struct ParsedFile {
    src: Source,
    in_transaction: bool,
    stmts: Vec<ParsedStmt>,
    /// A tokenizer failure: (line, column, message); everything from there on is unchecked.
    tail_error: Option<(usize, usize, String)>,
    /// Unknown ids in ignore comments: (line, id).
    bad_ignores: Vec<(usize, String)>,
    /// Rules a `squawk-ignore-file` comment silences in the whole file.
    file_ignores: Vec<String>,
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

fn parse_all(sources: Vec<Source>) -> Vec<ParsedFile> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(sources.len().div_ceil(16))
        .max(1);
    if threads == 1 {
        return sources.into_iter().map(parse_file).collect();
    }
    let per = sources.len().div_ceil(threads);
    let mut chunks: Vec<Vec<Source>> = Vec::new();
    let mut it = sources.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(per).collect());
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| s.spawn(move || c.into_iter().map(parse_file).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("lint worker panicked"))
            .collect()
    })
}

pub use crate::migrate::source::is_no_transaction;

fn parse_file(src: Source) -> ParsedFile {
    let text = src.text.as_str();
    let in_transaction = !is_no_transaction(text);
    let mut bad_ignores = Vec::new();
    let (pieces, tail_error) = match crate::split::split(text) {
        Ok(p) => (p, None),
        Err(e) => {
            // The tokenizer stopped (an unterminated string or comment eats the rest of the
            // file for PostgreSQL too): check the complete statements before that line.
            // Some errors are reported where the tokenizer gave up (end of file), not where the
            // bad token began: cut earlier until the prefix splits.
            let mut line = e.line;
            let pieces = loop {
                if line <= 1 {
                    break Vec::new();
                }
                match crate::split::split(&text[..line_start(text, line)]) {
                    Ok(p) => break p,
                    Err(e2) => line = e2.line.min(line - 1),
                }
            };
            let complete: Vec<_> = pieces
                .into_iter()
                .take_while(|p| text[p.offset + p.sql.len()..].trim_start().starts_with(';'))
                .collect();
            let (l, c) = match complete.last() {
                Some(p) => {
                    let after = p.offset + p.sql.len();
                    let semi = after + text[after..].find(';').unwrap_or(0) + 1;
                    let next = semi + (text[semi..].len() - text[semi..].trim_start().len());
                    position(text, next)
                }
                None => position(text, text.len() - text.trim_start().len()),
            };
            let message = match e.message.find(" at Line: ") {
                Some(i) => e.message[..i].to_string(),
                None => e.message,
            };
            (complete, Some((l, c, message)))
        }
    };
    let whole_file = file_ignores(text);
    let stmts = pieces
        .iter()
        .map(|p| {
            // A parser bug must cost a finding, not the run: a panic is never an answer (docs/architecture.md).
            let (ast, drop_concurrently) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_piece(p.sql)))
                    .unwrap_or_else(|_| {
                        (
                            Err(ParserError::ParserError("the parser crashed on it".into())),
                            false,
                        )
                    });
            let mut ignores = ignore_comments(text, p.offset, p.line, &mut bad_ignores);
            ignores.extend(whole_file.iter().cloned());
            let inert_do = ast.is_err() && is_inert_do(p.sql);
            ParsedStmt {
                line: p.line,
                column: p.column,
                head: if ast.is_err() {
                    head_words(p.sql)
                } else {
                    String::new()
                },
                ast: ast.map_err(|e| relocate_error(e, p.line, p.column)),
                drop_concurrently,
                inert_do,
                ignores,
            }
        })
        .collect();
    ParsedFile {
        src,
        in_transaction,
        stmts,
        tail_error,
        bad_ignores,
        file_ignores: whole_file,
    }
}

/// Words that start (or make up) a statement kind some rule judges: a `DO` block containing one
/// of them, or dynamic SQL (`EXECUTE`), may hide a finding, so it stays a `parse-error`.
const JUDGED_WORDS: &[&str] = &[
    "ALTER",
    "DROP",
    "TRUNCATE",
    "LOCK",
    "REINDEX",
    "CLUSTER",
    "VACUUM",
    "EXECUTE",
    "INDEX",
    "TABLE",
    "DOMAIN",
    "UPDATE",
    "COMMIT",
    "ROLLBACK",
    "REFERENCES",
];

/// A `DO` block (sqlparser cannot parse one) whose body holds none of [`JUDGED_WORDS`]: no
/// statement rule could fire on it and it creates no table the realm rules need, so it is read
/// as squawk reads it, without a `parse-error`. Conservative: a judged word inside a string or a
/// comment keeps the finding.
fn is_inert_do(sql: &str) -> bool {
    let mut words = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty());
    words.next().is_some_and(|w| w.eq_ignore_ascii_case("do"))
        && !words.any(|w| JUDGED_WORDS.iter().any(|j| w.eq_ignore_ascii_case(j)))
}

/// The first few words of a statement, upper-cased, comments skipped.
fn head_words(sql: &str) -> String {
    let mut words = Vec::new();
    for line in sql.lines() {
        let code = line.split("--").next().unwrap_or("");
        for w in code.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
            if !w.is_empty() {
                words.push(w.to_ascii_uppercase());
                if words.len() == 8 {
                    return words.join(" ");
                }
            }
        }
    }
    words.join(" ")
}

fn line_start(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(i, _)| i + 1)
}

/// 1-based (line, column in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let ls = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[ls..].chars().count() + 1)
}

/// Parse one statement. sqlparser 0.64 does not know `DROP INDEX CONCURRENTLY`: blank the keyword
/// out (keeping every position) and remember it.
fn parse_piece(sql: &str) -> (Result<Statement, ParserError>, bool) {
    let dialect = PostgreSqlDialect {};
    let mut concurrently = false;
    let owned;
    let mut text = sql;
    if let Some(range) = drop_index_concurrently(sql) {
        let mut s = sql.to_string();
        s.replace_range(range.clone(), &" ".repeat(range.len()));
        owned = s;
        text = &owned;
        concurrently = true;
    }
    let parsed = Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements());
    let result = match parsed {
        Ok(mut v) if v.len() == 1 => Ok(v.remove(0)),
        Ok(v) => Err(ParserError::ParserError(format!(
            "expected one statement, found {}",
            v.len()
        ))),
        Err(e) => Err(e),
    };
    (result, concurrently)
}

/// Byte range of `CONCURRENTLY` in `DROP INDEX CONCURRENTLY …`.
fn drop_index_concurrently(sql: &str) -> Option<std::ops::Range<usize>> {
    let mut words = sql
        .split_ascii_whitespace()
        .map(|w| (w.as_ptr() as usize - sql.as_ptr() as usize, w));
    let (_, a) = words.next()?;
    let (_, b) = words.next()?;
    let (at, c) = words.next()?;
    (a.eq_ignore_ascii_case("drop")
        && b.eq_ignore_ascii_case("index")
        && c.eq_ignore_ascii_case("concurrently"))
    .then(|| at..at + c.len())
}

/// sqlparser reports "at Line: l, Column: c" relative to the statement; make it the file's.
fn relocate_error(e: ParserError, line: usize, column: usize) -> String {
    let msg = match e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => "the statement nests too deeply".to_string(),
    };
    let Some(at) = msg.find(" at Line: ") else {
        return msg;
    };
    let tail = &msg[at + " at Line: ".len()..];
    let mut nums = tail
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().unwrap_or(0));
    match (nums.next(), nums.next()) {
        (Some(l), Some(c)) => {
            let (fl, fc) = (line + l - 1, if l == 1 { column + c - 1 } else { c });
            format!("{} at line {fl}, column {fc}", &msg[..at])
        }
        _ => msg,
    }
}

/// An ignore comment may also sit right above the offending line inside a statement (a column of
/// a long `CREATE TABLE`), not only above the statement.
fn ignored_on_line_above(text: &str, line: usize, rule: &str) -> bool {
    if line < 2 {
        return false;
    }
    let above = source_line(text, line - 1);
    let mut ids = Vec::new();
    ignore_ids(above.trim(), &mut ids, &mut |_| {});
    ids.iter().any(|id| id == rule || id == ALL_RULES)
}

/// What an ignore list holds for "every rule" (squawk's bare `-- squawk-ignore`).
const ALL_RULES: &str = "*";

/// The body of a one-line comment (`-- …` or `/* … */`), up to a second `--`.
fn comment_body(line: &str) -> Option<&str> {
    let body = match line.strip_prefix("--") {
        Some(b) => b,
        None => line.strip_prefix("/*")?.strip_suffix("*/")?,
    };
    Some(body.find("--").map_or(body, |i| &body[..i]).trim())
}

/// squawk's names for rules realmguard knows under another id (squawk accepts both spellings of
/// prefer-timestamptz; it split require-timeout-settings in two).
fn squawk_alias(name: &str) -> &str {
    match name {
        "prefer-timestamp-tz" => "prefer-timestamptz",
        "require-lock-timeout" | "require-statement-timeout" => "require-timeout-settings",
        other => other,
    }
}

/// The rule ids a statement-level ignore comment on `line` names, pushed onto `ids`:
/// `-- realmguard:ignore a, b` (an unknown id goes to `bad`, to be reported) or squawk's
/// `-- squawk-ignore a,b` (no ids: every rule; ids of squawk rules realmguard lacks are skipped
/// silently, they are not typos). Returns whether the line is a comment at all.
fn ignore_ids(line: &str, ids: &mut Vec<String>, bad: &mut dyn FnMut(&str)) -> bool {
    let Some(body) = comment_body(line) else {
        return false;
    };
    if let Some(rest) = body.strip_prefix("realmguard:ignore") {
        for id in rest
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            if crate::rules::is_known(id) {
                ids.push(id.to_string());
            } else {
                bad(id);
            }
        }
    } else if let Some(rest) = body.strip_prefix("squawk-ignore") {
        if rest.starts_with("-file") || !(rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            return true;
        }
        squawk_ids(rest, ids);
    }
    true
}

/// squawk's comma-separated list (empty: every rule).
fn squawk_ids(rest: &str, ids: &mut Vec<String>) {
    if rest.trim().is_empty() {
        ids.push(ALL_RULES.to_string());
        return;
    }
    for name in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let id = squawk_alias(name);
        if crate::rules::is_known(id) {
            ids.push(id.to_string());
        }
    }
}

/// The rules squawk's `-- squawk-ignore-file [a, b]` comments (anywhere in the file, as squawk)
/// silence for the whole file.
fn file_ignores(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    if !text.contains("squawk-ignore-file") {
        return ids;
    }
    for line in text.lines() {
        let Some(body) = comment_body(line.trim()) else {
            continue;
        };
        if let Some(rest) = body.strip_prefix("squawk-ignore-file") {
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                squawk_ids(rest, &mut ids);
            }
        }
    }
    ids
}

/// Rule ids named by ignore comments on the lines just above a statement (a run of comment
/// lines ending on the line before it).
fn ignore_comments(
    text: &str,
    offset: usize,
    line: usize,
    bad: &mut Vec<(usize, String)>,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut end = text[..offset].rfind('\n').unwrap_or(0);
    let mut l = line;
    // The statement's own line may carry leading text of a previous statement; start above it.
    while end > 0 {
        let start = text[..end].rfind('\n').map_or(0, |i| i + 1);
        let above = text[start..end].trim();
        l -= 1;
        if !ignore_ids(above, &mut ids, &mut |id| bad.push((l, id.to_string()))) {
            break;
        }
        if start == 0 {
            break;
        }
        end = start - 1;
    }
    ids
}

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
mod tests {
    use super::rules::test_support::{lint_text, rules_of, rules_of_all};
    use super::*;

    #[test]
    fn versions_are_read_exactly_as_migrate_reads_them() {
        use std::path::Path;
        assert_eq!(
            super::version_of(Path::new("m/0003_add_groups.sql")),
            Some(3)
        );
        assert_eq!(super::version_of(Path::new("m/0003_add.up.sql")), Some(3));
        // Names migrate refuses are not ordered as migrations either.
        for bad in ["m/+3_x.sql", "m/0003_.sql", "m/99999999999999999999_x.sql"] {
            assert_eq!(super::version_of(Path::new(bad)), None, "{bad}");
        }
    }

    #[test]
    fn no_transaction_directive_is_the_first_non_blank_line() {
        assert!(is_no_transaction(
            "\n\n-- realmguard:no-transaction\ncreate index …"
        ));
        assert!(is_no_transaction("\u{feff}-- no-transaction\n"));
        assert!(!is_no_transaction(
            "-- a comment\n-- realmguard:no-transaction\n"
        ));
        assert!(!is_no_transaction("select 1; -- realmguard:no-transaction"));
    }

    #[test]
    fn unparsable_statement_costs_one_finding_and_the_rest_is_checked() {
        let sql = "create table t (id int);\nDO $$ begin execute 'analyze'; end $$;\nalter table users drop column email;\n";
        assert_eq!(rules_of(sql), vec!["parse-error", "ban-drop-column"]);
    }

    #[test]
    fn a_do_block_is_a_parse_error_only_when_it_may_hide_a_finding() {
        let inert = "DO $do$\nBEGIN\n    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN\n        CREATE TYPE mood AS ENUM ('sad', 'happy');\n    END IF;\nEND\n$do$;\n";
        assert!(rules_of(inert).is_empty(), "{:?}", rules_of(inert));
        for hiding in [
            "DO $$ BEGIN ALTER TABLE users ADD COLUMN a int; END $$;",
            "DO $$ BEGIN EXECUTE format('DROP TABLE %I', 'x'); END $$;",
            "DO $$ BEGIN CREATE TABLE notes (id int PRIMARY KEY); END $$;",
            "DO LANGUAGE plpgsql $$ BEGIN UPDATE users SET a = 1, a = 2; END $$;",
        ] {
            assert_eq!(rules_of(hiding), vec!["parse-error"], "{hiding}");
        }
    }

    #[test]
    fn unterminated_string_reports_the_rest_and_checks_what_came_before() {
        let sql =
            "alter table users drop column a;\nselect 'oops;\nalter table users drop column b;\n";
        assert_eq!(rules_of(sql), vec!["ban-drop-column", "parse-error"]);
        let text = lint_text(&[("0001_x.sql", sql)]);
        assert!(
            text.contains("0001_x.sql:2:1: error[parse-error]"),
            "{text}"
        );
    }

    #[test]
    fn unterminated_dollar_quote_reported_at_its_statement() {
        // The tokenizer reports this one at the end of the file, not where the quote began.
        let sql = "alter table users drop column a;\nselect $q$ oops;\nalter table users drop column b;\n";
        let text = lint_text(&[("0001_x.sql", sql)]);
        assert!(
            text.contains("0001_x.sql:1:31: warning[ban-drop-column]"),
            "{text}"
        );
        assert!(
            text.contains("0001_x.sql:2:1: error[parse-error]"),
            "{text}"
        );
        assert!(!text.contains(":3:"), "{text}");
    }

    #[test]
    fn ignore_comment_silences_only_the_named_rule_on_the_next_statement() {
        let sql = "-- realmguard:ignore ban-drop-column\nalter table users drop column a;\nalter table users drop column b;\n";
        let text = lint_text(&[("0001_x.sql", sql)]);
        assert!(!text.contains(":2:"), "{text}");
        assert!(text.contains("0001_x.sql:3:"), "{text}");
    }

    #[test]
    fn squawk_ignore_silences_the_named_rules_on_the_next_statement() {
        let sql = "-- squawk-ignore ban-drop-column, renaming-column\nalter table users drop column a;\nalter table users drop column b;\n/* squawk-ignore ban-drop-column */\nalter table users drop column c;\n";
        let text = lint_text(&[("0001_x.sql", sql)]);
        assert!(!text.contains(":2:"), "{text}");
        assert!(text.contains("0001_x.sql:3:"), "{text}");
        assert!(!text.contains(":5:"), "{text}");
        // Another rule's name silences nothing; squawk's rule names realmguard lacks are no
        // typo (no note), and its aliases count.
        assert_eq!(
            rules_of(
                "-- squawk-ignore ban-drop-view,renaming-table\nalter table users drop column a;"
            ),
            vec!["ban-drop-column"]
        );
        let r = lint_sources(
            vec![Source::new(
                "0001_x.sql".into(),
                "-- squawk-ignore ban-drop-view\nselect 1;".into(),
            )],
            &Config::default(),
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        assert!(rules_of_all(
            "-- squawk-ignore prefer-timestamp-tz\nalter table users add column at timestamp;"
        )
        .is_empty());
    }

    #[test]
    fn bare_squawk_ignore_silences_every_rule_on_the_next_statement_only() {
        let sql = "-- squawk-ignore\nalter table users drop column a, alter column b type bigint;\nalter table users drop column c;\n";
        assert_eq!(rules_of(sql), vec!["ban-drop-column"]);
        // Inside a statement, above the offending line.
        let sql = "CREATE TABLE users (\n    id bigint,\n    realm_id text NOT NULL,\n    -- squawk-ignore unique-without-realm\n    handle text UNIQUE,\n    email text UNIQUE,\n    PRIMARY KEY (id, realm_id)\n);";
        let text = lint_text(&[("0001_x.sql", sql)]);
        assert!(!text.contains("0001_x.sql:5:"), "{text}");
        assert!(
            text.contains("0001_x.sql:6:5: error[unique-without-realm]"),
            "{text}"
        );
    }

    #[test]
    fn squawk_ignore_file_silences_its_rules_anywhere_in_the_file() {
        let sql = "alter table users drop column a;\nalter table users rename column b to c;\n-- squawk-ignore-file ban-drop-column\nalter table users drop column d;\n";
        assert_eq!(rules_of(sql), vec!["renaming-column"]);
        // Bare: every rule of the file, parse errors included; other files are still checked.
        let files = [
            ("0001_a.sql", "-- squawk-ignore-file\nalter table users drop column a;\nDO $$ begin execute 'x'; end $$;\nalter table users rename column b to c;"),
            ("0002_b.sql", "alter table users drop column a;"),
        ];
        assert_eq!(
            super::rules::test_support::rules(&files),
            vec!["ban-drop-column"]
        );
        // squawk-ignore-filex is not the comment.
        assert_eq!(
            rules_of("-- squawk-ignore-filex\nalter table users drop column a;"),
            vec!["ban-drop-column"]
        );
    }

    #[test]
    fn create_table_if_not_exists_on_an_earlier_table_does_not_make_it_new() {
        let files = [
            ("0001_a.sql", "CREATE TABLE notes (id int PRIMARY KEY, body text);"),
            (
                "0002_b.sql",
                "CREATE TABLE IF NOT EXISTS notes (id int PRIMARY KEY);\nCREATE INDEX notes_body_idx ON notes (body);",
            ),
        ];
        assert_eq!(
            super::rules::test_support::rules(&files),
            vec!["require-concurrent-index-creation"]
        );
    }

    #[test]
    fn the_model_spans_batches() {
        // More files than one parse batch: file 300 meets the table of file 1, and a realm
        // finding of file 1 is still placed there at the end.
        let mut files: Vec<(String, String)> = vec![(
            "0001_groups.sql".into(),
            "CREATE TABLE groups (id bigint, realm_id text NOT NULL, name text UNIQUE, PRIMARY KEY (id, realm_id));".into(),
        )];
        for i in 2..300 {
            files.push((format!("{i:04}_noop.sql"), "SELECT 1;".into()));
        }
        files.push((
            "0300_posts.sql".into(),
            "CREATE TABLE posts (id bigint, realm_id text NOT NULL, g bigint REFERENCES groups (id) ON DELETE CASCADE, PRIMARY KEY (id, realm_id));".into(),
        ));
        let sources = files.into_iter().map(|(n, t)| Source::new(n, t)).collect();
        let r = lint_sources(sources, &Config::default());
        let found: Vec<(&str, &str)> = r
            .findings
            .iter()
            .map(|f| (f.file.as_str(), f.rule.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("0001_groups.sql", "unique-without-realm"),
                ("0300_posts.sql", "fk-missing-realm")
            ]
        );
        assert_eq!((r.files, r.statements), (300, 300));
    }

    #[test]
    fn bom_and_crlf_files_are_read_like_any_other() {
        let d = std::env::temp_dir().join(format!("rg-lint-bom-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("0001_x.sql");
        std::fs::write(
            &f,
            "\u{feff}CREATE TABLE t (id int);\r\nALTER TABLE users DROP COLUMN a;\r\n",
        )
        .unwrap();
        let r = lint_paths(&[f], &super::rules::test_support::fixture_config()).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        let x = &r.findings[0];
        assert_eq!(
            (x.rule.as_str(), x.line, x.column),
            ("ban-drop-column", 2, 31)
        );
        assert_eq!(x.source_line, "ALTER TABLE users DROP COLUMN a;");
    }

    #[test]
    fn ignore_comment_above_a_line_inside_the_statement() {
        let sql = "CREATE TABLE users (\n    id bigint,\n    realm_id text NOT NULL,\n    -- realmguard:ignore unique-without-realm\n    handle text UNIQUE,\n    email text UNIQUE,\n    PRIMARY KEY (id, realm_id)\n);";
        let text = lint_text(&[("0001_x.sql", sql)]);
        assert!(!text.contains("0001_x.sql:5:"), "{text}");
        assert!(
            text.contains("0001_x.sql:6:5: error[unique-without-realm]"),
            "{text}"
        );
    }

    #[test]
    fn drop_index_concurrently_is_understood() {
        assert_eq!(
            rules_of("-- realmguard:no-transaction\nDROP INDEX CONCURRENTLY users_email_idx;"),
            Vec::<String>::new()
        );
        assert_eq!(
            rules_of("DROP INDEX CONCURRENTLY users_email_idx;"),
            vec!["ban-concurrent-index-creation-in-transaction"]
        );
    }

    #[test]
    fn parse_error_position_is_the_file_position() {
        let sql = "select 1;\n\ncreate table t (\n  id int,,\n);";
        let text = lint_text(&[("0001_x.sql", sql)]);
        assert!(text.contains("at line 4, column"), "{text}");
    }

    #[test]
    fn config_level_changes_severity_and_off_drops() {
        let cfg =
            Config::parse("[rules]\nban-drop-column = \"error\"\nrenaming-column = \"off\"\n")
                .unwrap();
        let sources = vec![Source::new(
            "0001_x.sql".into(),
            "alter table users drop column a;\nalter table users rename column b to c;".into(),
        )];
        let r = lint_sources(sources, &cfg);
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.findings[0].severity, Severity::Error);
    }
}
