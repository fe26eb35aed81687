//! `require-timeout-settings` (off unless `--assume-runner other`): a DDL statement waiting for
//! its lock queues every later query on the table behind it. realmguard's migrate sets
//! `lock_timeout` (and retries) itself; another runner may not, so the file must set
//! `lock_timeout` and `statement_timeout` before its first lock-taking statement.

use super::{Ctx, Violation};
use sqlparser::ast::Statement;

pub const ID: &str = crate::rules::Rule::RequireTimeoutSettings.id();

/// Statements that take a strong lock on an existing object.
pub fn takes_lock(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::AlterTable(_)
            | Statement::CreateIndex(_)
            | Statement::Drop { .. }
            | Statement::Truncate(_)
            | Statement::AlterType(_)
    )
}

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let s = ctx.so_far;
    if !takes_lock(stmt) || s.locking_seen > 0 || (s.lock_timeout && s.statement_timeout) {
        return;
    }
    let missing: Vec<&str> = [
        (!s.lock_timeout).then_some("lock_timeout"),
        (!s.statement_timeout).then_some("statement_timeout"),
    ]
    .into_iter()
    .flatten()
    .collect();
    out.push(Violation {
        rule: ID,
        message: format!(
            "this statement takes a lock before the file sets {}: waiting for it queues every later query on the table",
            missing.join(" and ")
        ),
        help: "Start the file with `SET lock_timeout = '2s';` and `SET statement_timeout = '…';` (realmguard's migrate sets lock_timeout itself).".into(),
        span: None,
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
        let sql = "SET lock_timeout = '2s';\nSET statement_timeout = '5min';\nALTER TABLE users ADD COLUMN a int;";
        let text = lint_text_cfg(&[("0001_a.sql", sql)], &on());
        assert!(text.contains("no problems"), "{text}");
        assert!(rules_of("ALTER TABLE users ADD COLUMN a int;").is_empty());
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text_cfg(
            &[(
                "0007_timeouts.sql",
                "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN a int;\nALTER TABLE users ADD COLUMN b int;"
            )],
            &on()
        ));
    }
}
