//! `adding-not-nullable-field`: `SET NOT NULL` scans the whole table under an ACCESS EXCLUSIVE
//! lock, unless a validated `CHECK (col IS NOT NULL)` already proves it (PostgreSQL 12+,
//! <https://www.postgresql.org/docs/current/sql-altertable.html#SQL-ALTERTABLE-DESC-SET-DROP-NOT-NULL>).
//! Before 12 (`--pg-version 11`) the check does not help: SET NOT NULL always scans.

use super::{display_table, Ctx, Violation};
use crate::lint::model::{ident, object_key};
use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, Statement};

pub const ID: &str = crate::rules::Rule::AddingNotNullableField.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    let key = object_key(&at.name);
    for op in &at.operations {
        let AlterTableOperation::AlterColumn {
            column_name,
            op: AlterColumnOperation::SetNotNull,
        } = op
        else {
            continue;
        };
        let col = ident(column_name);
        // Already NOT NULL (a no-op for PostgreSQL), or proven by a validated check: no scan.
        if (ctx.schema.has_validated_not_null_check(&key, &col) && !ctx.opts.pg_before(12))
            || ctx
                .schema
                .table(&key)
                .is_some_and(|t| t.column(&col).is_some_and(|c| !c.nullable))
        {
            continue;
        }
        let table = display_table(&key);
        out.push(Violation {
            rule: ID,
            message: format!(
                "SET NOT NULL on column \"{col}\" of existing table \"{table}\" scans every row under an ACCESS EXCLUSIVE lock"
            ),
            help: format!(
                "First add `CHECK ({col} IS NOT NULL) NOT VALID` and VALIDATE it in a later migration; SET NOT NULL then skips the scan, and the check can be dropped afterwards."
            ),
            span: Some(column_name.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_after_a_validated_check() {
        assert!(rules(&[
            ("0001_a.sql", "CREATE TABLE users (id int PRIMARY KEY, email text);"),
            ("0002_b.sql", "ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;"),
            ("0003_c.sql", "ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;"),
            ("0004_d.sql", "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
        ])
        .is_empty());
    }

    #[test]
    fn ok_validated_check_on_a_table_the_set_did_not_create() {
        // squawk's own safe sequence, on a table that predates the migrations: split over files…
        assert!(rules(&[
            ("0002_b.sql", "ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;"),
            ("0003_c.sql", "ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;"),
            ("0004_d.sql", "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
        ])
        .is_empty());
        // …and in one no-transaction file, each statement its own transaction.
        assert!(rules_of(
            "-- realmguard:no-transaction
ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
        )
        .is_empty());
        // In one transaction-wrapped file the VALIDATE is the finding, not the SET NOT NULL.
        assert_eq!(
            rules_of("ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
            vec!["constraint-missing-not-valid"]
        );
    }

    #[test]
    fn before_12_a_validated_check_does_not_spare_the_scan() {
        let sql = "-- realmguard:no-transaction
ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;";
        let v = |n| crate::lint::LintOptions {
            pg_version: Some(n),
            ..Default::default()
        };
        assert_eq!(
            rules_of_opts(sql, &v(11)),
            vec!["adding-not-nullable-field"]
        );
        assert!(rules_of_opts(sql, &v(12)).is_empty());
    }

    #[test]
    fn ok_column_already_not_null() {
        assert!(rules(&[
            (
                "0001_a.sql",
                "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);"
            ),
            (
                "0002_b.sql",
                "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
            ),
        ])
        .is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of("CREATE TABLE notes (id int, body text);\nALTER TABLE notes ALTER COLUMN body SET NOT NULL;").is_empty());
    }

    #[test]
    fn err_set_not_null_with_an_unvalidated_check() {
        insta::assert_snapshot!(lint_text(&[
            ("0001_a.sql", "CREATE TABLE users (id int PRIMARY KEY, email text);"),
            ("0002_b.sql", "ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
        ]));
    }
}
