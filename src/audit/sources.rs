//! Reading queries from each input format into statements with a location and a name:
//! `.sql` files (sqlc query files among them), sqlx offline data (`.sqlx/query-*.json`),
//! JSON-lines query logs (Prisma's query events), and pg_stat_statements rows.

use anyhow::{bail, Context};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
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
pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot audit {}", p.display()))?;
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

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
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
pub fn read_files(files: &[PathBuf]) -> anyhow::Result<Vec<Query>> {
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
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
    let (pieces, error) = match crate::split::split(text) {
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
pub fn rewrite_placeholders(sql: &str) -> String {
    if !sql.contains('@') && !sql.contains("sqlc.") {
        return sql.to_string();
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return sql.to_string();
    };
    let starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |t: &sqlparser::tokenizer::TokenWithSpan| -> usize {
        let (l, c) = (t.span.start.line as usize, t.span.start.column as usize);
        let ls = starts
            .get(l.saturating_sub(1))
            .copied()
            .unwrap_or(sql.len());
        sql[ls..]
            .char_indices()
            .nth(c.saturating_sub(1))
            .map_or(sql.len(), |(i, _)| ls + i)
    };
    let mut out = sql.to_string();
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i].token;
        if matches!(tok, Token::AtSign) {
            if let Some(Token::Word(w)) = tokens.get(i + 1).map(|t| &t.token) {
                let (at, word) = (offset(&tokens[i]), offset(&tokens[i + 1]));
                if w.quote_style.is_none() && word == at + 1 {
                    out.replace_range(at..at + 1, "$");
                }
            }
        }
        if let Token::Word(w) = tok {
            if w.value.eq_ignore_ascii_case("sqlc") {
                let t = |k: usize| tokens.get(i + k).map(|t| &t.token);
                let arg = match (t(1), t(2), t(3), t(4), t(5)) {
                    (
                        Some(Token::Period),
                        Some(Token::Word(f)),
                        Some(Token::LParen),
                        Some(a),
                        Some(Token::RParen),
                    ) if matches!(
                        f.value.to_ascii_lowercase().as_str(),
                        "arg" | "narg" | "slice"
                    ) =>
                    {
                        match a {
                            Token::Word(a) => Some(a.value.clone()),
                            Token::SingleQuotedString(s) => Some(s.clone()),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let Some(name) = arg {
                    let (from, to) = (offset(&tokens[i]), offset(&tokens[i + 5]) + 1);
                    let plain: String = name
                        .chars()
                        .map(|c| {
                            if c.is_alphanumeric() || c == '_' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    let mut rep = format!("${plain}");
                    let width = out[from..to].chars().count();
                    while rep.chars().count() < width {
                        rep.push(' ');
                    }
                    if rep.chars().count() == width {
                        out.replace_range(from..to, &rep);
                    }
                    i += 6;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
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
pub fn from_sqlx(path: &str, text: &str) -> anyhow::Result<Vec<Query>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{path}: not a JSON document: {e}"))?;
    let Some(query) = v.get("query").and_then(|q| q.as_str()) else {
        bail!("{path}: no \"query\" field (is it sqlx offline data?)");
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
pub fn from_json_lines(path: &str, text: &str) -> anyhow::Result<Vec<Query>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{path}:{}: not a JSON object: {e}", i + 1))?;
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
