//! `renaming-column` (warning): a renamed column breaks every running client that still uses the
//! old name, between the migration and the deploy of the new code.

use super::{display_table, Ctx, Violation};
use crate::lint::model::object_key;
use sqlparser::ast::{AlterTableOperation, Statement};

pub const ID: &str = crate::rules::Rule::RenamingColumn.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    for op in &at.operations {
        let AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } = op
        else {
            continue;
        };
        out.push(Violation {
            rule: ID,
            message: format!(
                "renaming column \"{}\" of existing table \"{}\" to \"{}\" breaks running clients that still use the old name",
                old_column_name.value,
                display_table(&object_key(&at.name)),
                new_column_name.value
            ),
            help: "Add the new column and write both, move readers over, and drop the old one once no client uses it.".into(),
            span: Some(old_column_name.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_other_alterations() {
        assert!(rules_of("ALTER TABLE users RENAME CONSTRAINT a TO b;").is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of(
            "CREATE TABLE notes (id int, txt text);\nALTER TABLE notes RENAME COLUMN txt TO body;"
        )
        .is_empty());
    }

    #[test]
    fn err_rename() {
        insta::assert_snapshot!(lint_text(&[(
            "0009_rename.sql",
            "ALTER TABLE users RENAME COLUMN email TO mail;"
        )]));
    }
}
