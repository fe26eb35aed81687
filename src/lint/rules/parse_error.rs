//! `parse-error`: a statement sqlparser cannot parse is never skipped silently. It costs one
//! finding that names the rules which therefore could not check it; the rest of the file is
//! still checked.

use super::Violation;

pub const ID: &str = crate::rules::Rule::ParseError.id();

const ALTER_TABLE: &[&str] = &[
    "constraint-missing-not-valid",
    "adding-not-nullable-field",
    "adding-required-field",
    "adding-field-with-default",
    "changing-column-type",
    "disallowed-unique-constraint",
    "renaming-column",
    "renaming-table",
    "ban-drop-column",
    "composite-primary-key",
    "realm-column-nullable",
    "unique-without-realm",
    "fk-missing-realm",
    "fk-not-cascade",
];
const CREATE_TABLE: &[&str] = &[
    "composite-primary-key",
    "realm-column-nullable",
    "unique-without-realm",
    "fk-missing-realm",
    "fk-not-cascade",
];
const CREATE_INDEX: &[&str] = &[
    "require-concurrent-index-creation",
    "ban-concurrent-index-creation-in-transaction",
    "unique-without-realm",
];
const DROP_INDEX: &[&str] = &[
    "require-concurrent-index-deletion",
    "ban-concurrent-index-creation-in-transaction",
];

/// Which rules a statement of this kind (its first words, upper-cased) would have gone through,
/// as the end of the finding's message.
fn unchecked(head: &str) -> String {
    let starts = |p: &str| head == p || head.starts_with(&format!("{p} "));
    let list = if starts("ALTER TABLE") {
        ALTER_TABLE
    } else if starts("CREATE TABLE")
        || starts("CREATE UNLOGGED TABLE")
        || starts("CREATE TEMP TABLE")
    {
        CREATE_TABLE
    } else if starts("CREATE INDEX") || starts("CREATE UNIQUE INDEX") {
        CREATE_INDEX
    } else if starts("DROP INDEX") {
        DROP_INDEX
    } else if starts("REINDEX") {
        &["ban-concurrent-index-creation-in-transaction"]
    } else if starts("DO")
        || starts("CALL")
        || starts("EXECUTE")
        || starts("CREATE FUNCTION")
        || starts("CREATE OR REPLACE")
        || starts("CREATE PROCEDURE")
    {
        return "so no rule could check what it runs (it can run any SQL), and the schema changes it makes are unknown to the realm rules".into();
    } else {
        return "so the schema changes it makes, if any, are unknown to the realm rules".into();
    };
    format!("so these rules could not check it: {}", list.join(", "))
}

pub fn violation(head: &str, parser_message: &str) -> Violation {
    Violation {
        rule: ID,
        message: format!(
            "sqlparser cannot parse this statement ({parser_message}), {}",
            unchecked(head)
        ),
        help: format!(
            "Review it by hand; when it is safe, say so with `-- realmguard:ignore {ID}` on the line above it."
        ),
        span: None,
    }
}

/// The file could not be split past this point (the tokenizer stopped).
pub fn tail(tokenizer_message: &str) -> Violation {
    Violation {
        rule: ID,
        message: format!(
            "the file cannot be split into statements from here on ({tokenizer_message}); nothing after this point was checked"
        ),
        help: "Look for an unterminated string, quoted identifier, dollar quote or comment.".into(),
        span: None,
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_statements_sqlparser_knows() {
        assert!(rules_of("CREATE TABLE notes (id int);\nCOMMENT ON TABLE notes IS 'x';\nINSERT INTO notes VALUES (1);\nCREATE EXTENSION IF NOT EXISTS pgcrypto;").is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file_does_not_hide_parse_errors() {
        // A statement that cannot be parsed is reported whatever the table's age.
        assert_eq!(
            rules_of(
                "CREATE TABLE notes (id int);\nCREATE STATISTICS notes_stats ON id, id FROM notes;"
            ),
            vec!["parse-error"]
        );
    }

    #[test]
    fn err_do_block_and_the_rest_checked() {
        insta::assert_snapshot!(lint_text(&[(
            "0012_do.sql",
            "DO $$\nBEGIN\n  EXECUTE 'ANALYZE users';\nEND\n$$;\nALTER TABLE users DROP COLUMN legacy;"
        )]));
    }

    #[test]
    fn err_malformed_alter_table() {
        insta::assert_snapshot!(lint_text(&[(
            "0013_bad.sql",
            "ALTER TABLE users ADD COLUMN;\nALTER TABLE users DROP COLUMN legacy;"
        )]));
    }
}
