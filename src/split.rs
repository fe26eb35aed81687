//! Splitting a migration file into statements with sqlparser's tokenizer, which understands
//! dollar quotes, escape strings, quoted identifiers and nested comments. `migrate` uses it to run
//! (and locate errors in) a file statement by statement; `lint` parses each piece on its own so
//! one unsupported statement costs one finding, never the rest of the file.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// One statement of a file: its text (without the terminating `;`) and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    pub sql: &'a str,
    /// 1-based line and column of the statement's first token.
    pub line: usize,
    pub column: usize,
    /// Byte offset of the first token in the file.
    pub offset: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot split the file into statements: {message}")]
pub struct SplitError {
    pub message: String,
    pub line: usize,
}

/// Split `text` into its statements, skipping empty ones and comment-only tails.
pub fn split(text: &str) -> Result<Vec<Piece<'_>>, SplitError> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| SplitError {
            line: e.location.line as usize,
            message: e.to_string(),
        })?;
    let lines = LineIndex::new(text);
    let mut pieces = Vec::new();
    // (offset, line, column) of the current statement's first significant token.
    let mut start: Option<(usize, usize, usize)> = None;
    // Depth of `BEGIN ATOMIC … END` bodies (SQL-standard function bodies contain semicolons).
    let mut atomic_depth = 0usize;
    let mut prev_word: Option<String> = None;
    for tok in &tokens {
        let loc = tok.span.start;
        let (line, col) = (loc.line as usize, loc.column as usize);
        match &tok.token {
            Token::Whitespace(
                Whitespace::Space
                | Whitespace::Newline
                | Whitespace::Tab
                | Whitespace::SingleLineComment { .. }
                | Whitespace::MultiLineComment(_),
            ) => continue,
            Token::SemiColon if atomic_depth == 0 => {
                if let Some((off, l, c)) = start.take() {
                    let end = lines.offset(text, line, col);
                    pieces.push(Piece {
                        sql: text[off..end].trim_end(),
                        line: l,
                        column: c,
                        offset: off,
                    });
                }
                prev_word = None;
                continue;
            }
            Token::Word(w) => {
                let upper = w.value.to_ascii_uppercase();
                if w.quote_style.is_none() {
                    if upper == "ATOMIC" && prev_word.as_deref() == Some("BEGIN") {
                        atomic_depth += 1;
                    } else if upper == "END" && atomic_depth > 0 {
                        atomic_depth -= 1;
                    }
                }
                prev_word = Some(upper);
            }
            _ => prev_word = None,
        }
        if start.is_none() {
            start = Some((lines.offset(text, line, col), line, col));
        }
    }
    if let Some((off, l, c)) = start {
        pieces.push(Piece {
            sql: text[off..].trim_end(),
            line: l,
            column: c,
            offset: off,
        });
    }
    Ok(pieces)
}

/// Byte offsets of line starts, to turn sqlparser's (line, column-in-chars) into byte offsets.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn offset(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(&ls) = self.starts.get(line.saturating_sub(1)) else {
            return text.len();
        };
        let rest = &text[ls..];
        rest.char_indices()
            .nth(column.saturating_sub(1))
            .map_or(text.len(), |(i, _)| ls + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqls(text: &str) -> Vec<&str> {
        split(text).unwrap().into_iter().map(|p| p.sql).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes() {
        let t = "create table a (x text default ';');\n-- a comment; with semicolon\ninsert into a values ('x;y');";
        assert_eq!(
            sqls(t),
            vec![
                "create table a (x text default ';')",
                "insert into a values ('x;y')"
            ]
        );
    }

    #[test]
    fn dollar_quotes_and_block_comments_hold_semicolons() {
        let t = "/* a; /* nested; */ b; */\ncreate function f() returns int language plpgsql as $body$ begin return 1; end $body$;\nselect 1";
        let p = split(t).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].sql.starts_with("create function") && p[0].sql.ends_with("$body$"));
        assert_eq!((p[0].line, p[0].column), (2, 1));
        assert_eq!(p[1].sql, "select 1");
        assert_eq!(p[1].line, 3);
    }

    #[test]
    fn begin_atomic_bodies_stay_whole() {
        let t = "create function f() returns int language sql begin atomic select 1; select 2; end;\nselect 3;";
        assert_eq!(sqls(t).len(), 2);
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let t = "select 'é';  select 2;";
        let p = split(t).unwrap();
        assert_eq!(p[1].sql, "select 2");
        assert_eq!(&t[p[1].offset..p[1].offset + 8], "select 2");
    }

    #[test]
    fn comment_only_file_is_empty() {
        assert!(split("-- nothing\n/* here */\n").unwrap().is_empty());
    }

    #[test]
    fn unterminated_string_is_an_error_with_a_line() {
        let e = split("select 1;\nselect 'oops").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
