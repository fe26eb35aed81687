//! The page of every lint rule (docs/rules/<id>.md), embedded so that `realmguard explain RULE`
//! works without the repository. A test fails when a lint rule has no entry here; a missing file
//! fails the build.

/// (rule id, page), sorted by id.
pub const PAGES: &[(&str, &str)] = &[
    (
        "adding-field-with-default",
        include_str!("../../docs/rules/adding-field-with-default.md"),
    ),
    (
        "adding-foreign-key-constraint",
        include_str!("../../docs/rules/adding-foreign-key-constraint.md"),
    ),
    (
        "adding-not-nullable-field",
        include_str!("../../docs/rules/adding-not-nullable-field.md"),
    ),
    (
        "adding-primary-key-constraint",
        include_str!("../../docs/rules/adding-primary-key-constraint.md"),
    ),
    (
        "adding-required-field",
        include_str!("../../docs/rules/adding-required-field.md"),
    ),
    (
        "adding-serial-primary-key-field",
        include_str!("../../docs/rules/adding-serial-primary-key-field.md"),
    ),
    (
        "ban-alter-domain-with-add-constraint",
        include_str!("../../docs/rules/ban-alter-domain-with-add-constraint.md"),
    ),
    (
        "ban-char-field",
        include_str!("../../docs/rules/ban-char-field.md"),
    ),
    (
        "ban-concurrent-index-creation-in-transaction",
        include_str!("../../docs/rules/ban-concurrent-index-creation-in-transaction.md"),
    ),
    (
        "ban-create-domain-with-constraint",
        include_str!("../../docs/rules/ban-create-domain-with-constraint.md"),
    ),
    (
        "ban-drop-column",
        include_str!("../../docs/rules/ban-drop-column.md"),
    ),
    (
        "ban-drop-database",
        include_str!("../../docs/rules/ban-drop-database.md"),
    ),
    (
        "ban-drop-not-null",
        include_str!("../../docs/rules/ban-drop-not-null.md"),
    ),
    (
        "ban-drop-table",
        include_str!("../../docs/rules/ban-drop-table.md"),
    ),
    (
        "ban-duplicate-column-assignments",
        include_str!("../../docs/rules/ban-duplicate-column-assignments.md"),
    ),
    (
        "ban-truncate-cascade",
        include_str!("../../docs/rules/ban-truncate-cascade.md"),
    ),
    (
        "ban-uncommitted-transaction",
        include_str!("../../docs/rules/ban-uncommitted-transaction.md"),
    ),
    (
        "changing-column-type",
        include_str!("../../docs/rules/changing-column-type.md"),
    ),
    (
        "composite-primary-key",
        include_str!("../../docs/rules/composite-primary-key.md"),
    ),
    (
        "constraint-missing-not-valid",
        include_str!("../../docs/rules/constraint-missing-not-valid.md"),
    ),
    (
        "disallowed-unique-constraint",
        include_str!("../../docs/rules/disallowed-unique-constraint.md"),
    ),
    (
        "fk-missing-realm",
        include_str!("../../docs/rules/fk-missing-realm.md"),
    ),
    (
        "fk-not-cascade",
        include_str!("../../docs/rules/fk-not-cascade.md"),
    ),
    (
        "identifier-too-long",
        include_str!("../../docs/rules/identifier-too-long.md"),
    ),
    (
        "parse-error",
        include_str!("../../docs/rules/parse-error.md"),
    ),
    (
        "prefer-bigint-over-int",
        include_str!("../../docs/rules/prefer-bigint-over-int.md"),
    ),
    (
        "prefer-bigint-over-smallint",
        include_str!("../../docs/rules/prefer-bigint-over-smallint.md"),
    ),
    (
        "prefer-identity",
        include_str!("../../docs/rules/prefer-identity.md"),
    ),
    (
        "prefer-repack",
        include_str!("../../docs/rules/prefer-repack.md"),
    ),
    (
        "prefer-robust-stmts",
        include_str!("../../docs/rules/prefer-robust-stmts.md"),
    ),
    (
        "prefer-text-field",
        include_str!("../../docs/rules/prefer-text-field.md"),
    ),
    (
        "prefer-timestamptz",
        include_str!("../../docs/rules/prefer-timestamptz.md"),
    ),
    (
        "realm-column-nullable",
        include_str!("../../docs/rules/realm-column-nullable.md"),
    ),
    (
        "renaming-column",
        include_str!("../../docs/rules/renaming-column.md"),
    ),
    (
        "renaming-table",
        include_str!("../../docs/rules/renaming-table.md"),
    ),
    (
        "require-concurrent-index-creation",
        include_str!("../../docs/rules/require-concurrent-index-creation.md"),
    ),
    (
        "require-concurrent-index-deletion",
        include_str!("../../docs/rules/require-concurrent-index-deletion.md"),
    ),
    (
        "require-concurrent-partition-detach",
        include_str!("../../docs/rules/require-concurrent-partition-detach.md"),
    ),
    (
        "require-concurrent-reindex",
        include_str!("../../docs/rules/require-concurrent-reindex.md"),
    ),
    (
        "require-enum-value-ordering",
        include_str!("../../docs/rules/require-enum-value-ordering.md"),
    ),
    (
        "require-table-schema",
        include_str!("../../docs/rules/require-table-schema.md"),
    ),
    (
        "require-timeout-settings",
        include_str!("../../docs/rules/require-timeout-settings.md"),
    ),
    (
        "transaction-nesting",
        include_str!("../../docs/rules/transaction-nesting.md"),
    ),
    (
        "unique-without-realm",
        include_str!("../../docs/rules/unique-without-realm.md"),
    ),
];

/// The page of a rule id.
pub fn page(id: &str) -> Option<&'static str> {
    PAGES
        .binary_search_by(|(i, _)| (*i).cmp(id))
        .ok()
        .map(|at| PAGES[at].1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::options::lint_rules;

    #[test]
    fn every_lint_rule_has_a_page_and_every_page_a_rule() {
        let missing: Vec<&str> = lint_rules()
            .map(|r| r.id())
            .filter(|id| page(id).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "lint rules without a page in docs/rules/: {missing:?}"
        );
        for (id, text) in PAGES {
            let rule = crate::rules::Rule::from_id(id);
            assert!(
                rule.is_some_and(|r| r.evaluator().lint()),
                "{id}.md names no lint rule"
            );
            assert!(text.starts_with(&format!("# {id}\n")), "{id}.md: title");
            for part in [
                "## What it catches",
                "## Why it hurts on a live database",
                "## The safe way",
                "## Example",
            ] {
                assert!(text.contains(part), "{id}.md lacks {part}");
            }
        }
        assert!(
            PAGES.windows(2).all(|w| w[0].0 < w[1].0),
            "PAGES not sorted"
        );
    }

    /// The first ```sql block after `marker`.
    fn block<'a>(page: &'a str, marker: &str) -> &'a str {
        let rest = &page[page.find(marker).expect(marker)..];
        let start = rest.find("```sql\n").expect("sql block") + "```sql\n".len();
        let len = rest[start..].find("```").expect("block end");
        &rest[start..start + len]
    }

    #[test]
    fn each_page_example_is_flagged_by_its_rule_and_its_fix_is_not() {
        use crate::lint::{lint_sources_with, LintOptions, Source};
        // Tables the examples alter, created by an earlier migration (so they "exist").
        let context =
            "CREATE TABLE groups (id bigint, realm_id text NOT NULL, PRIMARY KEY (id, realm_id));";
        let found = |rule: crate::rules::Rule, sql: &str| -> Vec<String> {
            let opts = LintOptions {
                include: vec![rule],
                ..LintOptions::default()
            };
            let cfg = opts.apply(&crate::config::Config::default());
            let sources = vec![
                Source::new("0001_context.sql".into(), context.into()),
                Source::new("0002_example.sql".into(), sql.into()),
            ];
            lint_sources_with(sources, &cfg, &opts)
                .findings
                .into_iter()
                .filter(|f| f.file == "0002_example.sql")
                .map(|f| f.rule)
                .collect()
        };
        let mut wrong = Vec::new();
        for (id, page) in PAGES {
            let rule = crate::rules::Rule::from_id(id).unwrap();
            let bad = block(page, "Flagged:");
            if !found(rule, bad).iter().any(|r| r == id) {
                wrong.push(format!("{id}: example not flagged"));
            }
            let good = block(page, "Instead:");
            if found(rule, good).iter().any(|r| r == id) {
                wrong.push(format!("{id}: the safe way is flagged"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
