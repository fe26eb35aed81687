//! `require-concurrent-partition-detach`: `DETACH PARTITION` without `CONCURRENTLY` takes an
//! ACCESS EXCLUSIVE lock on the parent table: every query on it waits (PostgreSQL 14+ offers
//! `CONCURRENTLY`, which needs a no-transaction migration).

use super::{display_table, Ctx, Violation};
use crate::lint::model::{last_ident, object_key};
use sqlparser::ast::{AlterTableOperation, DetachPartitionMode, Statement};

pub const ID: &str = crate::rules::Rule::RequireConcurrentPartitionDetach.id();

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    for op in &at.operations {
        let AlterTableOperation::DetachPartitionOf { partition, mode } = op else {
            continue;
        };
        if mode.is_some_and(|m| m == DetachPartitionMode::Concurrently) {
            continue;
        }
        out.push(Violation {
            rule: ID,
            message: format!(
                "detaching partition \"{partition}\" locks parent table \"{}\" ACCESS EXCLUSIVE",
                display_table(&object_key(&at.name))
            ),
            help: "Use `DETACH PARTITION … CONCURRENTLY` in a `-- realmguard:no-transaction` migration.".into(),
            span: last_ident(partition).map(|i| i.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(rules_of("-- realmguard:no-transaction\nALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;").is_empty(), "{:?}", rules_of("-- realmguard:no-transaction\nALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;"));
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_require_concurrent_partition_detach.sql",
            r#"ALTER TABLE events DETACH PARTITION events_2020;"#
        )]));
    }
}
