//! One file per rule, each a plain function (squawk's shape): statement rules look at one parsed
//! statement with the schema as it stood just before it; realm rules look at the schema the whole
//! migration set builds, and point at the statement that introduced the problem.

use super::model::{ident, last_ident, object_key, Origin, Schema, Table};
use crate::config::Config;
use sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef, DataType, ObjectName, ObjectType,
    RenameTableNameKind, Set, Statement, TableConstraint,
};
use sqlparser::tokenizer::Span;
use std::collections::{HashMap, HashSet};

pub mod adding_field_with_default;
pub mod adding_foreign_key_constraint;
pub mod adding_not_nullable_field;
pub mod adding_primary_key_constraint;
pub mod adding_required_field;
pub mod adding_serial_primary_key_field;
pub mod ban_alter_domain_with_add_constraint;
pub mod ban_char_field;
pub mod ban_concurrent_index_creation_in_transaction;
pub mod ban_create_domain_with_constraint;
pub mod ban_drop_column;
pub mod ban_drop_database;
pub mod ban_drop_not_null;
pub mod ban_drop_table;
pub mod ban_duplicate_column_assignments;
pub mod ban_truncate_cascade;
pub mod ban_uncommitted_transaction;
pub mod changing_column_type;
pub mod composite_primary_key;
pub mod constraint_missing_not_valid;
pub mod disallowed_unique_constraint;
pub mod fk_missing_realm;
pub mod fk_not_cascade;
pub mod identifier_too_long;
pub mod parse_error;
pub mod prefer_bigint_over_int;
pub mod prefer_bigint_over_smallint;
pub mod prefer_identity;
pub mod prefer_repack;
pub mod prefer_robust_stmts;
pub mod prefer_text_field;
pub mod prefer_timestamptz;
pub mod realm_column_nullable;
pub mod renaming_column;
pub mod renaming_table;
pub mod require_concurrent_index_creation;
pub mod require_concurrent_index_deletion;
pub mod require_concurrent_partition_detach;
pub mod require_concurrent_reindex;
pub mod require_enum_value_ordering;
pub mod require_table_schema;
pub mod require_timeout_settings;
pub mod transaction_nesting;
pub mod unique_without_realm;

/// What a statement rule found: the span (relative to the statement's own text, as sqlparser
/// reports it) points at the offending part; `None` means the statement's start.
#[derive(Debug, Clone)]
pub struct Violation {
    pub rule: &'static str,
    pub message: String,
    pub help: String,
    pub span: Option<Span>,
}

/// What a realm rule found, located at the statement that introduced it.
#[derive(Debug, Clone)]
pub struct RealmViolation {
    pub rule: &'static str,
    pub message: String,
    pub help: String,
    pub origin: Origin,
}

/// Everything a statement rule may look at.
pub struct Ctx<'a> {
    /// The schema as it stood before this statement.
    pub schema: &'a Schema,
    /// What the file did before this statement.
    pub so_far: &'a FileSoFar,
    /// The file runs in one transaction (no `-- realmguard:no-transaction` directive).
    pub wrapped: bool,
    /// This statement runs inside a transaction block: the file's own, or a `BEGIN` the
    /// statements before it opened (in a no-transaction file).
    pub in_transaction: bool,
    /// `DROP INDEX CONCURRENTLY` (sqlparser does not parse the keyword; the driver strips it).
    pub drop_concurrently: bool,
    /// The command line's runner and server version.
    pub opts: &'a crate::lint::LintOptions,
}

impl Ctx<'_> {
    /// "Existing table" means not created earlier in the same file: a table the application is
    /// already using, so a strong lock or a rewrite on it is felt in production.
    pub fn existing(&self, table: &ObjectName) -> bool {
        !self.so_far.created.contains(&object_key(table))
    }

    /// `stmt` as an ALTER TABLE of a table that existed before this file: what most lock rules
    /// judge (altering a table created in the same file locks nobody out).
    pub fn alter_of_existing<'s>(&self, stmt: &'s Statement) -> Option<&'s AlterTable> {
        match stmt {
            Statement::AlterTable(at) if self.existing(&at.name) => Some(at),
            _ => None,
        }
    }
}

/// What one file has done so far that changes how its later statements are judged: the tables
/// and indexes it created (not "existing"), the constraints it added NOT VALID (validating
/// them in the same transaction defeats the purpose), and the transaction block it is in.
#[derive(Debug, Default)]
pub struct FileSoFar {
    /// The transaction block the next statement runs in: `Some(0)` for a transaction-wrapped
    /// file's own, `Some(n)` for the n-th `BEGIN` of the file, `None` outside any block.
    pub tx: Option<usize>,
    /// `SET lock_timeout` / `SET statement_timeout` seen.
    pub lock_timeout: bool,
    pub statement_timeout: bool,
    /// Lock-taking statements seen (require-timeout-settings reports the first).
    pub locking_seen: usize,
    /// Blocks opened so far, to number the next one.
    blocks: usize,
    /// The statement index of the `BEGIN` that opened the current block.
    pub tx_began_at: Option<usize>,
    /// Tables created earlier in this file (keys): not "existing", so nothing can be blocked.
    pub created: HashSet<String>,
    /// Indexes created earlier in this file (keys).
    pub indexes: HashSet<String>,
    /// Constraints added `NOT VALID` earlier in this file: (table key, constraint name) → the
    /// transaction block it was added in.
    pub not_valid: HashMap<(String, String), Option<usize>>,
}

impl FileSoFar {
    /// A file about to be walked: a transaction-wrapped one starts inside its block.
    pub fn new(wrapped: bool) -> FileSoFar {
        FileSoFar {
            tx: wrapped.then_some(0),
            ..FileSoFar::default()
        }
    }

    /// Take `stmt` (the file's statement number `si`) into account; `schema` is the schema as
    /// it stood before it.
    pub fn track(&mut self, stmt: &Statement, si: usize, schema: &Schema) {
        if require_timeout_settings::takes_lock(stmt) {
            self.locking_seen += 1;
        }
        match stmt {
            Statement::Set(Set::SingleAssignment { variable, .. }) => {
                match last_ident(variable).map(ident).as_deref() {
                    Some("lock_timeout") => self.lock_timeout = true,
                    Some("statement_timeout") => self.statement_timeout = true,
                    _ => {}
                }
            }
            Statement::StartTransaction { .. } => {
                self.blocks += 1;
                self.tx = Some(self.blocks);
                self.tx_began_at = Some(si);
            }
            Statement::Commit { .. } | Statement::Rollback { .. } => {
                self.tx = None;
                self.tx_began_at = None;
            }
            // `CREATE TABLE IF NOT EXISTS` on a table an earlier migration made creates nothing.
            Statement::CreateTable(ct) if schema.table(&object_key(&ct.name)).is_none() => {
                self.created.insert(object_key(&ct.name));
            }
            Statement::CreateIndex(ci) => {
                if let Some(n) = ci.name.as_ref().and_then(last_ident) {
                    let table = object_key(&ci.table_name);
                    let schema = table.split_once('.').map_or("public", |(s, _)| s);
                    self.indexes.insert(format!("{schema}.{}", ident(n)));
                }
            }
            Statement::AlterTable(at) => {
                let key = object_key(&at.name);
                for op in &at.operations {
                    match op {
                        AlterTableOperation::AddConstraint {
                            constraint,
                            not_valid: true,
                        } => {
                            let name = match constraint {
                                TableConstraint::ForeignKey(fk) => fk.name.as_ref(),
                                TableConstraint::Check(c) => c.name.as_ref(),
                                _ => None,
                            };
                            if let Some(n) = name {
                                self.not_valid.insert((key.clone(), ident(n)), self.tx);
                            }
                        }
                        AlterTableOperation::RenameTable { table_name }
                            if self.created.contains(&key) =>
                        {
                            let new = match table_name {
                                RenameTableNameKind::As(n) | RenameTableNameKind::To(n) => n,
                            };
                            let schema = key.split_once('.').map_or("public", |(s, _)| s);
                            if let Some(n) = last_ident(new) {
                                self.created.insert(format!("{schema}.{}", ident(n)));
                            }
                        }
                        _ => {}
                    }
                }
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => {
                for n in names {
                    self.created.remove(&object_key(n));
                }
            }
            _ => {}
        }
    }
}

/// Every statement rule, in a fixed order.
pub fn check_statement(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    require_concurrent_index_creation::check(ctx, stmt, out);
    require_concurrent_index_deletion::check(ctx, stmt, out);
    ban_concurrent_index_creation_in_transaction::check(ctx, stmt, out);
    constraint_missing_not_valid::check(ctx, stmt, out);
    adding_not_nullable_field::check(ctx, stmt, out);
    adding_required_field::check(ctx, stmt, out);
    adding_field_with_default::check(ctx, stmt, out);
    changing_column_type::check(ctx, stmt, out);
    disallowed_unique_constraint::check(ctx, stmt, out);
    renaming_column::check(ctx, stmt, out);
    renaming_table::check(ctx, stmt, out);
    ban_drop_column::check(ctx, stmt, out);
    transaction_nesting::check(ctx, stmt, out);
    adding_foreign_key_constraint::check(ctx, stmt, out);
    adding_primary_key_constraint::check(ctx, stmt, out);
    adding_serial_primary_key_field::check(ctx, stmt, out);
    ban_drop_table::check(ctx, stmt, out);
    ban_drop_database::check(ctx, stmt, out);
    ban_drop_not_null::check(ctx, stmt, out);
    ban_truncate_cascade::check(ctx, stmt, out);
    ban_char_field::check(ctx, stmt, out);
    prefer_bigint_over_int::check(ctx, stmt, out);
    prefer_bigint_over_smallint::check(ctx, stmt, out);
    prefer_identity::check(ctx, stmt, out);
    prefer_text_field::check(ctx, stmt, out);
    prefer_timestamptz::check(ctx, stmt, out);
    require_concurrent_partition_detach::check(ctx, stmt, out);
    ban_create_domain_with_constraint::check(ctx, stmt, out);
    ban_duplicate_column_assignments::check(ctx, stmt, out);
    require_table_schema::check(ctx, stmt, out);
    prefer_robust_stmts::check(ctx, stmt, out);
    identifier_too_long::check(ctx, stmt, out);
    prefer_repack::check(ctx, stmt, out);
    require_timeout_settings::check(ctx, stmt, out);
    require_enum_value_ordering::check(ctx, stmt, out);
}

/// The column-type rules' one shape (ban-char-field, prefer-identity, prefer-bigint-over-*,
/// prefer-text-field, prefer-timestamptz): a violation `id` at each column `stmt` defines whose
/// type `bad` matches, saying `column "c" is <type>: <why>`.
pub fn column_type_rule(
    stmt: &Statement,
    out: &mut Vec<Violation>,
    id: &'static str,
    bad: fn(&DataType) -> bool,
    why: &str,
    help: &str,
) {
    for c in defined_columns(stmt) {
        if bad(&c.data_type) {
            out.push(Violation {
                rule: id,
                message: format!("column \"{}\" is {}: {why}", c.name.value, c.data_type),
                help: help.into(),
                span: Some(c.name.span),
            });
        }
    }
}

/// The columns a statement defines: every column of a CREATE TABLE, and those ADD COLUMN adds.
pub fn defined_columns(stmt: &Statement) -> Vec<&ColumnDef> {
    match stmt {
        Statement::CreateTable(ct) => ct.columns.iter().collect(),
        Statement::AlterTable(at) => at
            .operations
            .iter()
            .filter_map(|op| match op {
                AlterTableOperation::AddColumn { column_def, .. } => Some(column_def),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The lower-cased name of a type sqlparser does not know (`serial`, `bigserial`, …).
pub fn custom_type(t: &DataType) -> Option<String> {
    match t {
        DataType::Custom(n, _) => last_ident(n).map(|i| i.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// `serial`, `bigserial`, `smallserial` and their aliases.
pub fn is_serial(t: &DataType) -> bool {
    custom_type(t).is_some_and(|n| {
        matches!(
            n.as_str(),
            "serial" | "serial2" | "serial4" | "serial8" | "bigserial" | "smallserial"
        )
    })
}

/// Statements sqlparser cannot parse, judged by their first words (upper-cased): `true` when
/// the kind is one the rules know (`REINDEX`, `CLUSTER`, `ALTER DOMAIN`), so that it costs no
/// `parse-error`.
pub fn check_unparsed(ctx: &Ctx, words: &[&str], out: &mut Vec<Violation>) -> bool {
    let known = matches!(
        words,
        ["REINDEX", ..] | ["CLUSTER", ..] | ["ALTER", "DOMAIN", ..]
    );
    require_concurrent_reindex::check_words(ctx, words, out);
    ban_alter_domain_with_add_constraint::check_words(ctx, words, out);
    prefer_repack::check_words(ctx, words, out);
    known
}

/// The realm rules over the finished schema.
pub fn check_schema(schema: &Schema, cfg: &Config, out: &mut Vec<RealmViolation>) {
    let realm = Realm::new(cfg);
    // Deterministic order whatever the hash map's.
    let mut tables: Vec<&Table> = schema.tables.values().collect();
    tables.sort_by_key(|t| (t.origin.file, t.origin.stmt, t.key.clone()));
    for t in tables {
        if !realm.checked(t) {
            continue;
        }
        composite_primary_key::check(&realm, t, out);
        realm_column_nullable::check(&realm, t, out);
        unique_without_realm::check(&realm, t, out);
        fk_missing_realm::check(&realm, schema, t, out);
        fk_not_cascade::check(&realm, schema, t, out);
    }
}

/// The realm settings of the config, applied to the model the way verify applies them to the
/// catalog (the verify rules table in README.md).
pub struct Realm<'a> {
    columns: &'a crate::config::RealmColumns,
    cfg: &'a Config,
}

impl<'a> Realm<'a> {
    pub fn new(cfg: &'a Config) -> Self {
        Realm {
            columns: &cfg.realm_column,
            cfg,
        }
    }

    /// `t`'s realm column: the first name of the config's list it has, else the first.
    pub fn column(&self, t: &Table) -> &'a str {
        self.columns.of(|n| t.column(n).is_some())
    }

    fn matches(pattern: &str, t: &Table) -> bool {
        crate::names::names_table(pattern, t.schema(), t.name())
    }

    /// In a checked schema and not excluded.
    pub fn checked(&self, t: &Table) -> bool {
        let schema_ok = if self.cfg.schemas.is_empty() {
            t.schema() != "realmguard"
        } else {
            self.cfg.schemas.iter().any(|s| s == t.schema())
        };
        schema_ok && !self.cfg.exclude.iter().any(|p| Self::matches(p, t))
    }

    pub fn is_realms_table(&self, t: &Table) -> bool {
        !self.cfg.realms_table.is_empty() && Self::matches(&self.cfg.realms_table, t)
    }

    /// Has the realm column (or is listed in `realm_scoped`), is not a partition, not the realms
    /// table itself, and is checked.
    pub fn scoped(&self, t: &Table) -> bool {
        self.checked(t)
            && !t.partition
            && !self.is_realms_table(t)
            && (t.column(self.column(t)).is_some()
                || self.cfg.realm_scoped.iter().any(|p| Self::matches(p, t)))
    }
}

/// A table as users write it: without `public.`.
pub fn display_table(key: &str) -> String {
    key.strip_prefix("public.").unwrap_or(key).to_string()
}

/// `(a, b)`.
pub fn column_list<S: AsRef<str>>(cols: &[S]) -> String {
    let v: Vec<&str> = cols.iter().map(|c| c.as_ref()).collect();
    format!("({})", v.join(", "))
}

#[cfg(test)]
pub mod test_support {
    //! Rule tests lint in-memory files through the real driver and snapshot the text a user sees.
    use crate::config::Config;
    use crate::lint::{lint_sources, render, Source};

    /// The column-type style rules. Rule fixtures use `int` and `timestamp` freely: each rule's
    /// tests judge that rule, so these are off in them except in their own tests (`*_all`).
    pub const TYPE_STYLE: &[&str] = &[
        "ban-char-field",
        "prefer-bigint-over-int",
        "prefer-bigint-over-smallint",
        "prefer-identity",
        "prefer-text-field",
        "prefer-timestamptz",
    ];

    /// The default config with the column-type style rules off.
    pub fn fixture_config() -> Config {
        let mut cfg = Config::default();
        for id in TYPE_STYLE {
            cfg.rules
                .insert(id.to_string(), crate::rules::Severity::Off);
        }
        cfg
    }

    /// Lint `files` (name, SQL) with [`fixture_config`]; the rendered text report.
    pub fn lint_text(files: &[(&str, &str)]) -> String {
        lint_text_cfg(files, &fixture_config())
    }

    /// One file `0001_test.sql`, every rule at its default level; the text report.
    pub fn lint_text_all(files: &[(&str, &str)]) -> String {
        lint_text_cfg(files, &Config::default())
    }

    /// The ids found in one file, every rule at its default level.
    pub fn rules_of_all(sql: &str) -> Vec<String> {
        let sources = vec![Source::new("0001_test.sql".into(), sql.to_string())];
        lint_sources(sources, &Config::default())
            .findings
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    pub fn lint_text_cfg(files: &[(&str, &str)], cfg: &Config) -> String {
        let sources: Vec<Source> = files
            .iter()
            .map(|(n, t)| Source::new(n.to_string(), t.to_string()))
            .collect();
        let report = lint_sources(sources, cfg);
        let mut out = Vec::new();
        render::text(&report, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The rule ids found, in report order.
    pub fn rules(files: &[(&str, &str)]) -> Vec<String> {
        let sources: Vec<Source> = files
            .iter()
            .map(|(n, t)| Source::new(n.to_string(), t.to_string()))
            .collect();
        lint_sources(sources, &fixture_config())
            .findings
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    /// The ids found for a single file named `0001_test.sql`.
    pub fn rules_of(sql: &str) -> Vec<String> {
        rules(&[("0001_test.sql", sql)])
    }

    /// [`rules_of`] under command-line options (applied to [`fixture_config`] as the command
    /// applies them).
    pub fn rules_of_opts(sql: &str, opts: &crate::lint::LintOptions) -> Vec<String> {
        let sources = vec![Source::new("0001_test.sql".into(), sql.to_string())];
        crate::lint::lint_sources_with(sources, &opts.apply(&fixture_config()), opts)
            .findings
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::default_severity;

    #[test]
    fn every_id_lint_reports_is_a_known_rule() {
        let mut ids = Vec::new();
        for id in [
            super::require_concurrent_index_creation::ID,
            super::require_concurrent_index_deletion::ID,
            super::ban_concurrent_index_creation_in_transaction::ID,
            super::constraint_missing_not_valid::ID,
            super::adding_not_nullable_field::ID,
            super::adding_required_field::ID,
            super::adding_field_with_default::ID,
            super::changing_column_type::ID,
            super::disallowed_unique_constraint::ID,
            super::renaming_column::ID,
            super::renaming_table::ID,
            super::ban_drop_column::ID,
            super::parse_error::ID,
            super::transaction_nesting::ID,
            super::ban_uncommitted_transaction::ID,
            super::adding_foreign_key_constraint::ID,
            super::adding_primary_key_constraint::ID,
            super::adding_serial_primary_key_field::ID,
            super::ban_drop_table::ID,
            super::ban_drop_database::ID,
            super::ban_drop_not_null::ID,
            super::ban_truncate_cascade::ID,
            super::ban_char_field::ID,
            super::prefer_bigint_over_int::ID,
            super::prefer_bigint_over_smallint::ID,
            super::prefer_identity::ID,
            super::prefer_text_field::ID,
            super::prefer_timestamptz::ID,
            super::require_concurrent_partition_detach::ID,
            super::ban_create_domain_with_constraint::ID,
            super::ban_duplicate_column_assignments::ID,
            super::require_table_schema::ID,
            super::prefer_robust_stmts::ID,
            super::identifier_too_long::ID,
            super::require_concurrent_reindex::ID,
            super::ban_alter_domain_with_add_constraint::ID,
            super::prefer_repack::ID,
            super::require_timeout_settings::ID,
            super::require_enum_value_ordering::ID,
            super::composite_primary_key::ID,
            super::realm_column_nullable::ID,
            super::unique_without_realm::ID,
            super::fk_missing_realm::ID,
            super::fk_not_cascade::ID,
        ] {
            assert!(default_severity(id).is_some(), "{id}");
            ids.push(id);
        }
        let mut lint_rules: Vec<&str> = crate::rules::Rule::ALL
            .iter()
            .filter(|r| r.evaluator().lint())
            .map(|r| r.id())
            .collect();
        ids.sort();
        lint_rules.sort();
        assert_eq!(
            ids, lint_rules,
            "Rule::evaluator() and lint's rules disagree"
        );
    }
}
