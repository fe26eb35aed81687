//! `ban-char-field` (warning): `char(n)` pads with blanks, compares surprisingly and is no
//! faster than `text`.

use super::{column_type_rule, Ctx, Violation};
use sqlparser::ast::{DataType, Statement};

pub const ID: &str = crate::rules::Rule::BanCharField.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    column_type_rule(
        stmt,
        out,
        ID,
        bad,
        "char(n) pads values with blanks and is no faster than text",
        "Use text (with a CHECK on length() when a limit matters).",
    );
}

fn bad(t: &DataType) -> bool {
    matches!(t, DataType::Char(_) | DataType::Character(_))
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of_all("CREATE TABLE t (a text, b text);").is_empty(),
            "{:?}",
            rules_of_all("CREATE TABLE t (a text, b text);")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text_all(&[(
            "0007_ban_char_field.sql",
            r#"CREATE TABLE t (code char(2));"#
        )]));
    }
}
