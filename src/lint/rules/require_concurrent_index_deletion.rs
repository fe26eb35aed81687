//! `require-concurrent-index-deletion`: `DROP INDEX` without `CONCURRENTLY` takes an ACCESS
//! EXCLUSIVE lock on the index's table, so reads queue behind it too
//! (<https://www.postgresql.org/docs/current/sql-dropindex.html>).

use super::{display_table, Ctx, Violation};
use crate::lint::model::{last_ident, object_key};
use sqlparser::ast::{ObjectType, Statement};

pub const ID: &str = crate::rules::Rule::RequireConcurrentIndexDeletion.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Statement::Drop {
        object_type: ObjectType::Index,
        names,
        ..
    } = stmt
    else {
        return;
    };
    if ctx.drop_concurrently {
        return;
    }
    for n in names {
        if ctx.so_far.indexes.contains(&object_key(n)) {
            continue;
        }
        let table = ctx.schema.index_table(n);
        if table.is_some_and(|t| ctx.so_far.created.contains(t)) {
            continue;
        }
        let on = match table {
            Some(t) => format!("table \"{}\"", display_table(t)),
            None => "its table".to_string(),
        };
        let index = last_ident(n).map(|i| i.value.clone()).unwrap_or_default();
        out.push(Violation {
            rule: ID,
            message: format!(
                "DROP INDEX \"{index}\" without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on {on}, blocking reads and writes"
            ),
            help: "Use DROP INDEX CONCURRENTLY, in a migration whose first line is `-- realmguard:no-transaction`.".into(),
            span: last_ident(n).map(|i| i.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_concurrently() {
        assert!(rules_of(
            "-- realmguard:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS users_email_idx;"
        )
        .is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of("CREATE TABLE notes (id int, body text);\nCREATE INDEX notes_body_idx ON notes (body);\nDROP INDEX notes_body_idx;").is_empty());
    }

    #[test]
    fn err_index_of_a_table_from_an_earlier_migration() {
        insta::assert_snapshot!(lint_text(&[
            ("0001_users.sql", "CREATE TABLE users (id int PRIMARY KEY, email text);\nCREATE INDEX users_email_idx ON users (email);"),
            ("0002_drop.sql", "DROP INDEX users_email_idx;"),
        ]));
    }
}
