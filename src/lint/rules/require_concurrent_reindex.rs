//! `require-concurrent-reindex`: `REINDEX` without `CONCURRENTLY` locks the table against writes
//! (and the index against reads that would use it) for the whole rebuild (PostgreSQL 12+ offers
//! `CONCURRENTLY`, which needs a no-transaction migration). sqlparser does not parse REINDEX: it
//! is judged by its keywords.

use super::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RequireConcurrentReindex.id();

pub fn check_words(ctx: &Ctx, words: &[&str], out: &mut Vec<Violation>) {
    if words.first() != Some(&"REINDEX") {
        return;
    }
    if words.contains(&"CONCURRENTLY") {
        if ctx.in_transaction {
            out.push(Violation {
                rule: super::ban_concurrent_index_creation_in_transaction::ID,
                message: "REINDEX CONCURRENTLY cannot run inside a transaction block, and this statement runs in one".into(),
                help: "Make `-- realmguard:no-transaction` the first line of the file (and keep it out of any BEGIN … COMMIT).".into(),
                span: None,
            });
        }
        return;
    }
    out.push(Violation {
        rule: ID,
        message: "REINDEX without CONCURRENTLY blocks writes to the table for the whole rebuild"
            .into(),
        help: "Use `REINDEX INDEX CONCURRENTLY …` in a `-- realmguard:no-transaction` migration."
            .into(),
        span: None,
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of("-- realmguard:no-transaction\nREINDEX INDEX CONCURRENTLY users_pkey;")
                .is_empty()
        );
        assert_eq!(
            rules_of("REINDEX INDEX CONCURRENTLY users_pkey;"),
            vec!["ban-concurrent-index-creation-in-transaction"]
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[("0007_reindex.sql", "REINDEX TABLE users;")]));
    }
}
