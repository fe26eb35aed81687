//! `ban-drop-column` (warning): a dropped column breaks running clients that still select or
//! insert it (an ORM's `SELECT *` mapping included).

use super::{display_table, Ctx, Violation};
use crate::lint::model::object_key;
use sqlparser::ast::{AlterTableOperation, Statement};

pub const ID: &str = crate::rules::Rule::BanDropColumn.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    for op in &at.operations {
        let AlterTableOperation::DropColumn { column_names, .. } = op else {
            continue;
        };
        for c in column_names {
            out.push(Violation {
                rule: ID,
                message: format!(
                    "dropping column \"{}\" of existing table \"{}\" breaks running clients that still read or write it",
                    c.value,
                    display_table(&object_key(&at.name))
                ),
                help: "Deploy code that no longer uses the column first, then drop it in a later migration (and say so with `-- realmguard:ignore ban-drop-column`).".into(),
                span: Some(c.span),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_acknowledged() {
        assert!(rules_of(
            "-- realmguard:ignore ban-drop-column\nALTER TABLE users DROP COLUMN legacy;"
        )
        .is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of(
            "CREATE TABLE notes (id int, tmp text);\nALTER TABLE notes DROP COLUMN tmp;"
        )
        .is_empty());
    }

    #[test]
    fn err_drop() {
        insta::assert_snapshot!(lint_text(&[(
            "0011_drop.sql",
            "ALTER TABLE users DROP COLUMN IF EXISTS legacy_name;"
        )]));
    }
}
