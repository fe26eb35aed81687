//! `ban-uncommitted-transaction`: a no-transaction file that opens a block with `BEGIN` and ends
//! without `COMMIT`. The session's open transaction keeps its locks until the connection goes,
//! and what it did is rolled back then.

use super::{FileSoFar, Violation};

pub const ID: &str = crate::rules::Rule::BanUncommittedTransaction.id();

/// At the end of a file: the statement index of a `BEGIN` left open, with its finding.
pub fn check_end(wrapped: bool, so_far: &FileSoFar) -> Option<(usize, Violation)> {
    if wrapped {
        // The runner's own transaction; transaction-nesting reports the BEGIN.
        return None;
    }
    let at = so_far.tx_began_at?;
    Some((
        at,
        Violation {
            rule: ID,
            message: "this BEGIN is never committed: the transaction stays open, holding its locks, until the connection closes and rolls it back".into(),
            help: "Add `COMMIT;` at the end of the block.".into(),
            span: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_committed_block() {
        assert!(rules_of(
            "-- realmguard:no-transaction\nBEGIN;\nALTER TABLE users ADD COLUMN a int;\nCOMMIT;"
        )
        .is_empty());
    }

    #[test]
    fn err_begin_without_commit() {
        insta::assert_snapshot!(lint_text(&[(
            "0006_open.sql",
            "-- realmguard:no-transaction\nBEGIN;\nALTER TABLE users ADD COLUMN a int;"
        )]));
    }
}
