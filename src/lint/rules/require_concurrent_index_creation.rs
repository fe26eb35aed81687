//! `require-concurrent-index-creation`: `CREATE INDEX` without `CONCURRENTLY` holds a SHARE lock
//! on the table for the whole build, so every write waits
//! (<https://www.postgresql.org/docs/current/sql-createindex.html#SQL-CREATEINDEX-CONCURRENTLY>).

use super::{display_table, Ctx, Violation};
use crate::lint::model::{last_ident, object_key};
use sqlparser::ast::Statement;

pub const ID: &str = crate::rules::Rule::RequireConcurrentIndexCreation.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Statement::CreateIndex(ci) = stmt else {
        return;
    };
    if ci.concurrently || !ctx.existing(&ci.table_name) {
        return;
    }
    let table = display_table(&object_key(&ci.table_name));
    out.push(Violation {
        rule: ID,
        message: format!(
            "CREATE {}INDEX on existing table \"{table}\" without CONCURRENTLY blocks every write to it until the index is built",
            if ci.unique { "UNIQUE " } else { "" }
        ),
        help: "Use CREATE INDEX CONCURRENTLY, in a migration whose first line is `-- realmguard:no-transaction`.".into(),
        span: last_ident(&ci.table_name).map(|i| i.span),
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_concurrently() {
        assert!(rules_of("-- realmguard:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);").is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of(
            "CREATE TABLE notes (id int, body text);\nCREATE INDEX notes_body_idx ON notes (body);"
        )
        .is_empty());
    }

    #[test]
    fn err_plain_index_on_existing_table() {
        insta::assert_snapshot!(lint_text(&[
            (
                "0001_users.sql",
                "CREATE TABLE users (id int PRIMARY KEY, email text);"
            ),
            (
                "0002_index.sql",
                "-- speed up logins\nCREATE INDEX users_email_idx ON users (email);"
            ),
        ]));
    }
}
