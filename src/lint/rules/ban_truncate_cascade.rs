//! `ban-truncate-cascade`: `TRUNCATE … CASCADE` also empties every table with a foreign key to
//! the truncated ones, recursively: far more than the statement names.

use super::{Ctx, Violation};
use sqlparser::ast::{CascadeOption, Statement};

pub const ID: &str = crate::rules::Rule::BanTruncateCascade.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Statement::Truncate(t) = stmt else {
        return;
    };
    if t.cascade != Some(CascadeOption::Cascade) {
        return;
    }
    out.push(Violation {
        rule: ID,
        message: "TRUNCATE … CASCADE also empties every table that references these, recursively"
            .into(),
        help: "Name every table to truncate explicitly, without CASCADE.".into(),
        span: None,
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of("TRUNCATE scratch;").is_empty(),
            "{:?}",
            rules_of("TRUNCATE scratch;")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_ban_truncate_cascade.sql",
            r#"TRUNCATE realms CASCADE;"#
        )]));
    }
}
