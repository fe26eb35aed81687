//! `disallowed-unique-constraint`: `ADD UNIQUE`/`ADD PRIMARY KEY` builds the index while holding
//! an ACCESS EXCLUSIVE lock. Build it `CONCURRENTLY` first and attach it with `USING INDEX`.

use super::{display_table, Ctx, Violation};
use crate::lint::model::{last_ident, object_key};
use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement, TableConstraint};

pub const ID: &str = crate::rules::Rule::DisallowedUniqueConstraint.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    let table = display_table(&object_key(&at.name));
    for op in &at.operations {
        let (what, span) = match op {
            AlterTableOperation::AddConstraint { constraint, .. } => match constraint {
                TableConstraint::Unique(u) => {
                    ("a UNIQUE constraint", u.name.as_ref().map(|n| n.span))
                }
                TableConstraint::PrimaryKey(p) => {
                    ("a PRIMARY KEY", p.name.as_ref().map(|n| n.span))
                }
                _ => continue,
            },
            AlterTableOperation::AddColumn { column_def: c, .. } => {
                match c.options.iter().find_map(|o| match o.option {
                    ColumnOption::Unique(_) => Some("a UNIQUE column"),
                    ColumnOption::PrimaryKey(_) => Some("a PRIMARY KEY column"),
                    _ => None,
                }) {
                    Some(w) => (w, Some(c.name.span)),
                    None => continue,
                }
            }
            _ => continue,
        };
        out.push(Violation {
            rule: ID,
            message: format!(
                "adding {what} to existing table \"{table}\" builds its index under an ACCESS EXCLUSIVE lock, blocking reads and writes"
            ),
            help: format!(
                "CREATE UNIQUE INDEX CONCURRENTLY first (in a `-- realmguard:no-transaction` migration), then `ALTER TABLE {} ADD CONSTRAINT <name> UNIQUE USING INDEX <index>` (or PRIMARY KEY USING INDEX).",
                at.name
            ),
            span: span.or_else(|| last_ident(&at.name).map(|i| i.span)),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_using_an_index_built_concurrently() {
        assert!(rules(&[
            ("0001_a.sql", "-- realmguard:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);"),
            ("0002_b.sql", "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;"),
        ])
        .is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of("CREATE TABLE notes (id int, slug text);\nALTER TABLE notes ADD CONSTRAINT notes_slug_key UNIQUE (slug);\nALTER TABLE notes ADD PRIMARY KEY (id);").is_empty());
    }

    #[test]
    fn err_unique_and_primary_key() {
        insta::assert_snapshot!(lint_text(&[(
            "0008_keys.sql",
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\nALTER TABLE tags ADD PRIMARY KEY (id);"
        )]));
    }
}
