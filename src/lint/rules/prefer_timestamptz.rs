//! `prefer-timestamptz` (warning): `timestamp` without time zone stores wall-clock time with
//! no zone, so the same instant reads differently per session time zone.

use super::{column_type_rule, Ctx, Violation};
use sqlparser::ast::{DataType, Statement, TimezoneInfo};

pub const ID: &str = crate::rules::Rule::PreferTimestamptz.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    column_type_rule(
        stmt,
        out,
        ID,
        bad,
        "timestamp without time zone records no zone, so instants are ambiguous",
        "Use timestamptz.",
    );
}

fn bad(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone)
    )
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of_all("CREATE TABLE t (at timestamptz, b timestamp with time zone);").is_empty(),
            "{:?}",
            rules_of_all("CREATE TABLE t (at timestamptz, b timestamp with time zone);")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text_all(&[(
            "0007_prefer_timestamptz.sql",
            r#"CREATE TABLE t (created_at timestamp NOT NULL);"#
        )]));
    }
}
