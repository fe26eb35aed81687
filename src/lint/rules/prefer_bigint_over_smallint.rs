//! `prefer-bigint-over-smallint` (warning): a 16-bit column runs out at 32767, and widening it
//! later rewrites the table under an ACCESS EXCLUSIVE lock.

use super::{column_type_rule, Ctx, Violation};
use sqlparser::ast::{DataType, Statement};

pub const ID: &str = crate::rules::Rule::PreferBigintOverSmallint.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    column_type_rule(
        stmt,
        out,
        ID,
        bad,
        "16-bit integers run out at 32767, and widening later rewrites the table",
        "Use bigint.",
    );
}

fn bad(t: &DataType) -> bool {
    matches!(t, DataType::SmallInt(_) | DataType::Int2(_))
        || super::custom_type(t).is_some_and(|n| n == "smallserial" || n == "serial2")
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of_all("CREATE TABLE t (id bigint);").is_empty(),
            "{:?}",
            rules_of_all("CREATE TABLE t (id bigint);")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text_all(&[(
            "0007_prefer_bigint_over_smallint.sql",
            r#"CREATE TABLE t (rank smallint);"#
        )]));
    }
}
