//! `renaming-table` (warning): a renamed table breaks every running client that still uses the
//! old name.

use super::{display_table, Ctx, Violation};
use crate::lint::model::{last_ident, object_key};
use sqlparser::ast::{AlterTableOperation, RenameTableNameKind, Statement};

pub const ID: &str = crate::rules::Rule::RenamingTable.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    for op in &at.operations {
        let AlterTableOperation::RenameTable { table_name } = op else {
            continue;
        };
        let new = match table_name {
            RenameTableNameKind::As(n) | RenameTableNameKind::To(n) => n,
        };
        out.push(Violation {
            rule: ID,
            message: format!(
                "renaming existing table \"{}\" to \"{new}\" breaks running clients that still use the old name",
                display_table(&object_key(&at.name)),
            ),
            help: "Create the new name as a view (or the old one as a view after the rename) until every client has moved.".into(),
            span: last_ident(&at.name).map(|i| i.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_renaming_a_column_is_another_rule() {
        assert_eq!(
            rules_of("ALTER TABLE users RENAME COLUMN a TO b;"),
            vec!["renaming-column"]
        );
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of("CREATE TABLE note (id int);\nALTER TABLE note RENAME TO notes;\nALTER TABLE notes ADD COLUMN body text NOT NULL;").is_empty());
    }

    #[test]
    fn err_rename() {
        insta::assert_snapshot!(lint_text(&[(
            "0010_rename.sql",
            "ALTER TABLE public.users RENAME TO accounts;"
        )]));
    }
}
