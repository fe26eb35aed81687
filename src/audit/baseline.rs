//! The baseline: findings accepted for now, keyed by the normalized query (so a query keeps its
//! entry when it moves in its file, and pg_stat_statements' `$n` matches a literal), the rule and
//! the table. One entry per line, so a stale entry is reported at its line.

use super::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// sha256 of the normalized query, 16 hex digits.
    pub query: String,
    pub rule: String,
    pub table: String,
    /// Where the query was when the entry was written (stale entries are judged only for files
    /// audited again).
    pub file: String,
    /// The normalized query, for the reader.
    pub sql: String,
    #[serde(skip)]
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub path: String,
    pub entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Doc {
    entries: Vec<Entry>,
}

impl Baseline {
    pub fn read(path: &Path) -> Result<Baseline> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadBaseline {
            path: path.display().to_string(),
            source,
        })?;
        let doc: Doc = serde_json::from_str(&text).map_err(|error| Error::InvalidBaseline {
            path: path.display().to_string(),
            error,
        })?;
        let mut entries = doc.entries;
        // Entries are written one a line after two header lines.
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("{\"query\""))
            .map(|(i, _)| i + 1)
            .collect();
        for (i, e) in entries.iter_mut().enumerate() {
            e.line = lines.get(i).copied().unwrap_or(1);
        }
        Ok(Baseline {
            path: path.display().to_string(),
            entries,
        })
    }

    pub fn render(entries: &[Entry]) -> String {
        let mut s = String::from("{\n\"version\": 1,\n\"entries\": [\n");
        for (i, e) in entries.iter().enumerate() {
            s.push_str(&serde_json::to_string(e).unwrap_or_default());
            s.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
        }
        s.push_str("]\n}\n");
        s
    }
}

/// The query with comments, whitespace, constants and parameters folded away: `$1`, `@id`,
/// `'hub'` and `42` all become `?`, unquoted words are lower-cased.
pub fn normalize(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return sql.split_whitespace().collect::<Vec<_>>().join(" ");
    };
    let mut out = String::with_capacity(sql.len());
    for t in tokens {
        let piece = match &t {
            Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab)
            | Token::Whitespace(_) => continue,
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_) => "?".to_string(),
            Token::Word(w) if w.quote_style.is_none() => w.value.to_lowercase(),
            other => other.to_string(),
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&piece);
    }
    out
}

pub fn key(normalized: &str) -> String {
    let d = Sha256::digest(normalized.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_parameters_and_layout_do_not_change_the_key() {
        let a = normalize("SELECT * FROM groups -- x\n WHERE realm_id = 'hub' AND id = 42");
        let b = normalize("select *\tfrom GROUPS where realm_id = $1 and id = $2");
        assert_eq!(a, b);
        assert_eq!(a, "select * from groups where realm_id = ? and id = ?");
        assert_ne!(key(&a), key(&normalize("select * from users")));
    }

    #[test]
    fn written_baseline_reads_back_with_lines() {
        let e = Entry {
            query: "k".into(),
            rule: "query-missing-realm-filter".into(),
            table: "groups".into(),
            file: "q.sql".into(),
            sql: "select".into(),
            line: 0,
        };
        let text = Baseline::render(&[e.clone(), e]);
        let d = std::env::temp_dir().join(format!("rg-baseline-{}.json", std::process::id()));
        std::fs::write(&d, text).unwrap();
        let b = Baseline::read(&d).unwrap();
        std::fs::remove_file(&d).unwrap();
        assert_eq!(b.entries.len(), 2);
        assert_eq!((b.entries[0].line, b.entries[1].line), (4, 5));
    }
}
