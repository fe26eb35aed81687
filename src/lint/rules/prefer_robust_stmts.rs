//! `prefer-robust-stmts` (warning): a no-transaction migration that fails halfway is rerun from
//! the statement that failed, or by hand from the top; without `IF NOT EXISTS` / `IF EXISTS` the
//! statements that already ran fail the rerun. A transaction-wrapped file is all or nothing, so
//! the rule only looks at no-transaction files (squawk's behaviour with assume-in-transaction).
//! Off by default: realmguard's migrate resumes a no-transaction file after the last statement
//! that succeeded, so nothing reruns; `--assume-runner other` turns it on.

use super::{Ctx, Violation};
use crate::lint::model::last_ident;
use sqlparser::ast::{ObjectType, Statement};

pub const ID: &str = crate::rules::Rule::PreferRobustStmts.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    if ctx.wrapped || ctx.in_transaction {
        return;
    }
    let (what, name) = match stmt {
        Statement::CreateTable(ct) if !ct.if_not_exists => ("CREATE TABLE", &ct.name),
        Statement::CreateIndex(ci) if !ci.if_not_exists => match &ci.name {
            Some(n) => ("CREATE INDEX", n),
            None => return,
        },
        Statement::Drop {
            object_type: ObjectType::Table | ObjectType::Index,
            if_exists: false,
            names,
            ..
        } if !names.is_empty() => ("DROP", &names[0]),
        _ => return,
    };
    let fix = if what == "DROP" {
        "IF EXISTS"
    } else {
        "IF NOT EXISTS"
    };
    out.push(Violation {
        rule: ID,
        message: format!(
            "{what} of \"{name}\" without {fix} in a no-transaction migration fails when the file is rerun after a partial failure"
        ),
        help: format!("Write `{what} {fix} …`."),
        span: last_ident(name).map(|i| i.span),
    });
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::lint::rules::test_support::*;

    fn on() -> Config {
        let mut cfg = fixture_config();
        cfg.rules
            .insert(super::ID.into(), crate::rules::Severity::Warning);
        cfg
    }

    #[test]
    fn ok_cases() {
        let cfg = on();
        for sql in [
            "-- realmguard:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_a_idx ON users (a);
DROP INDEX CONCURRENTLY IF EXISTS users_b_idx;",
            "CREATE TABLE t (id int);",
        ] {
            let text = lint_text_cfg(&[("0001_a.sql", sql)], &cfg);
            assert!(text.contains("no problems"), "{text}");
        }
        // Off by default (realmguard's runner resumes where it stopped).
        assert!(rules_of(
            "-- realmguard:no-transaction
CREATE INDEX CONCURRENTLY users_a_idx ON users (a);"
        )
        .is_empty());
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text_cfg(
            &[(
                "0007_prefer_robust_stmts.sql",
                "-- realmguard:no-transaction
CREATE INDEX CONCURRENTLY users_a_idx ON users (a);"
            )],
            &on()
        ));
    }
}
