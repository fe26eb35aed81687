//! `adding-primary-key-constraint`: `ADD PRIMARY KEY` on an existing table builds its unique
//! index under an ACCESS EXCLUSIVE lock (and scans for NULLs): reads and writes wait for the
//! whole build. `CREATE UNIQUE INDEX CONCURRENTLY` then `ADD … PRIMARY KEY USING INDEX` does not.

use super::{display_table, Ctx, Violation};
use crate::lint::model::object_key;
use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement, TableConstraint};

pub const ID: &str = crate::rules::Rule::AddingPrimaryKeyConstraint.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    let table = display_table(&object_key(&at.name));
    for op in &at.operations {
        let span = match op {
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::PrimaryKey(pk),
                ..
            } => pk.name.as_ref().map(|n| n.span).or_else(|| {
                pk.columns
                    .first()
                    .map(|c| sqlparser::ast::Spanned::span(&c.column.expr))
            }),
            // A serial one is adding-serial-primary-key-field's.
            AlterTableOperation::AddColumn { column_def, .. }
                if !super::is_serial(&column_def.data_type)
                    && column_def
                        .options
                        .iter()
                        .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_))) =>
            {
                Some(column_def.name.span)
            }
            _ => continue,
        };
        out.push(Violation {
            rule: ID,
            message: format!(
                "adding a primary key to existing table \"{table}\" builds its index under an ACCESS EXCLUSIVE lock"
            ),
            help: "Build the index first with `CREATE UNIQUE INDEX CONCURRENTLY` (in a no-transaction migration), then `ADD CONSTRAINT … PRIMARY KEY USING INDEX …`.".into(),
            span,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of("CREATE TABLE t (id int);\nALTER TABLE t ADD PRIMARY KEY (id);").is_empty(),
            "{:?}",
            rules_of("CREATE TABLE t (id int);\nALTER TABLE t ADD PRIMARY KEY (id);")
        );
        assert!(
            rules_of(
                "ALTER TABLE items ADD CONSTRAINT items_pkey PRIMARY KEY USING INDEX items_id_idx;"
            )
            .is_empty(),
            "{:?}",
            rules_of(
                "ALTER TABLE items ADD CONSTRAINT items_pkey PRIMARY KEY USING INDEX items_id_idx;"
            )
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_adding_primary_key_constraint.sql",
            r#"ALTER TABLE items ADD PRIMARY KEY (id);"#
        )]));
    }
}
