//! `adding-required-field`: a `NOT NULL` column without a default cannot be added to a table that
//! has rows; the migration passes on an empty development database and fails in production.

use super::{adding_field_with_default::fills_itself, display_table, Ctx, Violation};
use crate::lint::model::object_key;
use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement};

pub const ID: &str = crate::rules::Rule::AddingRequiredField.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    for op in &at.operations {
        let AlterTableOperation::AddColumn { column_def: c, .. } = op else {
            continue;
        };
        let required = c.options.iter().any(|o| {
            matches!(
                o.option,
                ColumnOption::NotNull | ColumnOption::PrimaryKey(_)
            )
        });
        let has_default = c
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::Default(_)))
            || fills_itself(c);
        if !required || has_default {
            continue;
        }
        let table = display_table(&object_key(&at.name));
        out.push(Violation {
            rule: ID,
            message: format!(
                "adding NOT NULL column \"{}\" without a default to existing table \"{table}\" fails as soon as the table has a row",
                c.name.value
            ),
            help: "Give it a constant DEFAULT, or add it nullable, backfill it, and make it NOT NULL through a validated CHECK.".into(),
            span: Some(c.name.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_with_a_constant_default() {
        assert!(
            rules_of("ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;")
                .is_empty()
        );
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of(
            "CREATE TABLE notes (id int);\nALTER TABLE notes ADD COLUMN body text NOT NULL;"
        )
        .is_empty());
    }

    #[test]
    fn err_not_null_without_default() {
        insta::assert_snapshot!(lint_text(&[(
            "0005_users.sql",
            "ALTER TABLE users ADD COLUMN tenant text NOT NULL;"
        )]));
    }
}
