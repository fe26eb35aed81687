//! `prefer-bigint-over-smallint` (warning): a 16-bit column runs out at 32767, and widening it
//! later rewrites the table under an ACCESS EXCLUSIVE lock.

use super::{defined_columns, Ctx, Violation};
use sqlparser::ast::{DataType, Statement};

pub const ID: &str = crate::rules::Rule::PreferBigintOverSmallint.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    for c in defined_columns(stmt) {
        if !bad(&c.data_type) {
            continue;
        }
        out.push(Violation {
            rule: ID,
            message: format!("column \"{}\" is {}: 16-bit integers run out at 32767, and widening later rewrites the table", c.name.value, c.data_type),
            help: "Use bigint.".into(),
            span: Some(c.name.span),
        });
    }
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
