//! `realmguard verify`: read the live catalog, evaluate the realm rules, report.
//!
//! The catalog is read in a constant number of queries ([`crate::catalog`]); every rule is a pure
//! function over it (one file per rule under `rules/`), so most rule tests build the model by hand.
//! [`verify_tables`] is the cheap, scoped form the migrate guard calls around each migration.

pub mod citus;
pub mod fix;
pub mod policy;
mod render;
pub mod rls;
pub mod rules;

use crate::catalog::citus::CitusFacts;
use crate::catalog::rls::RlsCatalog;
use crate::catalog::{AttNum, Catalog, Constraint, ConstraintKind, Index, RealmsTable, Table};
use crate::config::Config;
use crate::rules::{Gate, Profile, Rule, Severity};
use serde::Serialize;
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};

pub use render::{junit_cases, render, summary_line};

/// Why `verify` could not produce a report: the rules are pure, so only the catalog read fails.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Catalog(#[from] crate::catalog::Error),
}

/// One broken invariant, owned by one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub rule: String,
    pub severity: Severity,
    /// Raw (unquoted) names of the table that owns the problem.
    pub schema: String,
    pub table: String,
    /// The constraint or index involved, when there is one.
    pub constraint: Option<String>,
    pub message: String,
    /// SQL that repairs it on a live database, when one can be written.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Tables checked (ordinary and partitioned, partitions not counted).
    pub tables: usize,
    pub realm_scoped: usize,
    pub errors: usize,
    pub warnings: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub summary: Summary,
    pub violations: Vec<Violation>,
    /// Every checked table (raw schema, name), for one JUnit case per table and rule.
    #[serde(skip)]
    pub checked: Vec<(String, String)>,
    /// The rules that ran (severity not `off`).
    #[serde(skip)]
    pub rules: Vec<String>,
    /// Catalog round trips this report took.
    #[serde(skip)]
    pub queries: usize,
    /// Under `--profile citus`: each checked table's class (distributed, reference, local).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citus: Option<Vec<citus::TableClass>>,
}

impl Report {
    /// Error-severity violations, for comparing the state before and after a migration.
    pub fn errors(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|v| v.severity == Severity::Error)
    }
}

/// Whole catalog; with the RLS rules on, also the policies, roles and views (two more queries);
/// always the Citus facts: the profile's when `cfg.profile` asks for them, and Citus's metadata
/// whenever the database is a coordinator (one query, two on a coordinator).
pub async fn verify(conn: &mut PgConnection, cfg: &Config) -> Result<Report, Error> {
    let cat = Catalog::load(conn, &cfg.realms_table, &cfg.realm_column).await?;
    let rls = if cfg.rls_catalog_needed() {
        Some(RlsCatalog::load(conn, &cfg.realm_column, &cfg.rls.app_role).await?)
    } else {
        None
    };
    let profile = cfg.profile == Some(Profile::Citus);
    let (facts, n) = CitusFacts::load(conn, &cfg.realm_column, profile).await?;
    let mut report = evaluate_all(&cat, rls.as_ref(), Some(&facts), cfg);
    report.queries += n + rls.as_ref().map_or(0, |r| r.queries);
    Ok(report)
}

/// Only the given tables ("schema", "table") plus the tables that reference them or that they
/// reference by foreign key; the same constant number of queries, each filtered to those tables.
/// Tables in the list that do not exist are ignored. The tables referencing the realms table are
/// not pulled in when it is given (all realm-scoped tables do; see `catalog/sql/scoped.sql`).
pub async fn verify_tables(
    conn: &mut PgConnection,
    cfg: &Config,
    tables: &[(String, String)],
) -> Result<Report, Error> {
    let cat = Catalog::load_scoped(conn, &cfg.realms_table, &cfg.realm_column, tables).await?;
    Ok(evaluate(&cat, cfg))
}

/// [`verify_tables`] of the tables the current transaction changed (read from the locks it
/// holds), returned with the report: the migrate guard's check, in one round trip.
pub async fn verify_changed(
    conn: &mut PgConnection,
    cfg: &Config,
) -> Result<(Vec<(String, String)>, Report), Error> {
    let (touched, cat) = Catalog::load_changed(conn, &cfg.realms_table, &cfg.realm_column).await?;
    Ok((touched, evaluate(&cat, cfg)))
}

/// [`verify_changed`] from the row the migrate runner's batch answered
/// (`catalog::GUARD_EXECUTE_SQL`): the same read, sent with the migration; only the
/// error-severity rules are evaluated ([`evaluate_errors`]).
pub fn verify_guard_row(
    row: &sqlx::postgres::PgRow,
    cfg: &Config,
) -> Result<(Vec<(String, String)>, Report), Error> {
    let (touched, cat) = Catalog::from_guard_row(row, &cfg.realms_table, &cfg.realm_column)?;
    Ok((touched, evaluate_errors(&cat, cfg)))
}

/// Evaluate every rule that is not `off` over a catalog: pure. Without an RLS read (the scoped
/// forms the migrate guard uses) only `rls-disabled` of the RLS rules can run.
pub fn evaluate(cat: &Catalog, cfg: &Config) -> Report {
    evaluate_all(cat, None, None, cfg)
}

pub fn evaluate_with_rls(cat: &Catalog, rls: Option<&RlsCatalog>, cfg: &Config) -> Report {
    evaluate_all(cat, rls, None, cfg)
}

/// [`evaluate`] with the Citus facts ([`CitusFacts::load`]): pure.
pub fn evaluate_with(cat: &Catalog, citus: Option<&CitusFacts>, cfg: &Config) -> Report {
    evaluate_all(cat, None, citus, cfg)
}

/// Whether a rule runs on this catalog: not `off`, and its gate open (the profile asked for,
/// or Citus's metadata read). Under the Citus profile `fk-cross-realm` gives way to its error
/// form, `citus-fk-ordinal`.
fn runs(rule: Rule, cfg: &Config, citus: Option<&CitusFacts>) -> bool {
    let citus_profile = cfg.profile == Some(Profile::Citus) && citus.is_some_and(|f| f.profile);
    let open = match rule.gate() {
        Gate::Always => !(citus_profile && rule == Rule::FkCrossRealm),
        Gate::Profile(Profile::Citus) => citus_profile,
        Gate::CitusCoordinator => citus.is_some_and(|f| f.dist.is_some()),
    };
    open && cfg.severity(rule.id()) != Severity::Off
}

/// Every rule over the catalog and whichever extra reads were made: pure.
pub fn evaluate_all(
    cat: &Catalog,
    rls: Option<&RlsCatalog>,
    citus: Option<&CitusFacts>,
    cfg: &Config,
) -> Report {
    evaluate_rules(cat, rls, citus, cfg, false)
}

/// [`evaluate`] of the error-severity rules only: all the migrate guard compares (a warning
/// never rejects a migration), without building the warnings' fixes for every migration.
pub fn evaluate_errors(cat: &Catalog, cfg: &Config) -> Report {
    evaluate_rules(cat, None, None, cfg, true)
}

fn evaluate_rules(
    cat: &Catalog,
    rls: Option<&RlsCatalog>,
    citus: Option<&CitusFacts>,
    cfg: &Config,
    errors_only: bool,
) -> Report {
    let mut ctx = Ctx::new(cat, cfg);
    ctx.rls = rls;
    ctx.citus = citus;
    let mut violations = Vec::new();
    let mut ran = Vec::new();
    for (rule, check) in rules::ALL {
        if !runs(*rule, cfg, citus) || (errors_only && cfg.severity(rule.id()) != Severity::Error) {
            continue;
        }
        if rls.is_none() && rule.is_rls() && *rule != crate::rules::Rule::RlsDisabled {
            continue;
        }
        ran.push(rule.id().to_string());
        check(&ctx, &mut violations);
    }
    violations.sort_by(|a, b| {
        (a.severity, &a.schema, &a.table, &a.rule, &a.constraint).cmp(&(
            b.severity,
            &b.schema,
            &b.table,
            &b.rule,
            &b.constraint,
        ))
    });
    violations.dedup();
    let errors = violations
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .count();
    let warnings = violations
        .iter()
        .filter(|v| v.severity == Severity::Warning)
        .count();
    let checked: Vec<(String, String)> = ctx
        .checked
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    Report {
        ok: errors == 0,
        summary: Summary {
            tables: ctx.checked.len(),
            realm_scoped: ctx
                .checked
                .iter()
                .filter(|t| ctx.is_realm_scoped(t.oid))
                .count(),
            errors,
            warnings,
        },
        violations,
        checked,
        rules: ran,
        queries: cat.queries,
        citus: (cfg.profile == Some(Profile::Citus) && citus.is_some())
            .then(|| citus::classes(&ctx)),
    }
}

/// The violations that carry a fix, in the order in which fixes apply cleanly
/// ([`crate::rules::Rule::repair_rank`]; stable within a rule).
pub fn fixes_in_repair_order(vs: &[Violation]) -> Vec<&Violation> {
    let rank = |r: &str| {
        crate::rules::Rule::from_id(r)
            .and_then(|r| r.repair_rank())
            .unwrap_or(u8::MAX)
    };
    let mut out: Vec<&Violation> = vs.iter().filter(|v| v.fix.is_some()).collect();
    out.sort_by_key(|v| rank(&v.rule));
    out
}

/// What the rules share: the catalog, the config, and the facts derived from both once.
pub struct Ctx<'a> {
    pub cat: &'a Catalog,
    pub cfg: &'a Config,
    /// Row level security facts, when the RLS rules run on a full read.
    pub rls: Option<&'a RlsCatalog>,
    /// The policies' analyses, parsed once for all the RLS rules (see `rls.rs`).
    pub(crate) rls_analyses: std::sync::OnceLock<rls::Analyses>,
    tables: HashMap<u32, &'a Table>,
    /// Tables to report on, in a stable order: ordinary/partitioned, not partitions, in a checked
    /// schema, not excluded, in scope.
    pub checked: Vec<&'a Table>,
    /// Realm-scoped tables (in scope or not) and their realm column, `None` for a table listed in
    /// `realm_scoped` that lacks it.
    realm_scoped: HashMap<u32, Option<AttNum>>,
    constraints: HashMap<u32, Vec<&'a Constraint>>,
    indexes: HashMap<u32, Vec<&'a Index>>,
    /// The Citus facts, when they were read (see [`evaluate_with`]).
    pub citus: Option<&'a CitusFacts>,
}

fn matches_entry(entries: &[String], t: &Table) -> bool {
    entries
        .iter()
        .any(|e| crate::names::names_table(e, &t.schema, &t.name))
}

impl<'a> Ctx<'a> {
    pub fn new(cat: &'a Catalog, cfg: &'a Config) -> Ctx<'a> {
        let tables: HashMap<u32, &Table> = cat.tables.iter().map(|t| (t.oid, t)).collect();
        let realms_oid = match cat.realms {
            RealmsTable::Found(oid) => Some(oid),
            _ => None,
        };
        let candidate = |t: &Table| {
            !t.is_partition
                && (cfg.schemas.is_empty() || cfg.schemas.contains(&t.schema))
                && !matches_entry(&cfg.exclude, t)
        };
        let mut realm_scoped = HashMap::new();
        for t in &cat.tables {
            if !candidate(t) || Some(t.oid) == realms_oid {
                continue;
            }
            let col = t.column(t.realm_column(&cfg.realm_column)).map(|c| c.num);
            if col.is_some() || matches_entry(&cfg.realm_scoped, t) {
                realm_scoped.insert(t.oid, col);
            }
        }
        let mut checked: Vec<&Table> = cat
            .tables
            .iter()
            .filter(|t| candidate(t))
            .filter(|t| cat.scope.as_ref().is_none_or(|s| s.contains(&t.oid)))
            .collect();
        checked.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        let mut constraints: HashMap<u32, Vec<&Constraint>> = HashMap::new();
        for c in &cat.constraints {
            constraints.entry(c.table).or_default().push(c);
        }
        let mut indexes: HashMap<u32, Vec<&Index>> = HashMap::new();
        for i in &cat.indexes {
            indexes.entry(i.table).or_default().push(i);
        }
        Ctx {
            cat,
            cfg,
            rls: None,
            rls_analyses: std::sync::OnceLock::new(),
            tables,
            checked,
            realm_scoped,
            constraints,
            indexes,
            citus: None,
        }
    }

    pub fn table(&self, oid: u32) -> Option<&'a Table> {
        self.tables.get(&oid).copied()
    }

    pub fn realms_oid(&self) -> Option<u32> {
        match self.cat.realms {
            RealmsTable::Found(oid) => Some(oid),
            _ => None,
        }
    }

    pub fn is_realm_scoped(&self, oid: u32) -> bool {
        self.realm_scoped.contains_key(&oid)
    }

    /// The realm column of a realm-scoped table that has one.
    pub fn realm_col(&self, oid: u32) -> Option<AttNum> {
        self.realm_scoped.get(&oid).copied().flatten()
    }

    /// Checked tables that are realm-scoped.
    pub fn scoped_tables(&self) -> impl Iterator<Item = &'a Table> + '_ {
        self.checked
            .iter()
            .copied()
            .filter(|t| self.is_realm_scoped(t.oid))
    }

    pub fn constraints_of(&self, oid: u32) -> &[&'a Constraint] {
        self.constraints.get(&oid).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn indexes_of(&self, oid: u32) -> &[&'a Index] {
        self.indexes.get(&oid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether a valid, non-partial index of the table leads with exactly these columns (in any
    /// order): what a foreign key's cascading deletes need so as not to scan the table.
    pub fn has_index_leading_with(&self, oid: u32, columns: &[AttNum]) -> bool {
        let want = col_set(columns);
        self.indexes_of(oid).iter().any(|i| {
            i.valid
                && !i.partial
                && i.key_columns.len() >= columns.len()
                && col_set(&i.key_columns[..columns.len()]) == want
        })
    }

    pub fn primary_key(&self, oid: u32) -> Option<&'a Constraint> {
        self.constraints_of(oid)
            .iter()
            .copied()
            .find(|c| c.kind == ConstraintKind::PrimaryKey)
    }

    /// Foreign keys declared on a table.
    pub fn foreign_keys(&self, oid: u32) -> impl Iterator<Item = &'a Constraint> + '_ {
        self.constraints_of(oid)
            .iter()
            .copied()
            .filter(|c| c.foreign.is_some())
    }

    /// Foreign keys that depend on an index (it cannot be dropped before they are moved).
    pub fn fks_using(&self, index: u32) -> Vec<&'a Constraint> {
        self.cat
            .constraints
            .iter()
            .filter(|c| c.foreign.as_ref().is_some_and(|f| f.index == index))
            .collect()
    }

    /// A name for a new index in `schema`, PostgreSQL style, with a number appended when a loaded
    /// relation already has it. Deterministic, so two fixes that want the same index agree.
    pub fn index_name(&self, schema: &str, parts: &[&str], suffix: &str) -> String {
        let taken = |n: &str| {
            self.cat
                .indexes
                .iter()
                .any(|i| i.name == n && self.table(i.table).is_some_and(|t| t.schema == schema))
                || self
                    .cat
                    .tables
                    .iter()
                    .any(|t| t.schema == schema && t.name == n)
        };
        let base = fix::object_name(parts, suffix);
        if !taken(&base) {
            return base;
        }
        (1..)
            .map(|k| fix::object_name(parts, &format!("{suffix}{k}")))
            .find(|n| !taken(n))
            .expect("some free name")
    }

    /// A comment line naming the foreign keys that must move before `index` can be dropped.
    pub fn dependents_note(&self, index: u32) -> String {
        let fks = self.fks_using(index);
        if fks.is_empty() {
            return String::new();
        }
        let names: Vec<String> = fks
            .iter()
            .map(|c| {
                let t = self.table(c.table).map(|t| t.name.as_str()).unwrap_or("?");
                format!("{t}.{}", c.name)
            })
            .collect();
        format!(
            "-- first move the foreign keys that depend on the old key (fk-missing-realm): {}\n",
            names.join(", ")
        )
    }

    /// A violation owned by `t`, with the rule's severity from the config (never `off`: rules
    /// that are `off` do not run).
    pub fn violation(
        &self,
        rule: &str,
        t: &Table,
        constraint: Option<&str>,
        message: String,
        fix: Option<String>,
    ) -> Violation {
        Violation {
            rule: rule.to_string(),
            severity: self.cfg.severity(rule),
            schema: t.schema.clone(),
            table: t.name.clone(),
            constraint: constraint.map(str::to_string),
            message,
            fix,
        }
    }
}

/// Names of columns for a message: `(a, b)`.
pub(crate) fn msg_cols(t: &Table, nums: &[AttNum]) -> String {
    format!("({})", t.column_names(nums).join(", "))
}

/// The set of columns, order ignored.
pub(crate) fn col_set(nums: &[AttNum]) -> HashSet<AttNum> {
    nums.iter().copied().collect()
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests {
    use super::testkit::Kit;
    use crate::catalog::TableKind;

    #[test]
    fn config_entries_match_by_table_or_schema_dot_table() {
        let mut k = Kit::new();
        let a = k.table("app", "legacy", &[("id", "bigint", true)]);
        k.pk(a, &["id"]);
        let b = k.table("other", "legacy", &[("id", "bigint", true)]);
        k.pk(b, &["id"]);
        k.cfg.realm_scoped = vec!["app.legacy".into()];
        let r = k.report();
        assert_eq!(r.summary.realm_scoped, 1);
        assert_eq!(r.violations[0].schema, "app");
        k.cfg.realm_scoped = vec!["legacy".into()];
        assert_eq!(k.report().summary.realm_scoped, 2);
        k.cfg.exclude = vec!["other.legacy".into()];
        let r = k.report();
        assert_eq!((r.summary.tables, r.summary.realm_scoped), (2, 1));
        k.cfg.schemas = vec!["other".into()];
        let r = k.report();
        assert_eq!(
            r.summary.tables, 0,
            "realms and app are outside, other.legacy excluded"
        );
    }

    #[test]
    fn partitions_are_not_checked_and_the_realms_table_is_not_realm_scoped() {
        let mut k = Kit::new();
        let realms = k.realms();
        k.t(realms).columns.push(crate::catalog::Column {
            num: 3,
            name: "realm_id".into(),
            not_null: false,
        });
        let p = k.table(
            "public",
            "events_1",
            &[("id", "bigint", true), ("realm_id", "text", false)],
        );
        k.t(p).is_partition = true;
        let parent = k.good("events", &[]);
        k.t(parent).kind = TableKind::Partitioned;
        let r = k.report();
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert_eq!((r.summary.tables, r.summary.realm_scoped), (2, 1));
    }

    #[test]
    fn off_rules_do_not_run_and_levels_come_from_the_config() {
        let mut k = Kit::new();
        let t = k.good("groups", &[]);
        k.t(t).columns[1].not_null = false;
        assert!(!k.report().ok);
        k.cfg.rules.insert(
            "realm-column-nullable".into(),
            crate::rules::Severity::Warning,
        );
        let r = k.report();
        assert!(r.ok);
        assert_eq!(r.summary.warnings, 1);
        k.cfg
            .rules
            .insert("realm-column-nullable".into(), crate::rules::Severity::Off);
        let r = k.report();
        assert!(r.violations.is_empty());
        assert!(!r.rules.iter().any(|id| id == "realm-column-nullable"));
    }
}
