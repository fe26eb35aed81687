//! Splitting and parsing: each file into statements (the shared splitter), each statement on its
//! own with sqlparser, on every core; what the analysis needs of a statement that does not parse.

use super::ignore::{file_ignores, ignore_comments};
use super::*;
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

pub(super) struct ParsedStmt {
    pub(super) line: usize,
    pub(super) column: usize,
    /// The statement's first words, to tell which rules a parse failure kept from checking it.
    pub(super) head: String,
    pub(super) ast: Result<Statement, String>,
    pub(super) drop_concurrently: bool,
    /// A `DO` block whose body holds none of the statement kinds a rule judges.
    pub(super) inert_do: bool,
    pub(super) ignores: Vec<String>,
}

pub(super) struct ParsedFile {
    pub(super) src: Source,
    pub(super) in_transaction: bool,
    pub(super) stmts: Vec<ParsedStmt>,
    /// A tokenizer failure: (line, column, message); everything from there on is unchecked.
    pub(super) tail_error: Option<(usize, usize, String)>,
    /// Unknown ids in ignore comments: (line, id).
    pub(super) bad_ignores: Vec<(usize, String)>,
    /// Rules a `squawk-ignore-file` comment silences in the whole file.
    pub(super) file_ignores: Vec<String>,
}

pub(super) fn parse_all(sources: Vec<Source>) -> Vec<ParsedFile> {
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

pub(super) fn parse_file(src: Source) -> ParsedFile {
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
pub(super) const JUDGED_WORDS: &[&str] = &[
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
pub(super) fn is_inert_do(sql: &str) -> bool {
    let mut words = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty());
    words.next().is_some_and(|w| w.eq_ignore_ascii_case("do"))
        && !words.any(|w| JUDGED_WORDS.iter().any(|j| w.eq_ignore_ascii_case(j)))
}

/// The first few words of a statement, upper-cased, comments skipped.
pub(super) fn head_words(sql: &str) -> String {
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

pub(super) fn line_start(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(i, _)| i + 1)
}

/// 1-based (line, column in characters) of a byte offset.
pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let ls = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[ls..].chars().count() + 1)
}

/// Parse one statement. sqlparser 0.64 does not know `DROP INDEX CONCURRENTLY`: blank the keyword
/// out (keeping every position) and remember it.
pub(super) fn parse_piece(sql: &str) -> (Result<Statement, ParserError>, bool) {
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
pub(super) fn drop_index_concurrently(sql: &str) -> Option<std::ops::Range<usize>> {
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
pub(super) fn relocate_error(e: ParserError, line: usize, column: usize) -> String {
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
