//! `ban-drop-not-null` (warning): dropping NOT NULL breaks running clients that assume the
//! column always has a value (a non-optional field in a typed client).

use super::{display_table, Ctx, Violation};
use crate::lint::model::object_key;
use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, Statement};

pub const ID: &str = crate::rules::Rule::BanDropNotNull.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    for op in &at.operations {
        let AlterTableOperation::AlterColumn {
            column_name,
            op: AlterColumnOperation::DropNotNull,
        } = op
        else {
            continue;
        };
        out.push(Violation {
            rule: ID,
            message: format!(
                "dropping NOT NULL on column \"{}\" of existing table \"{}\" breaks clients that assume it always has a value",
                column_name.value,
                display_table(&object_key(&at.name))
            ),
            help: "Deploy code that handles NULL in this column first (and say so with `-- realmguard:ignore ban-drop-not-null`).".into(),
            span: Some(column_name.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of(
                "CREATE TABLE t (a int NOT NULL);\nALTER TABLE t ALTER COLUMN a DROP NOT NULL;"
            )
            .is_empty(),
            "{:?}",
            rules_of(
                "CREATE TABLE t (a int NOT NULL);\nALTER TABLE t ALTER COLUMN a DROP NOT NULL;"
            )
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_ban_drop_not_null.sql",
            r#"ALTER TABLE users ALTER COLUMN email DROP NOT NULL;"#
        )]));
    }
}
