//! `prefer-repack` (warning): `VACUUM FULL` and `CLUSTER` rewrite the table under an ACCESS
//! EXCLUSIVE lock; pg_repack (or pg_squeeze) does the same rewrite online.

use super::{Ctx, Violation};
use sqlparser::ast::Statement;

pub const ID: &str = crate::rules::Rule::PreferRepack.id();

fn violation(what: &str) -> Violation {
    Violation {
        rule: ID,
        message: format!("{what} rewrites the table under an ACCESS EXCLUSIVE lock: reads and writes wait until it ends"),
        help: "Use pg_repack (or pg_squeeze) outside the migration: it rewrites the table online.".into(),
        span: None,
    }
}

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    if let Statement::Vacuum(v) = stmt {
        if v.full {
            out.push(violation("VACUUM FULL"));
        }
    }
}

/// `CLUSTER`, which sqlparser does not parse.
pub fn check_words(_ctx: &Ctx, words: &[&str], out: &mut Vec<Violation>) {
    if words.first() == Some(&"CLUSTER") {
        out.push(violation("CLUSTER"));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(rules_of("VACUUM users;").is_empty());
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_repack.sql",
            "VACUUM FULL users;\nCLUSTER users USING users_pkey;"
        )]));
    }
}
