//! The distribution plan, pure: reference tables first (parents first), then the realm tables
//! parents first, the first of them creating the colocation group the others join. Each step
//! says which lock it holds on its table and, from the table's size, for about how long (Citus
//! copies the existing rows to the shards inside the step).

use crate::catalog::citus::{CitusFacts, DistClass};
use crate::config::Config;
use crate::db::quote_literal;
use crate::rules::Severity;
use crate::verify::citus::Class;
use crate::verify::Report;
use serde::Serialize;
use std::time::Duration;

/// How fast Citus copies a table's existing rows into its shards, in bytes per second of
/// `pg_total_relation_size` (indexes included, since each shard builds them): about half of what
/// scripts/bench-citus.sh measured on two shared cores (1M memberships, ~7 MB/s), so that the
/// window a DBA plans is long enough.
pub const COPY_BYTES_PER_SEC: u64 = 4 << 20;

#[derive(Debug, Clone)]
pub struct Options {
    /// `shard_count` of the colocation group the first realm table creates (Citus's
    /// `citus.shard_count` when not given).
    pub shard_count: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Reference,
    Distributed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// `schema.table`, quoted where needed.
    pub table: String,
    pub kind: StepKind,
    /// `SET LOCAL` lines the step's transaction needs before its SQL.
    pub settings: Vec<String>,
    /// Statements run in the step's transaction before its SQL (policies rewritten for Citus).
    pub before: Vec<String>,
    pub sql: String,
    /// The lock the step holds on its table until it commits.
    pub lock: String,
    pub rows: i64,
    pub bytes: i64,
    /// How long the lock is expected to be held (rows copied to the shards), in ms.
    pub estimate_ms: u64,
    /// Citus already holds the table this way: the step is skipped.
    pub done: bool,
    /// What the DBA should know about this step.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Whether the database is a Citus coordinator (the citus extension is there).
    pub coordinator: bool,
    pub steps: Vec<Step>,
    /// `verify --profile citus` errors: while any is left, `distribute` refuses to start.
    pub blockers: Vec<String>,
    /// Sum of the estimates of the steps still to run, in ms.
    pub estimate_ms: u64,
}

impl Plan {
    pub fn pending(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| !s.done)
    }
}

/// Why `create_reference_table` runs with `citus.enable_local_reference_table_foreign_keys`
/// off: with it on, Citus turns every table that has a foreign key to the new reference table
/// into a "citus local" table, and `create_distributed_table` then refuses those that have an
/// identity column ("cannot complete operation on a table with identity column").
const NO_LOCAL_FK_CASCADE: &str = "SET LOCAL citus.enable_local_reference_table_foreign_keys = off";

pub fn build(report: &Report, facts: &CitusFacts, cfg: &Config, opts: &Options) -> Plan {
    let classes = report.citus.clone().unwrap_or_default();
    let dist = facts.dist.as_ref();
    let mut blockers: Vec<String> = report
        .violations
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .map(|v| format!("{} on {}.{}: {}", v.rule, v.schema, v.table, v.message))
        .collect();
    // The colocation root: a realm table Citus already distributes on the realm column (a run
    // that resumes), else the first realm table of the plan.
    let existing_root = classes.iter().find(|c| {
        c.class == Class::Distributed
            && dist.and_then(|d| d.get(&c.oid)).is_some_and(|d| {
                d.class == DistClass::Distributed
                    && d.column
                        .as_deref()
                        .is_some_and(|n| cfg.realm_column.contains(n))
            })
    });
    let root = existing_root
        .or_else(|| classes.iter().find(|c| c.class == Class::Distributed))
        .map(|c| c.table.clone());
    let mut steps = Vec::new();
    for c in &classes {
        let now = dist.and_then(|d| d.get(&c.oid)).map(|d| d.class);
        let size = facts.sizes.get(&c.oid).copied().unwrap_or_default();
        let estimate_ms = (size.bytes.max(0) as u64).saturating_mul(1000) / COPY_BYTES_PER_SEC;
        let row_triggers: Vec<&str> = facts
            .triggers
            .iter()
            .filter(|t| t.table == c.oid && t.row)
            .map(|t| t.name.as_str())
            .collect();
        let mut settings = vec![NO_LOCAL_FK_CASCADE.to_string()];
        let mut notes = Vec::new();
        if !row_triggers.is_empty() {
            settings.push("SET LOCAL citus.enable_unsafe_triggers = on".into());
            notes.push(format!(
                "row triggers {} will run on the shards (citus.enable_unsafe_triggers)",
                row_triggers.join(", ")
            ));
        }
        let mut before = Vec::new();
        for p in facts.sublink_policies.iter().filter(|p| p.table == c.oid) {
            match rewrite_policy(&c.table, p) {
                Some(sql) => {
                    notes.push(format!(
                        "policy {} reads the realm setting through a scalar subquery, which Citus refuses on its tables (\"Subqueries are not supported in policies on distributed tables\"): rewritten to call current_setting directly (rls-setting-per-row will warn)",
                        p.name
                    ));
                    before.push(sql);
                }
                None => blockers.push(format!(
                    "policy {} on {} has a subquery that is not a plain current_setting() read: Citus refuses subqueries in policies on distributed tables; rewrite it first",
                    p.name, c.table
                )),
            }
        }
        let (kind, sql, done) = match c.class {
            Class::Reference => (
                StepKind::Reference,
                format!("SELECT create_reference_table({})", quote_literal(&c.table)),
                now == Some(DistClass::Reference),
            ),
            Class::Distributed => {
                let is_root = root.as_deref() == Some(c.table.as_str());
                let colocate = if is_root {
                    "'none'".to_string()
                } else {
                    quote_literal(root.as_deref().unwrap_or_default())
                };
                let shards = match (is_root, opts.shard_count) {
                    (true, Some(n)) => format!(", shard_count => {n}"),
                    _ => String::new(),
                };
                (
                    StepKind::Distributed,
                    format!(
                        "SELECT create_distributed_table({}, {}, colocate_with => {colocate}{shards})",
                        quote_literal(&c.table),
                        quote_literal(c.distribution_column.as_deref().unwrap_or(cfg.realm_column.first()))
                    ),
                    now == Some(DistClass::Distributed),
                )
            }
            Class::Local => continue,
        };
        if let (false, Some(held)) = (done, now) {
            let held = serde_json::to_value(held)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            notes.push(format!(
                "Citus already holds this table as a {held} table; undistribute_table it first, or this step fails"
            ));
        }
        if size.rows > 0 && !done {
            notes.push(format!(
                "copies about {} rows; afterwards truncate_local_data_after_distributing_table({}) frees the coordinator's copy",
                size.rows,
                quote_literal(&c.table)
            ));
        }
        let lock = match kind {
            StepKind::Reference => {
                "EXCLUSIVE (writes wait, reads go on), rows copied to every node"
            }
            StepKind::Distributed => {
                "EXCLUSIVE (writes wait, reads go on), rows copied to the shards"
            }
        }
        .to_string();
        steps.push(Step {
            table: c.table.clone(),
            kind,
            settings,
            before,
            sql,
            lock,
            rows: size.rows,
            bytes: size.bytes,
            estimate_ms,
            done,
            notes,
        });
    }
    let estimate_ms = steps
        .iter()
        .filter(|s| !s.done)
        .map(|s| s.estimate_ms)
        .sum();
    Plan {
        coordinator: dist.is_some(),
        steps,
        blockers,
        estimate_ms,
    }
}

/// `ALTER POLICY` with each `( SELECT current_setting(…) AS current_setting)` of the policy's
/// expressions replaced by the call itself; `None` when another subquery is left.
fn rewrite_policy(table: &str, p: &crate::catalog::citus::SublinkPolicy) -> Option<String> {
    let fix = |e: &str| -> Option<String> {
        let mut out = e.to_string();
        while let Some(start) = out.find("( SELECT current_setting(") {
            let end_rel = out[start..].find(" AS current_setting)")?;
            let inner = out[start + 9..start + end_rel].to_string();
            out.replace_range(
                start..start + end_rel + " AS current_setting)".len(),
                &inner,
            );
        }
        (!out.to_ascii_uppercase().contains("SELECT")).then_some(out)
    };
    let mut sql = format!(
        "ALTER POLICY {} ON {table}",
        crate::db::quote_ident(&p.name)
    );
    if let Some(q) = &p.qual {
        sql.push_str(&format!(" USING ({})", fix(q)?));
    }
    if let Some(c) = &p.check {
        sql.push_str(&format!(" WITH CHECK ({})", fix(c)?));
    }
    Some(sql)
}

/// An estimate for a person: `<1 s`, `~4 s`, `~3 min`.
pub fn human(ms: u64) -> String {
    let d = Duration::from_millis(ms);
    match d.as_secs() {
        0 => "<1 s".into(),
        s if s < 120 => format!("~{s} s"),
        s => format!("~{} min", s.div_ceil(60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::citus::Size;
    use crate::catalog::FkAction;
    use crate::verify::testkit::Kit;

    fn plan_of(k: &mut Kit, shard_count: Option<u32>) -> Plan {
        k.citus_profile();
        let r = k.report();
        build(&r, &k.citus, &k.cfg, &Options { shard_count })
    }

    #[test]
    fn reference_tables_first_then_realm_tables_parents_first_colocated_with_the_first() {
        let mut k = Kit::new();
        let m = k.good("memberships", &["group_id"]);
        let g = k.good("groups", &[]);
        k.fk(
            m,
            &["group_id", "realm_id"],
            g,
            &["id", "realm_id"],
            FkAction::Cascade,
        );
        k.citus.sizes.insert(
            m,
            Size {
                rows: 1000,
                bytes: 16 << 20,
            },
        );
        let p = plan_of(&mut k, Some(8));
        let sql: Vec<&str> = p.steps.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "SELECT create_reference_table('public.realms')",
                "SELECT create_distributed_table('public.groups', 'realm_id', colocate_with => 'none', shard_count => 8)",
                "SELECT create_distributed_table('public.memberships', 'realm_id', colocate_with => 'public.groups')",
            ]
        );
        assert!(p
            .steps
            .iter()
            .all(|s| s.settings[0].contains("enable_local_reference_table_foreign_keys = off")));
        assert_eq!(p.steps[2].estimate_ms, 4000);
        assert!(p.steps[2].lock.starts_with("EXCLUSIVE (writes wait"));
        assert!(p.blockers.is_empty());
    }

    #[test]
    fn what_citus_holds_already_is_done_and_the_existing_group_is_joined() {
        let mut k = Kit::new();
        let g = k.good("groups", &[]);
        let u = k.good("users", &[]);
        k.dist(u, DistClass::Distributed, Some("realm_id"), 3);
        let realms = k.realms();
        k.dist(realms, DistClass::Reference, None, 1);
        let _ = g;
        let p = plan_of(&mut k, None);
        let pending: Vec<&str> = p.pending().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            pending,
            ["SELECT create_distributed_table('public.groups', 'realm_id', colocate_with => 'public.users')"]
        );
        assert!(p.coordinator);
    }

    #[test]
    fn a_policy_reading_the_setting_in_a_subquery_is_rewritten_and_another_subquery_blocks() {
        use crate::catalog::citus::SublinkPolicy;
        let mut k = Kit::new();
        let u = k.good("users", &[]);
        let q =
            "(realm_id = ( SELECT current_setting('app.realm_id'::text, true) AS current_setting))";
        k.citus.sublink_policies.push(SublinkPolicy {
            table: u,
            name: "users_realm".into(),
            qual: Some(q.into()),
            check: Some(q.into()),
        });
        let p = plan_of(&mut k, None);
        assert_eq!(
            p.steps[1].before,
            ["ALTER POLICY users_realm ON public.users USING ((realm_id = current_setting('app.realm_id'::text, true))) WITH CHECK ((realm_id = current_setting('app.realm_id'::text, true)))"]
        );
        assert!(p.blockers.is_empty());
        k.citus.sublink_policies[0].qual =
            Some("(realm_id IN ( SELECT r.id FROM realms r))".into());
        let p = plan_of(&mut k, None);
        assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
    }

    #[test]
    fn profile_errors_block_and_row_triggers_get_the_unsafe_setting() {
        let mut k = Kit::new();
        let u = k.good("users", &[]);
        k.trigger(u, "users_touch", true);
        let p = plan_of(&mut k, None);
        assert!(p.blockers.is_empty());
        assert!(p.steps[1]
            .settings
            .iter()
            .any(|s| s.contains("enable_unsafe_triggers")));
        k.trigger(u, "users_stmt", false);
        let p = plan_of(&mut k, None);
        assert_eq!(p.blockers.len(), 1);
        assert!(
            p.blockers[0].starts_with("citus-statement-trigger"),
            "{:?}",
            p.blockers
        );
    }
}
