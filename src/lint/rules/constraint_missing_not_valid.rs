//! `constraint-missing-not-valid`: adding a foreign key or check to an existing table validates
//! every row while holding its lock (ACCESS EXCLUSIVE for a check, SHARE ROW EXCLUSIVE on both
//! tables for a foreign key). `NOT VALID` then `VALIDATE CONSTRAINT` in a later transaction only
//! needs SHARE UPDATE EXCLUSIVE for the scan
//! (<https://www.postgresql.org/docs/current/sql-altertable.html#SQL-ALTERTABLE-NOTES>).

use super::{display_table, Ctx, Violation};
use crate::lint::model::{ident, last_ident, object_key};
use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};

pub const ID: &str = crate::rules::Rule::ConstraintMissingNotValid.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Statement::AlterTable(at) = stmt else {
        return;
    };
    let key = object_key(&at.name);
    let table = display_table(&key);
    for op in &at.operations {
        match op {
            AlterTableOperation::AddConstraint {
                constraint,
                not_valid: false,
            } if ctx.existing(&at.name) => {
                let (what, name) = match constraint {
                    TableConstraint::ForeignKey(fk) => ("foreign key", fk.name.as_ref()),
                    TableConstraint::Check(c) => ("check constraint", c.name.as_ref()),
                    _ => continue,
                };
                let name_sql = name.map_or("<name>".to_string(), |n| n.to_string());
                out.push(Violation {
                    rule: ID,
                    message: format!(
                        "adding a {what} to existing table \"{table}\" checks every row while holding a lock that blocks writes"
                    ),
                    help: format!(
                        "Add it with NOT VALID, then run `ALTER TABLE {} VALIDATE CONSTRAINT {name_sql};` in a later migration: validation then allows reads and writes.",
                        at.name
                    ),
                    span: name.map(|n| n.span).or_else(|| last_ident(&at.name).map(|i| i.span)),
                });
            }
            AlterTableOperation::ValidateConstraint { name }
                if ctx.so_far.tx.is_some()
                    && ctx.so_far.not_valid.get(&(key.clone(), ident(name)))
                        == Some(&ctx.so_far.tx) =>
            {
                out.push(Violation {
                    rule: ID,
                    message: format!(
                        "constraint \"{}\" is validated in the same transaction that added it NOT VALID, so the scan still runs under the lock taken by ADD CONSTRAINT",
                        name.value
                    ),
                    help: if ctx.wrapped {
                        "Move the VALIDATE CONSTRAINT into a later migration."
                    } else {
                        "Move the VALIDATE CONSTRAINT after the COMMIT of the block that added it."
                    }
                    .into(),
                    span: Some(name.span),
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_not_valid_then_validate_later() {
        assert!(rules(&[
            ("0001_a.sql", "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;"),
            ("0002_b.sql", "ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;"),
        ])
        .is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of("CREATE TABLE notes (id int, n int);\nALTER TABLE notes ADD CONSTRAINT notes_n_check CHECK (n > 0);").is_empty());
    }

    #[test]
    fn err_foreign_key_and_check_without_not_valid() {
        insta::assert_snapshot!(lint_text(&[(
            "0003_fk.sql",
            "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\nALTER TABLE orders ADD CHECK (total >= 0);"
        )]));
    }

    #[test]
    fn err_validate_inside_the_files_own_begin() {
        insta::assert_snapshot!(lint_text(&[(
            "0004_check.sql",
            "-- realmguard:no-transaction\nBEGIN;\nALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT orders_total_check;\nCOMMIT;"
        )]));
        // Each in its own transaction: the safe sequence.
        assert!(rules_of("-- realmguard:no-transaction\nBEGIN;\nALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0) NOT VALID;\nCOMMIT;\nALTER TABLE orders VALIDATE CONSTRAINT orders_total_check;").is_empty());
    }

    #[test]
    fn err_validate_in_the_same_transaction() {
        insta::assert_snapshot!(lint_text(&[(
            "0003_fk.sql",
            "ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT orders_total_check;"
        )]));
    }
}
