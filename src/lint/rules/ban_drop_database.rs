//! `ban-drop-database`: a migration that drops a database destroys everything in it; it has no
//! place in a migration set.

use super::{Ctx, Violation};
use crate::lint::model::last_ident;
use sqlparser::ast::{ObjectType, Statement};

pub const ID: &str = crate::rules::Rule::BanDropDatabase.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Statement::Drop {
        object_type: ObjectType::Database,
        names,
        ..
    } = stmt
    else {
        return;
    };
    for n in names {
        out.push(Violation {
            rule: ID,
            message: format!("dropping database \"{n}\" destroys everything in it"),
            help: "Drop databases by hand, never from a migration.".into(),
            span: last_ident(n).map(|i| i.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of("DROP SCHEMA IF EXISTS scratch;").is_empty(),
            "{:?}",
            rules_of("DROP SCHEMA IF EXISTS scratch;")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_ban_drop_database.sql",
            r#"DROP DATABASE analytics;"#
        )]));
    }
}
