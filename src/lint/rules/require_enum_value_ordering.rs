//! `require-enum-value-ordering`: `ALTER TYPE … ADD VALUE` without `BEFORE` or `AFTER` puts the
//! value last, and an enum sorts by declaration order, not by name: every `ORDER BY` and every
//! `<` on the column then sorts the new value after all others, which is rarely what was meant
//! (<https://www.postgresql.org/docs/current/datatype-enum.html#DATATYPE-ENUM-ORDERING>).

use super::{Ctx, Violation};
use sqlparser::ast::{AlterTypeOperation, Statement};

pub const ID: &str = crate::rules::Rule::RequireEnumValueOrdering.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Statement::AlterType(at) = stmt else {
        return;
    };
    let AlterTypeOperation::AddValue(add) = &at.operation else {
        return;
    };
    if add.position.is_some() {
        return;
    }
    out.push(Violation {
        rule: ID,
        message: format!(
            "ADD VALUE '{}' without BEFORE or AFTER puts the value last in {}'s sort order",
            add.value.value, at.name
        ),
        help: "Say where the value sorts: `ADD VALUE 'new' BEFORE 'existing'` (or AFTER); when last is right, acknowledge it with `-- realmguard:ignore require-enum-value-ordering`.".into(),
        span: Some(add.value.span),
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        for sql in [
            "ALTER TYPE mood ADD VALUE 'meh' BEFORE 'happy';",
            "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh' AFTER 'sad';",
            "ALTER TYPE mood RENAME VALUE 'meh' TO 'okay';",
        ] {
            assert!(rules_of(sql).is_empty(), "{sql}: {:?}", rules_of(sql));
        }
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_mood.sql",
            "ALTER TYPE mood ADD VALUE 'meh';\nALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'ecstatic';"
        )]));
    }
}
