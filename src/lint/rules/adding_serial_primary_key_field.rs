//! `adding-serial-primary-key-field`: adding a `serial` (or identity) primary key column to an
//! existing table rewrites it to fill the column and builds the key's index, all under an ACCESS
//! EXCLUSIVE lock.

use super::{display_table, Ctx, Violation};
use crate::lint::model::object_key;
use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement};

pub const ID: &str = crate::rules::Rule::AddingSerialPrimaryKeyField.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    for op in &at.operations {
        let AlterTableOperation::AddColumn { column_def, .. } = op else {
            continue;
        };
        let pk = column_def
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)));
        let generated = super::is_serial(&column_def.data_type)
            || column_def.options.iter().any(|o| {
                matches!(
                    o.option,
                    ColumnOption::Identity(_) | ColumnOption::Generated { .. }
                )
            });
        if !(pk && generated) {
            continue;
        }
        out.push(Violation {
            rule: ID,
            message: format!(
                "adding generated primary key column \"{}\" rewrites existing table \"{}\" and builds its index under an ACCESS EXCLUSIVE lock",
                column_def.name.value,
                display_table(&object_key(&at.name))
            ),
            help: "Add a plain nullable column, fill it in batches, build a unique index CONCURRENTLY, then `ADD CONSTRAINT … PRIMARY KEY USING INDEX …`.".into(),
            span: Some(column_def.name.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of("CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN id bigserial PRIMARY KEY;")
                .is_empty(),
            "{:?}",
            rules_of("CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN id bigserial PRIMARY KEY;")
        );
        assert!(
            rules_of("ALTER TABLE items ADD COLUMN n bigint;").is_empty(),
            "{:?}",
            rules_of("ALTER TABLE items ADD COLUMN n bigint;")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_adding_serial_primary_key_field.sql",
            r#"ALTER TABLE items ADD COLUMN id bigserial PRIMARY KEY;"#
        )]));
    }
}
