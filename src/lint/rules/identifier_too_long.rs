//! `identifier-too-long`: PostgreSQL silently truncates identifiers to 63 bytes, so a long
//! table, column, index or constraint name is not the name later statements use (and two long
//! names can collide).

use super::{defined_columns, Ctx, Violation};
use sqlparser::ast::{Ident, Statement};

pub const ID: &str = crate::rules::Rule::IdentifierTooLong.id();

/// NAMEDATALEN - 1.
const MAX: usize = 63;

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let mut names: Vec<&Ident> = Vec::new();
    match stmt {
        Statement::CreateTable(ct) => names.extend(crate::lint::model::last_ident(&ct.name)),
        Statement::CreateIndex(ci) => {
            names.extend(ci.name.as_ref().and_then(crate::lint::model::last_ident))
        }
        _ => {}
    }
    names.extend(defined_columns(stmt).into_iter().map(|c| &c.name));
    for i in names.into_iter().filter(|i| i.value.len() > MAX) {
        out.push(Violation {
            rule: ID,
            message: format!(
                "identifier \"{}\" is {} bytes long; PostgreSQL truncates it to 63",
                i.value,
                i.value.len()
            ),
            help: "Shorten it to 63 bytes or fewer.".into(),
            span: Some(i.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of("CREATE TABLE t (a_reasonably_long_but_fine_column_name int);").is_empty(),
            "{:?}",
            rules_of("CREATE TABLE t (a_reasonably_long_but_fine_column_name int);")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_identifier_too_long.sql",
            r#"CREATE TABLE t (this_column_name_is_much_too_long_for_postgresql_which_truncates_it int);"#
        )]));
    }
}
