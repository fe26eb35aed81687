//! `ban-drop-table` (warning): dropping a table breaks every running client that still uses
//! it, and its data is gone for good.

use super::{display_table, Ctx, Violation};
use crate::lint::model::{last_ident, object_key};
use sqlparser::ast::{ObjectType, Statement};

pub const ID: &str = crate::rules::Rule::BanDropTable.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Statement::Drop {
        object_type: ObjectType::Table,
        names,
        ..
    } = stmt
    else {
        return;
    };
    for n in names.iter().filter(|n| ctx.existing(n)) {
        out.push(Violation {
            rule: ID,
            message: format!(
                "dropping existing table \"{}\" breaks running clients that still use it, and its rows are gone",
                display_table(&object_key(n))
            ),
            help: "Deploy code that no longer uses the table first, then drop it in a later migration (and say so with `-- realmguard:ignore ban-drop-table`).".into(),
            span: last_ident(n).map(|i| i.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of("CREATE TABLE scratch (id int);\nDROP TABLE scratch;").is_empty(),
            "{:?}",
            rules_of("CREATE TABLE scratch (id int);\nDROP TABLE scratch;")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_ban_drop_table.sql",
            r#"DROP TABLE IF EXISTS legacy_sessions;"#
        )]));
    }
}
