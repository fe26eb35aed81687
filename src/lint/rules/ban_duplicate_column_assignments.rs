//! `ban-duplicate-column-assignments`: an UPDATE that assigns the same column twice fails at
//! run time ("multiple assignments to same column"), so the migration fails there.

use super::{Ctx, Violation};
use sqlparser::ast::{AssignmentTarget, Statement};
use std::collections::HashSet;

pub const ID: &str = crate::rules::Rule::BanDuplicateColumnAssignments.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Statement::Update(u) = stmt else {
        return;
    };
    let mut seen = HashSet::new();
    for a in &u.assignments {
        let names = match &a.target {
            AssignmentTarget::ColumnName(n) => std::slice::from_ref(n),
            AssignmentTarget::Tuple(v) => v.as_slice(),
        };
        for n in names {
            let Some(last) = crate::lint::model::last_ident(n) else {
                continue;
            };
            if !seen.insert(crate::lint::model::ident(last)) {
                out.push(Violation {
                    rule: ID,
                    message: format!(
                        "column \"{}\" is assigned twice in this UPDATE, which PostgreSQL refuses",
                        last.value
                    ),
                    help: "Assign each column once.".into(),
                    span: Some(last.span),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of("UPDATE users SET a = 1, b = 2;").is_empty(),
            "{:?}",
            rules_of("UPDATE users SET a = 1, b = 2;")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_ban_duplicate_column_assignments.sql",
            r#"UPDATE users SET a = 1, b = 2, a = 3;"#
        )]));
    }
}
