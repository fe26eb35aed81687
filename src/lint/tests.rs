use super::rules::test_support::{lint_text, rules_of, rules_of_all};
use super::*;

#[test]
fn versions_are_read_exactly_as_migrate_reads_them() {
    use std::path::Path;
    assert_eq!(
        super::version_of(Path::new("m/0003_add_groups.sql")),
        Some(3)
    );
    assert_eq!(super::version_of(Path::new("m/0003_add.up.sql")), Some(3));
    // Names migrate refuses are not ordered as migrations either.
    for bad in ["m/+3_x.sql", "m/0003_.sql", "m/99999999999999999999_x.sql"] {
        assert_eq!(super::version_of(Path::new(bad)), None, "{bad}");
    }
}

#[test]
fn no_transaction_directive_is_the_first_non_blank_line() {
    assert!(is_no_transaction(
        "\n\n-- realmguard:no-transaction\ncreate index …"
    ));
    assert!(is_no_transaction("\u{feff}-- no-transaction\n"));
    assert!(!is_no_transaction(
        "-- a comment\n-- realmguard:no-transaction\n"
    ));
    assert!(!is_no_transaction("select 1; -- realmguard:no-transaction"));
}

#[test]
fn unparsable_statement_costs_one_finding_and_the_rest_is_checked() {
    let sql = "create table t (id int);\nDO $$ begin execute 'analyze'; end $$;\nalter table users drop column email;\n";
    assert_eq!(rules_of(sql), vec!["parse-error", "ban-drop-column"]);
}

#[test]
fn a_do_block_is_a_parse_error_only_when_it_may_hide_a_finding() {
    let inert = "DO $do$\nBEGIN\n    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN\n        CREATE TYPE mood AS ENUM ('sad', 'happy');\n    END IF;\nEND\n$do$;\n";
    assert!(rules_of(inert).is_empty(), "{:?}", rules_of(inert));
    for hiding in [
        "DO $$ BEGIN ALTER TABLE users ADD COLUMN a int; END $$;",
        "DO $$ BEGIN EXECUTE format('DROP TABLE %I', 'x'); END $$;",
        "DO $$ BEGIN CREATE TABLE notes (id int PRIMARY KEY); END $$;",
        "DO LANGUAGE plpgsql $$ BEGIN UPDATE users SET a = 1, a = 2; END $$;",
    ] {
        assert_eq!(rules_of(hiding), vec!["parse-error"], "{hiding}");
    }
}

#[test]
fn unterminated_string_reports_the_rest_and_checks_what_came_before() {
    let sql = "alter table users drop column a;\nselect 'oops;\nalter table users drop column b;\n";
    assert_eq!(rules_of(sql), vec!["ban-drop-column", "parse-error"]);
    let text = lint_text(&[("0001_x.sql", sql)]);
    assert!(
        text.contains("0001_x.sql:2:1: error[parse-error]"),
        "{text}"
    );
}

#[test]
fn unterminated_dollar_quote_reported_at_its_statement() {
    // The tokenizer reports this one at the end of the file, not where the quote began.
    let sql =
        "alter table users drop column a;\nselect $q$ oops;\nalter table users drop column b;\n";
    let text = lint_text(&[("0001_x.sql", sql)]);
    assert!(
        text.contains("0001_x.sql:1:31: warning[ban-drop-column]"),
        "{text}"
    );
    assert!(
        text.contains("0001_x.sql:2:1: error[parse-error]"),
        "{text}"
    );
    assert!(!text.contains(":3:"), "{text}");
}

#[test]
fn ignore_comment_silences_only_the_named_rule_on_the_next_statement() {
    let sql = "-- realmguard:ignore ban-drop-column\nalter table users drop column a;\nalter table users drop column b;\n";
    let text = lint_text(&[("0001_x.sql", sql)]);
    assert!(!text.contains(":2:"), "{text}");
    assert!(text.contains("0001_x.sql:3:"), "{text}");
}

#[test]
fn squawk_ignore_silences_the_named_rules_on_the_next_statement() {
    let sql = "-- squawk-ignore ban-drop-column, renaming-column\nalter table users drop column a;\nalter table users drop column b;\n/* squawk-ignore ban-drop-column */\nalter table users drop column c;\n";
    let text = lint_text(&[("0001_x.sql", sql)]);
    assert!(!text.contains(":2:"), "{text}");
    assert!(text.contains("0001_x.sql:3:"), "{text}");
    assert!(!text.contains(":5:"), "{text}");
    // Another rule's name silences nothing; squawk's rule names realmguard lacks are no
    // typo (no note), and its aliases count.
    assert_eq!(
        rules_of("-- squawk-ignore ban-drop-view,renaming-table\nalter table users drop column a;"),
        vec!["ban-drop-column"]
    );
    let r = lint_sources(
        vec![Source::new(
            "0001_x.sql".into(),
            "-- squawk-ignore ban-drop-view\nselect 1;".into(),
        )],
        &Config::default(),
    );
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert!(rules_of_all(
        "-- squawk-ignore prefer-timestamp-tz\nalter table users add column at timestamp;"
    )
    .is_empty());
}

#[test]
fn bare_squawk_ignore_silences_every_rule_on_the_next_statement_only() {
    let sql = "-- squawk-ignore\nalter table users drop column a, alter column b type bigint;\nalter table users drop column c;\n";
    assert_eq!(rules_of(sql), vec!["ban-drop-column"]);
    // Inside a statement, above the offending line.
    let sql = "CREATE TABLE users (\n    id bigint,\n    realm_id text NOT NULL,\n    -- squawk-ignore unique-without-realm\n    handle text UNIQUE,\n    email text UNIQUE,\n    PRIMARY KEY (id, realm_id)\n);";
    let text = lint_text(&[("0001_x.sql", sql)]);
    assert!(!text.contains("0001_x.sql:5:"), "{text}");
    assert!(
        text.contains("0001_x.sql:6:5: error[unique-without-realm]"),
        "{text}"
    );
}

#[test]
fn squawk_ignore_file_silences_its_rules_anywhere_in_the_file() {
    let sql = "alter table users drop column a;\nalter table users rename column b to c;\n-- squawk-ignore-file ban-drop-column\nalter table users drop column d;\n";
    assert_eq!(rules_of(sql), vec!["renaming-column"]);
    // Bare: every rule of the file, parse errors included; other files are still checked.
    let files = [
        ("0001_a.sql", "-- squawk-ignore-file\nalter table users drop column a;\nDO $$ begin execute 'x'; end $$;\nalter table users rename column b to c;"),
        ("0002_b.sql", "alter table users drop column a;"),
    ];
    assert_eq!(
        super::rules::test_support::rules(&files),
        vec!["ban-drop-column"]
    );
    // squawk-ignore-filex is not the comment.
    assert_eq!(
        rules_of("-- squawk-ignore-filex\nalter table users drop column a;"),
        vec!["ban-drop-column"]
    );
}

#[test]
fn create_table_if_not_exists_on_an_earlier_table_does_not_make_it_new() {
    let files = [
        ("0001_a.sql", "CREATE TABLE notes (id int PRIMARY KEY, body text);"),
        (
            "0002_b.sql",
            "CREATE TABLE IF NOT EXISTS notes (id int PRIMARY KEY);\nCREATE INDEX notes_body_idx ON notes (body);",
        ),
    ];
    assert_eq!(
        super::rules::test_support::rules(&files),
        vec!["require-concurrent-index-creation"]
    );
}

#[test]
fn the_model_spans_batches() {
    // More files than one parse batch: file 300 meets the table of file 1, and a realm
    // finding of file 1 is still placed there at the end.
    let mut files: Vec<(String, String)> = vec![(
        "0001_groups.sql".into(),
        "CREATE TABLE groups (id bigint, realm_id text NOT NULL, name text UNIQUE, PRIMARY KEY (id, realm_id));".into(),
    )];
    for i in 2..300 {
        files.push((format!("{i:04}_noop.sql"), "SELECT 1;".into()));
    }
    files.push((
        "0300_posts.sql".into(),
        "CREATE TABLE posts (id bigint, realm_id text NOT NULL, g bigint REFERENCES groups (id) ON DELETE CASCADE, PRIMARY KEY (id, realm_id));".into(),
    ));
    let sources = files.into_iter().map(|(n, t)| Source::new(n, t)).collect();
    let r = lint_sources(sources, &Config::default());
    let found: Vec<(&str, &str)> = r
        .findings
        .iter()
        .map(|f| (f.file.as_str(), f.rule.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("0001_groups.sql", "unique-without-realm"),
            ("0300_posts.sql", "fk-missing-realm")
        ]
    );
    assert_eq!((r.files, r.statements), (300, 300));
}

#[test]
fn bom_and_crlf_files_are_read_like_any_other() {
    let d = std::env::temp_dir().join(format!("rg-lint-bom-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("0001_x.sql");
    std::fs::write(
        &f,
        "\u{feff}CREATE TABLE t (id int);\r\nALTER TABLE users DROP COLUMN a;\r\n",
    )
    .unwrap();
    let r = lint_paths(&[f], &super::rules::test_support::fixture_config()).unwrap();
    std::fs::remove_dir_all(&d).unwrap();
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    let x = &r.findings[0];
    assert_eq!(
        (x.rule.as_str(), x.line, x.column),
        ("ban-drop-column", 2, 31)
    );
    assert_eq!(x.source_line, "ALTER TABLE users DROP COLUMN a;");
}

#[test]
fn ignore_comment_above_a_line_inside_the_statement() {
    let sql = "CREATE TABLE users (\n    id bigint,\n    realm_id text NOT NULL,\n    -- realmguard:ignore unique-without-realm\n    handle text UNIQUE,\n    email text UNIQUE,\n    PRIMARY KEY (id, realm_id)\n);";
    let text = lint_text(&[("0001_x.sql", sql)]);
    assert!(!text.contains("0001_x.sql:5:"), "{text}");
    assert!(
        text.contains("0001_x.sql:6:5: error[unique-without-realm]"),
        "{text}"
    );
}

#[test]
fn drop_index_concurrently_is_understood() {
    assert_eq!(
        rules_of("-- realmguard:no-transaction\nDROP INDEX CONCURRENTLY users_email_idx;"),
        Vec::<String>::new()
    );
    assert_eq!(
        rules_of("DROP INDEX CONCURRENTLY users_email_idx;"),
        vec!["ban-concurrent-index-creation-in-transaction"]
    );
}

#[test]
fn parse_error_position_is_the_file_position() {
    let sql = "select 1;\n\ncreate table t (\n  id int,,\n);";
    let text = lint_text(&[("0001_x.sql", sql)]);
    assert!(text.contains("at line 4, column"), "{text}");
}

#[test]
fn config_level_changes_severity_and_off_drops() {
    let cfg =
        Config::parse("[rules]\nban-drop-column = \"error\"\nrenaming-column = \"off\"\n").unwrap();
    let sources = vec![Source::new(
        "0001_x.sql".into(),
        "alter table users drop column a;\nalter table users rename column b to c;".into(),
    )];
    let r = lint_sources(sources, &cfg);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].severity, Severity::Error);
}
