//! `transaction-nesting`: `BEGIN`, `COMMIT` or `ROLLBACK` in a file that realmguard's migrate
//! wraps in a transaction. The runner refuses such a file before running it (a `COMMIT` in the
//! middle would make half of it permanent), so whatever else the file does never happens.

use super::{Ctx, Violation};
use sqlparser::ast::Statement;

pub const ID: &str = crate::rules::Rule::TransactionNesting.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    if !ctx.wrapped {
        return;
    }
    let what = match stmt {
        Statement::StartTransaction { .. } => "BEGIN",
        Statement::Commit { .. } => "COMMIT",
        Statement::Rollback { .. } => "ROLLBACK",
        _ => return,
    };
    out.push(Violation {
        rule: ID,
        message: format!(
            "{what} in a transaction-wrapped migration: realmguard's migrate refuses BEGIN/COMMIT inside a file it runs in one transaction, so this file would not run at all"
        ),
        help: "Remove it, or make `-- realmguard:no-transaction` the first line so the file runs statement by statement and may manage its own transactions.".into(),
        span: None,
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_no_transaction_file_manages_its_own() {
        assert!(rules_of("-- realmguard:no-transaction\nBEGIN;\nALTER TABLE users ADD COLUMN a int;\nCOMMIT;\nCREATE INDEX CONCURRENTLY users_a_idx ON users (a);").is_empty());
    }

    #[test]
    fn err_commit_then_begin_in_a_wrapped_file() {
        // The CONCURRENTLY after the COMMIT is not the problem: the runner never gets that far.
        insta::assert_snapshot!(lint_text(&[(
            "0005_escape.sql",
            "ALTER TABLE users ADD COLUMN a int;\nCOMMIT;\nCREATE INDEX CONCURRENTLY users_a_idx ON users (a);\nBEGIN;"
        )]));
    }
}
