//! `prefer-bigint-over-int` (warning): a 32-bit key runs out at 2^31 rows, and widening it
//! later rewrites the table (and every referencing one) under an ACCESS EXCLUSIVE lock.

use super::{column_type_rule, Ctx, Violation};
use sqlparser::ast::{DataType, Statement};

pub const ID: &str = crate::rules::Rule::PreferBigintOverInt.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    column_type_rule(
        stmt,
        out,
        ID,
        bad,
        "32-bit integers run out at 2147483647, and widening later rewrites the table",
        "Use bigint (bigserial, or bigint GENERATED … AS IDENTITY).",
    );
}

fn bad(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_)
    ) || super::custom_type(t).is_some_and(|n| n == "serial" || n == "serial4")
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of_all("CREATE TABLE t (id bigint, n numeric);").is_empty(),
            "{:?}",
            rules_of_all("CREATE TABLE t (id bigint, n numeric);")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text_all(&[(
            "0007_prefer_bigint_over_int.sql",
            r#"CREATE TABLE t (id int PRIMARY KEY, n integer);"#
        )]));
    }
}
