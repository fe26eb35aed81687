//! `backfill finish`: the fill triggers dropped once the application writes the realm itself.

use super::{Action, Lock, Phase, Step};
use crate::catalog::Trigger;
use crate::db::{qualified, quote_ident};

/// The steps of `backfill finish`: each fill trigger dropped in its own short transaction
/// (DROP TRIGGER takes ACCESS EXCLUSIVE on its table), its function with the last trigger that
/// uses it. Never CASCADE: a function some other trigger still uses stops the step instead.
pub fn finish_steps(triggers: &[Trigger]) -> Vec<Step> {
    triggers
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let last_user = !triggers[i + 1..].iter().any(|o| o.function == f.function);
            let mut sql = format!(
                "DROP TRIGGER IF EXISTS {} ON {}",
                quote_ident(&f.name),
                qualified(&f.schema, &f.table)
            );
            let mut title = format!("drop the fill trigger {}", f.name);
            if last_user {
                let func = qualified(&f.function.0, &f.function.1);
                sql += &format!(";\nDROP FUNCTION IF EXISTS {func}()");
                title += &format!(" and its function {func}()");
            }
            Step {
                schema: f.schema.clone(),
                table: f.table.clone(),
                phase: Phase::Finish,
                title,
                lock: Lock::AccessExclusive,
                lock_note: "instant".into(),
                relations: vec![(f.schema.clone(), f.table.clone())],
                partition_of: None,
                action: Action::Sql {
                    sql,
                    no_fk_depends_on: None,
                },
            }
        })
        .collect()
}
