//! `changing-column-type`: `ALTER COLUMN … TYPE` usually rewrites the table and rebuilds its
//! indexes under an ACCESS EXCLUSIVE lock, and breaks clients that expect the old type.

use super::{display_table, Ctx, Violation};
use crate::lint::model::object_key;
use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, Statement};

pub const ID: &str = crate::rules::Rule::ChangingColumnType.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    for op in &at.operations {
        let AlterTableOperation::AlterColumn {
            column_name,
            op: AlterColumnOperation::SetDataType { data_type, .. },
        } = op
        else {
            continue;
        };
        let table = display_table(&object_key(&at.name));
        out.push(Violation {
            rule: ID,
            message: format!(
                "changing column \"{}\" of existing table \"{table}\" to {data_type} can rewrite the table and its indexes under an ACCESS EXCLUSIVE lock",
                column_name.value
            ),
            help: "Add a column of the new type, backfill it in batches and switch readers over; if the change is binary-coercible (varchar(n) to text, a longer varchar), say so with `-- realmguard:ignore changing-column-type`.".into(),
            span: Some(column_name.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_ignored_with_a_reason() {
        assert!(rules_of("-- varchar to text is binary-coercible: no rewrite\n-- realmguard:ignore changing-column-type\nALTER TABLE users ALTER COLUMN email TYPE text;").is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of(
            "CREATE TABLE notes (id int);\nALTER TABLE notes ALTER COLUMN id TYPE bigint;"
        )
        .is_empty());
    }

    #[test]
    fn err_type_change() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_ids.sql",
            "ALTER TABLE users\n    ALTER COLUMN id TYPE bigint;"
        )]));
    }
}
