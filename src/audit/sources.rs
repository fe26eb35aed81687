//! Reading queries from each input format into statements with a location and a name:
//! `.sql` files (sqlc query files among them), sqlx offline data (`.sqlx/query-*.json`),
//! JSON-lines query logs (Prisma's query events), and pg_stat_statements rows.

use super::{Error, Result};
use std::path::{Path, PathBuf};

/// An exemption comment on or above the query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Exempt {
    #[default]
    None,
    /// `-- realmguard:cross-realm <reason>`.
    Reason(String),
    /// The marker without a reason: not an exemption (said in a note).
    NoReason,
}

/// One statement to audit.
#[derive(Debug, Clone)]
pub struct Query {
    /// The statement's text (sqlc placeholders rewritten to `$name`, positions kept).
    pub text: String,
    /// File (or `pg_stat_statements`) and 1-based position of the statement's start; 0 when the
    /// source has no lines (pg_stat_statements).
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The text is embedded in a JSON document or a log line: findings are placed at the query,
    /// not inside it.
    pub embedded: bool,
    /// The sqlc query name, the sqlx hash, or the pg_stat_statements queryid.
    pub name: Option<String>,
    pub exempt: Exempt,
    /// The source could not be split into statements from here on.
    pub error: Option<String>,
}

const MARKER: &str = "realmguard:cross-realm";

/// The files to read for PATHs: files as given; directories walked for `*.sql`, `*.jsonl`,
/// `*.ndjson` and `.sqlx/query-*.json` (hidden directories other than `.sqlx`, `target` and
/// `node_modules` skipped), in path order.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| Error::Audit {
            path: p.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadDir {
        path: dir.display().to_string(),
        source,
    })?;
    for e in entries {
        let p = e.map_err(|source| Error::DirEntry { source })?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if (name.starts_with('.') && name != ".sqlx")
                || name == "target"
                || name == "node_modules"
            {
                continue;
            }
            walk(&p, out)?;
        } else if kind_of(&p).is_some() {
            out.push(p);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Sql,
    Sqlx,
    JsonLines,
}

fn kind_of(p: &Path) -> Option<FileKind> {
    let name = p.file_name()?.to_str()?;
    if name.ends_with(".sql") {
        Some(FileKind::Sql)
    } else if name.starts_with("query-") && name.ends_with(".json") {
        Some(FileKind::Sqlx)
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        Some(FileKind::JsonLines)
    } else {
        None
    }
}

/// Read every query of the given files.
pub fn read_files(files: &[PathBuf]) -> Result<Vec<Query>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|source| Error::ReadFile {
            path: f.display().to_string(),
            source,
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let path = f.display().to_string();
        let kind = match kind_of(f) {
            Some(k) => k,
            // A file named explicitly: a JSON document or log by its first character, else SQL.
            None if text.trim_start().starts_with('{') => FileKind::JsonLines,
            None => FileKind::Sql,
        };
        match kind {
            FileKind::Sql => out.extend(from_sql(&path, text)),
            FileKind::Sqlx => out.extend(from_sqlx(&path, text)?),
            FileKind::JsonLines => out.extend(from_json_lines(&path, text)?),
        }
    }
    Ok(out)
}

/// The statements of a `.sql` file; sqlc's `-- name: X :kind` header above a statement names it.
pub fn from_sql(path: &str, text: &str) -> Vec<Query> {
    let (pieces, error) = match split_file(text) {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    for p in &pieces {
        let above = comments_above(text, p.offset);
        let end = p.offset + p.sql.len();
        let rest_of_line = text[end..].split('\n').next().unwrap_or("");
        let name = above.iter().rev().find_map(|c| sqlc_name(c));
        let exempt = exemption(
            above
                .iter()
                .map(String::as_str)
                .chain([p.sql, rest_of_line]),
        );
        out.push(Query {
            text: rewrite_placeholders(p.sql),
            file: path.to_string(),
            line: p.line,
            column: p.column,
            embedded: false,
            name,
            exempt,
            error: None,
        });
    }
    if let Some(e) = error {
        // The tokenizer stopped (an unterminated quote or comment): what follows is unchecked.
        let message = match e.message.find(" at Line: ") {
            Some(i) => e.message[..i].to_string(),
            None => e.message.clone(),
        };
        out.push(Query {
            text: String::new(),
            file: path.to_string(),
            line: e.line,
            column: 1,
            embedded: false,
            name: None,
            exempt: Exempt::None,
            error: Some(message),
        });
    }
    out
}

/// The run of `--` comment lines directly above byte offset `at`, top to bottom.
fn comments_above(text: &str, at: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut end = text[..at].rfind('\n').unwrap_or(0);
    while end > 0 {
        let start = text[..end].rfind('\n').map_or(0, |i| i + 1);
        let line = text[start..end].trim();
        if !line.starts_with("--") {
            break;
        }
        lines.push(line.to_string());
        if start == 0 {
            break;
        }
        end = start - 1;
    }
    lines.reverse();
    lines
}

/// `-- name: GetUser :one` → `GetUser`.
fn sqlc_name(comment: &str) -> Option<String> {
    let rest = comment.strip_prefix("--")?.trim().strip_prefix("name:")?;
    rest.split_whitespace().next().map(str::to_string)
}

/// The exemption named in these texts (comment lines or the statement itself).
fn exemption<'a>(texts: impl Iterator<Item = &'a str>) -> Exempt {
    let mut found = Exempt::None;
    for t in texts {
        for (i, _) in t.match_indices(MARKER) {
            let before = &t[..i];
            // Only in a `--` comment: the marker must follow `--` on its line.
            let line_start = before.rfind('\n').map_or(0, |n| n + 1);
            if !before[line_start..].contains("--") {
                continue;
            }
            let after = &t[i + MARKER.len()..];
            let reason = after.split('\n').next().unwrap_or("").trim();
            if reason.is_empty() {
                if found == Exempt::None {
                    found = Exempt::NoReason;
                }
            } else {
                return Exempt::Reason(reason.to_string());
            }
        }
    }
    found
}

/// sqlc's placeholders as PostgreSQL parameters, keeping every position: `@name` → `$name`,
/// `sqlc.arg(name)` / `sqlc.narg(name)` / `sqlc.slice(name)` → `$name` padded with spaces.
/// A scanner of its own, not the tokenizer: it runs on every statement, and only needs to skip
/// strings, quoted identifiers, comments and dollar quotes.
pub fn rewrite_placeholders(sql: &str) -> String {
    if !sql.contains('@') && !sql.contains("sqlc.") {
        return sql.to_string();
    }
    let b = sql.as_bytes();
    let mut out = sql.to_string();
    let mut i = 0;
    while i < b.len() {
        if let Some(next) = skip_quoted(sql, i) {
            i = next;
            continue;
        }
        match b[i] {
            b'@' if i + 1 < b.len()
                && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_')
                && (i == 0 || !is_ident(b[i - 1])) =>
            {
                out.replace_range(i..i + 1, "$");
                i += 1;
            }
            c if (c == b's' || c == b'S') && (i == 0 || !is_ident(b[i - 1])) => {
                match sqlc_call(&sql[i..]) {
                    Some((len, name)) => {
                        let mut rep = format!("${name}");
                        let width = sql[i..i + len].chars().count();
                        if rep.chars().count() <= width {
                            while rep.chars().count() < width {
                                rep.push(' ');
                            }
                            out.replace_range(i..i + len, &rep);
                        }
                        i += len;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// When a string, quoted identifier, comment or dollar quote starts at byte `i`: the byte after
/// its end.
fn skip_quoted(sql: &str, mut i: usize) -> Option<usize> {
    let b = sql.as_bytes();
    match b[i] {
        b'\'' => {
            // E'…' strings escape with a backslash; others double the quote.
            let escapes = i > 0 && (b[i - 1] == b'e' || b[i - 1] == b'E');
            i += 1;
            while i < b.len() {
                if escapes && b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            Some((i + 1).min(b.len()))
        }
        b'"' => {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            Some((i + 1).min(b.len()))
        }
        b'-' if b.get(i + 1) == Some(&b'-') => {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            Some(i)
        }
        b'/' if b.get(i + 1) == Some(&b'*') => {
            let mut depth = 0usize;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            Some(i.min(b.len()))
        }
        b'$' => {
            // $tag$ … $tag$ (a `$1` or `$name` parameter has no closing `$`).
            let mut j = i + 1;
            if j < b.len() && b[j].is_ascii_digit() {
                return None;
            }
            while j < b.len() && is_ident(b[j]) {
                j += 1;
            }
            if j < b.len() && b[j] == b'$' {
                let tag = &sql[i..=j];
                Some(match sql[j + 1..].find(tag) {
                    Some(k) => j + 1 + k + tag.len(),
                    None => b.len(),
                })
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The statements of a large file, split in parallel: the file is cut after top-level `;`s into
/// one chunk per core and each chunk goes through the shared splitter, so the result is the
/// splitter's own. A file with `BEGIN ATOMIC` bodies (semicolons inside a statement), a small file,
/// or a chunk the splitter refuses is split whole.
fn split_file(text: &str) -> Result<Vec<crate::split::Piece<'_>>, crate::split::SplitError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || text.len() < 256 * 1024 || text.to_ascii_lowercase().contains("atomic") {
        return crate::split::split(text);
    }
    let b = text.as_bytes();
    let mut cuts = vec![0];
    let mut i = 0;
    let step = text.len() / threads;
    while i < b.len() {
        if let Some(next) = skip_quoted(text, i) {
            i = next;
            continue;
        }
        if b[i] == b';' && i + 1 >= cuts.last().copied().unwrap_or(0) + step {
            cuts.push(i + 1);
        }
        i += 1;
    }
    cuts.push(text.len());
    let chunks: Vec<(usize, &str)> = cuts.windows(2).map(|w| (w[0], &text[w[0]..w[1]])).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|&(start, chunk)| s.spawn(move || (start, crate::split::split(chunk))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("split worker panicked"))
            .collect()
    });
    let mut out = Vec::new();
    for (start, r) in results {
        let Ok(pieces) = r else {
            return crate::split::split(text);
        };
        let before = &text[..start];
        let line0 = before.matches('\n').count();
        let col0 = before[before.rfind('\n').map_or(0, |n| n + 1)..]
            .chars()
            .count();
        for mut p in pieces {
            if p.line == 1 {
                p.column += col0;
            }
            p.line += line0;
            p.offset += start;
            out.push(p);
        }
    }
    Ok(out)
}

/// `sqlc.arg(name)` (or `narg`, `slice`; the name may be quoted) at the start of `s`: its length
/// in bytes and the name.
fn sqlc_call(s: &str) -> Option<(usize, String)> {
    let lower = s.get(..11).unwrap_or(s).to_ascii_lowercase();
    let after = ["sqlc.arg(", "sqlc.narg(", "sqlc.slice("]
        .iter()
        .find(|p| lower.starts_with(**p))?
        .len();
    let close = s[after..].find(')')? + after;
    let name = s[after..close].trim().trim_matches('\'').trim_matches('"');
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    Some((close + 1, name.to_string()))
}

/// Statements of a query text found in a JSON document or a log line, all placed at `line`.
fn embedded(path: &str, line: usize, text: &str, name: Option<String>) -> Vec<Query> {
    let exempt = exemption(std::iter::once(text));
    let pieces = match crate::split::split(text) {
        Ok(p) => p,
        Err(e) => {
            return vec![Query {
                text: String::new(),
                file: path.to_string(),
                line,
                column: 1,
                embedded: true,
                name,
                exempt,
                error: Some(e.message),
            }]
        }
    };
    pieces
        .into_iter()
        .map(|p| Query {
            text: rewrite_placeholders(p.sql),
            file: path.to_string(),
            line,
            column: 1,
            embedded: true,
            name: name.clone(),
            exempt: exempt.clone(),
            error: None,
        })
        .collect()
}

/// sqlx offline data: one JSON document with a `query` field; named by its hash.
pub fn from_sqlx(path: &str, text: &str) -> Result<Vec<Query>> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|error| Error::NotJson {
        path: path.to_string(),
        error,
    })?;
    let Some(query) = v.get("query").and_then(|q| q.as_str()) else {
        return Err(Error::NoQueryField {
            path: path.to_string(),
        });
    };
    let hash = v
        .get("hash")
        .and_then(|h| h.as_str())
        .map(str::to_string)
        .or_else(|| {
            Path::new(path)
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("query-"))
                .map(str::to_string)
        });
    let line = text
        .lines()
        .position(|l| l.trim_start().starts_with("\"query\""))
        .map_or(1, |i| i + 1);
    Ok(embedded(path, line, query, hash))
}

/// A JSON-lines log: each line an object; those with a `query` field are queries (other
/// events, as Prisma's `info` lines, are not). A line that is not JSON is an error.
pub fn from_json_lines(path: &str, text: &str) -> Result<Vec<Query>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|error| Error::NotJsonLine {
                path: path.to_string(),
                line: i + 1,
                error,
            })?;
        if let Some(q) = v.get("query").and_then(|q| q.as_str()) {
            out.extend(embedded(path, i + 1, q, None));
        }
    }
    Ok(out)
}

/// pg_stat_statements rows (queryid, query).
pub fn from_pg_stat_statements(rows: &[(i64, String)]) -> Vec<Query> {
    rows.iter()
        .flat_map(|(id, q)| {
            embedded("pg_stat_statements", 0, q, Some(format!("queryid {id}")))
                .into_iter()
                .map(|mut x| {
                    x.column = 0;
                    x
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlc_names_and_placeholders() {
        let text = "-- name: GetGroup :one\nSELECT * FROM groups WHERE id = @id AND realm_id = sqlc.arg(realm_id);\n\n-- name: ListGroups :many\nSELECT * FROM groups WHERE realm_id = sqlc.narg('realm');";
        let q = from_sql("q.sql", text);
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].name.as_deref(), Some("GetGroup"));
        assert_eq!(
            q[0].text,
            "SELECT * FROM groups WHERE id = $id AND realm_id = $realm_id         "
        );
        assert_eq!(q[1].name.as_deref(), Some("ListGroups"));
        assert!(
            q[1].text.ends_with("realm_id = $realm            "),
            "{}",
            q[1].text
        );
        assert_eq!((q[1].line, q[1].column), (5, 1));
    }

    #[test]
    fn at_inside_strings_and_operators_stays() {
        assert_eq!(
            rewrite_placeholders("select '@x', a @> b"),
            "select '@x', a @> b"
        );
    }

    #[test]
    fn a_large_file_splits_in_chunks_as_whole() {
        let mut text = String::from("-- header\n");
        for i in 0..20_000 {
            text.push_str(&format!(
                "SELECT 'a;b', $q$;$q$ /* ; */ FROM t{i} -- ;\n  WHERE x = {i};\n"
            ));
        }
        let whole = crate::split::split(&text).unwrap();
        let parallel = split_file(&text).unwrap();
        assert_eq!(whole, parallel);
    }

    #[test]
    fn exemption_needs_a_reason() {
        let q = from_sql(
            "q.sql",
            "-- realmguard:cross-realm nightly report over all realms\nselect 1;\nselect 2; -- realmguard:cross-realm\nselect 3;",
        );
        assert_eq!(
            q[0].exempt,
            Exempt::Reason("nightly report over all realms".into())
        );
        assert_eq!(q[1].exempt, Exempt::NoReason);
        assert_eq!(q[2].exempt, Exempt::None);
    }

    #[test]
    fn sqlx_and_json_lines() {
        let q = from_sqlx(
            ".sqlx/query-abc.json",
            "{\n  \"db_name\": \"PostgreSQL\",\n  \"query\": \"SELECT 1\",\n  \"hash\": \"abc\"\n}",
        )
        .unwrap();
        assert_eq!((q[0].line, q[0].name.as_deref()), (3, Some("abc")));
        let q = from_json_lines(
            "log.jsonl",
            "{\"level\":\"info\"}\n{\"query\":\"SELECT 2\",\"params\":\"[]\"}\n",
        )
        .unwrap();
        assert_eq!((q.len(), q[0].line), (1, 2));
        let e = from_json_lines("log.jsonl", "{\"query\":\"x\"}\nnot json\n").unwrap_err();
        assert!(
            e.to_string().starts_with("log.jsonl:2: not a JSON object"),
            "{e}"
        );
    }
}
