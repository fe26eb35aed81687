//! `prefer-text-field` (warning): raising a `varchar(n)` limit later can need an ACCESS
//! EXCLUSIVE lock (and a rewrite when it shrinks); `text` with a CHECK is changed without one.

use super::{column_type_rule, Ctx, Violation};
use sqlparser::ast::{DataType, Statement};

pub const ID: &str = crate::rules::Rule::PreferTextField.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    column_type_rule(
        stmt,
        out,
        ID,
        bad,
        "changing a varchar(n) limit later takes an ACCESS EXCLUSIVE lock",
        "Use text, with `CHECK (length(col) <= n)` when a limit matters (added NOT VALID, it changes without a long lock).",
    );
}

fn bad(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Varchar(Some(_))
            | DataType::CharacterVarying(Some(_))
            | DataType::CharVarying(Some(_))
    )
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of_all("CREATE TABLE t (a text, b varchar);").is_empty(),
            "{:?}",
            rules_of_all("CREATE TABLE t (a text, b varchar);")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text_all(&[(
            "0007_prefer_text_field.sql",
            r#"CREATE TABLE t (name varchar(100));"#
        )]));
    }
}
