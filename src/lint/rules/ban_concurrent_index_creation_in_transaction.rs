//! `ban-concurrent-index-creation-in-transaction`: `CREATE`/`DROP INDEX CONCURRENTLY` (and
//! `DETACH PARTITION … CONCURRENTLY`) cannot run inside a transaction block, and a migration
//! without `-- realmguard:no-transaction` runs in one, so the migration would fail there.

use super::{Ctx, Violation};
use sqlparser::ast::{AlterTableOperation, DetachPartitionMode, ObjectType, Statement};

pub const ID: &str = crate::rules::Rule::BanConcurrentIndexCreationInTransaction.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    if !ctx.in_transaction {
        return;
    }
    let what = match stmt {
        Statement::CreateIndex(ci) if ci.concurrently => "CREATE INDEX CONCURRENTLY",
        Statement::Drop {
            object_type: ObjectType::Index,
            ..
        } if ctx.drop_concurrently => "DROP INDEX CONCURRENTLY",
        // The same restriction, same failure (PostgreSQL 14+).
        Statement::AlterTable(at)
            if at.operations.iter().any(|op| {
                matches!(
                    op,
                    AlterTableOperation::DetachPartitionOf {
                        mode: Some(DetachPartitionMode::Concurrently),
                        ..
                    }
                )
            }) =>
        {
            "DETACH PARTITION CONCURRENTLY"
        }
        _ => return,
    };
    let (message, help) = if ctx.wrapped {
        (
            format!("{what} cannot run inside a transaction block, and this migration runs in one"),
            "Make `-- realmguard:no-transaction` the first line of the file: realmguard then runs it statement by statement and resumes after the last one that succeeded.",
        )
    } else {
        (
            format!("{what} cannot run inside a transaction block, and this file opened one with BEGIN"),
            "Move it out of the BEGIN … COMMIT block: the file already runs statement by statement.",
        )
    };
    out.push(Violation {
        rule: ID,
        message,
        help: help.into(),
        span: None,
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_no_transaction_file() {
        assert!(rules_of("\n-- realmguard:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);").is_empty());
        assert!(rules_of(
            "-- no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);"
        )
        .is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file_needs_no_concurrently() {
        // Not CONCURRENTLY at all, which is right for a new table: nothing to report.
        assert!(
            rules_of("CREATE TABLE notes (id int);\nCREATE INDEX notes_id_idx ON notes (id);")
                .is_empty()
        );
    }

    #[test]
    fn err_detach_partition_concurrently_in_a_transaction() {
        assert_eq!(
            rules_of("ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;"),
            vec!["ban-concurrent-index-creation-in-transaction"]
        );
        assert!(rules_of("-- realmguard:no-transaction\nALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;").is_empty());
    }

    #[test]
    fn err_concurrently_inside_the_files_own_begin() {
        insta::assert_snapshot!(lint_text(&[(
            "0003_index.sql",
            "-- realmguard:no-transaction\nBEGIN;\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\nCOMMIT;\nCREATE INDEX CONCURRENTLY users_name_idx ON users (name);"
        )]));
    }

    #[test]
    fn err_concurrently_in_a_transaction() {
        insta::assert_snapshot!(lint_text(&[(
            "0002_index.sql",
            "-- the directive must be the first line, so this file runs in a transaction\n-- realmguard:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);"
        )]));
    }
}
