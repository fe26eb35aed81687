//! `adding-foreign-key-constraint`: a foreign key added to an existing table takes SHARE ROW
//! EXCLUSIVE on it and on the referenced table, and (without `NOT VALID`) holds both while every
//! row is checked: writes to both tables wait. A column added with `REFERENCES` does the same.

use super::{display_table, Ctx, Violation};
use crate::lint::model::object_key;
use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement, TableConstraint};

pub const ID: &str = crate::rules::Rule::AddingForeignKeyConstraint.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    let table = display_table(&object_key(&at.name));
    for op in &at.operations {
        let (span, target) = match op {
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::ForeignKey(fk),
                not_valid: false,
            } => (
                fk.name.as_ref().map(|n| n.span),
                fk.foreign_table.to_string(),
            ),
            AlterTableOperation::AddColumn { column_def, .. } => {
                let Some(fk) = column_def.options.iter().find_map(|o| match &o.option {
                    ColumnOption::ForeignKey(fk) => Some(fk),
                    _ => None,
                }) else {
                    continue;
                };
                (Some(column_def.name.span), fk.foreign_table.to_string())
            }
            _ => continue,
        };
        out.push(Violation {
            rule: ID,
            message: format!(
                "adding a foreign key to existing table \"{table}\" blocks writes to it and to \"{target}\" while every row is checked"
            ),
            help: "Add the column first, then `ADD CONSTRAINT … FOREIGN KEY … NOT VALID`, and `VALIDATE CONSTRAINT` in a later migration.".into(),
            span,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(rules_of("CREATE TABLE t (id int, u int);\nALTER TABLE t ADD CONSTRAINT t_u_fk FOREIGN KEY (u) REFERENCES users (id);").is_empty(), "{:?}", rules_of("CREATE TABLE t (id int, u int);\nALTER TABLE t ADD CONSTRAINT t_u_fk FOREIGN KEY (u) REFERENCES users (id);"));
        assert!(rules_of("ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;").is_empty(), "{:?}", rules_of("ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;"));
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_adding_foreign_key_constraint.sql",
            r#"ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users (id);"#
        )]));
    }
}
