//! Every rule realmguard knows, as one [`Rule`] type (as squawk has one enum): its kebab-case id,
//! default severity, the command that evaluates it and its place in the repair order. The config
//! (`[rules]` levels, unknown ids rejected), `verify`, `lint`, the ignore comments and the
//! backfill's goal all use it, so scripts can match on stable ids (lint's follow squawk's).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Off,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Off => "off",
        })
    }
}

/// Which command evaluates a rule. The realm rules are judged by both: `verify` on the live
/// catalog, `lint` on the migration files that would produce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluator {
    Verify,
    Lint,
    Both,
    /// `audit`, over the application's queries.
    Audit,
}

impl Evaluator {
    pub fn verify(self) -> bool {
        matches!(self, Evaluator::Verify | Evaluator::Both)
    }

    pub fn lint(self) -> bool {
        matches!(self, Evaluator::Lint | Evaluator::Both)
    }
}

/// Declares [`Rule`] and its table in one place: variant, kebab-case id, default severity, the
/// command that evaluates it, and its place in the repair order (`None`: no fix to order).
macro_rules! rules {
    ($($variant:ident = $id:literal, $sev:ident, $eval:ident, $repair:expr;)*) => {
        /// Every rule realmguard knows. The kebab-case id is what the config's `[rules]`, ignore
        /// comments, `--format json` and JUnit use; it never changes once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($variant,)*
        }

        impl Rule {
            /// Every rule: verify's in the contract's order, lint's, then the profile rules.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            pub const fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)*
                }
            }

            pub const fn default_severity(self) -> Severity {
                match self {
                    $(Rule::$variant => Severity::$sev,)*
                }
            }

            pub const fn evaluator(self) -> Evaluator {
                match self {
                    $(Rule::$variant => Evaluator::$eval,)*
                }
            }

            /// The order in which fixes apply cleanly (lower first); `None` for rules that carry
            /// no fix.
            pub const fn repair_rank(self) -> Option<u8> {
                match self {
                    $(Rule::$variant => $repair,)*
                }
            }
        }
    };
}

// Repair order: columns first, then the foreign keys move to composite keys (building the parent
// keys they need) so that old keys are free to be swapped, then the rest.
rules! {
    RealmColumnMissing = "realm-column-missing", Error, Verify, Some(0);
    RealmColumnNullable = "realm-column-nullable", Error, Both, Some(1);
    CompositePrimaryKey = "composite-primary-key", Error, Both, Some(5);
    UniqueWithoutRealm = "unique-without-realm", Error, Both, Some(6);
    RealmFkMissing = "realm-fk-missing", Error, Verify, Some(2);
    FkMissingRealm = "fk-missing-realm", Error, Both, Some(3);
    FkNotCascade = "fk-not-cascade", Error, Both, Some(4);
    FkCrossRealm = "fk-cross-realm", Warning, Verify, Some(10);
    ConstraintNotValidated = "constraint-not-validated", Error, Verify, Some(7);
    InvalidIndex = "invalid-index", Error, Verify, Some(8);
    FkUnindexed = "fk-unindexed", Warning, Verify, Some(9);
    RealmsTableMissing = "realms-table-missing", Warning, Verify, Some(11);
    // The RLS rules run only under `verify --rls` / `[rls] enabled` (or a level in `[rules]`); the
    // severity here is their default there. Fixes: policies first (enabling RLS with no policy
    // hides every row), then ENABLE and FORCE, then the role and the views.
    RlsDisabled = "rls-disabled", Error, Verify, Some(17);
    RlsNotForced = "rls-not-forced", Error, Verify, Some(18);
    RlsPolicyMissing = "rls-policy-missing", Warning, Verify, Some(12);
    RlsPolicyNotRealm = "rls-policy-not-realm", Error, Verify, Some(13);
    RlsPermissiveBypass = "rls-permissive-bypass", Error, Verify, Some(14);
    RlsSettingPerRow = "rls-setting-per-row", Warning, Verify, Some(15);
    RlsSettingMissingOk = "rls-setting-missing-ok", Warning, Verify, Some(16);
    RlsAppRoleBypass = "rls-app-role-bypass", Error, Verify, Some(19);
    RlsViewDefiner = "rls-view-definer", Error, Verify, Some(20);
    RequireConcurrentIndexCreation = "require-concurrent-index-creation", Error, Lint, None;
    RequireConcurrentIndexDeletion = "require-concurrent-index-deletion", Error, Lint, None;
    ConstraintMissingNotValid = "constraint-missing-not-valid", Error, Lint, None;
    AddingNotNullableField = "adding-not-nullable-field", Error, Lint, None;
    AddingRequiredField = "adding-required-field", Error, Lint, None;
    AddingFieldWithDefault = "adding-field-with-default", Error, Lint, None;
    ChangingColumnType = "changing-column-type", Error, Lint, None;
    DisallowedUniqueConstraint = "disallowed-unique-constraint", Error, Lint, None;
    BanConcurrentIndexCreationInTransaction = "ban-concurrent-index-creation-in-transaction", Error, Lint, None;
    RenamingColumn = "renaming-column", Warning, Lint, None;
    RenamingTable = "renaming-table", Warning, Lint, None;
    BanDropColumn = "ban-drop-column", Warning, Lint, None;
    ParseError = "parse-error", Error, Lint, None;
    TransactionNesting = "transaction-nesting", Error, Lint, None;
    BanUncommittedTransaction = "ban-uncommitted-transaction", Error, Lint, None;
    AddingForeignKeyConstraint = "adding-foreign-key-constraint", Error, Lint, None;
    AddingPrimaryKeyConstraint = "adding-primary-key-constraint", Error, Lint, None;
    AddingSerialPrimaryKeyField = "adding-serial-primary-key-field", Error, Lint, None;
    BanDropTable = "ban-drop-table", Warning, Lint, None;
    BanDropDatabase = "ban-drop-database", Error, Lint, None;
    BanDropNotNull = "ban-drop-not-null", Warning, Lint, None;
    BanTruncateCascade = "ban-truncate-cascade", Error, Lint, None;
    BanCharField = "ban-char-field", Warning, Lint, None;
    PreferBigintOverInt = "prefer-bigint-over-int", Warning, Lint, None;
    PreferBigintOverSmallint = "prefer-bigint-over-smallint", Warning, Lint, None;
    PreferIdentity = "prefer-identity", Warning, Lint, None;
    PreferTextField = "prefer-text-field", Warning, Lint, None;
    PreferTimestamptz = "prefer-timestamptz", Warning, Lint, None;
    RequireConcurrentPartitionDetach = "require-concurrent-partition-detach", Error, Lint, None;
    BanCreateDomainWithConstraint = "ban-create-domain-with-constraint", Error, Lint, None;
    BanDuplicateColumnAssignments = "ban-duplicate-column-assignments", Error, Lint, None;
    RequireTableSchema = "require-table-schema", Off, Lint, None;
    PreferRobustStmts = "prefer-robust-stmts", Off, Lint, None;
    IdentifierTooLong = "identifier-too-long", Error, Lint, None;
    RequireConcurrentReindex = "require-concurrent-reindex", Error, Lint, None;
    BanAlterDomainWithAddConstraint = "ban-alter-domain-with-add-constraint", Error, Lint, None;
    PreferRepack = "prefer-repack", Warning, Lint, None;
    RequireTimeoutSettings = "require-timeout-settings", Off, Lint, None;
    RequireEnumValueOrdering = "require-enum-value-ordering", Warning, Lint, None;
    QueryMissingRealmFilter = "query-missing-realm-filter", Error, Audit, None;
    JoinWithoutRealm = "join-without-realm", Error, Audit, None;
    InsertWithoutRealm = "insert-without-realm", Error, Audit, None;
    QueryMultiRealm = "query-multi-realm", Warning, Audit, None;
    RealmColumnUpdated = "realm-column-updated", Warning, Audit, None;
    SessionRealmSetting = "session-realm-setting", Warning, Audit, None;
    QueryOpaque = "query-opaque", Warning, Audit, None;
    BaselineStale = "baseline-stale", Warning, Audit, None;
    CitusFkOrdinal = "citus-fk-ordinal", Error, Verify, Some(21);
    CitusFkSetNull = "citus-fk-set-null", Error, Verify, Some(22);
    CitusRealmTypeMismatch = "citus-realm-type-mismatch", Error, Verify, Some(23);
    CitusReferenceToDistributed = "citus-reference-to-distributed", Error, Verify, Some(24);
    CitusStatementTrigger = "citus-statement-trigger", Error, Verify, Some(25);
    CitusRowTrigger = "citus-row-trigger", Warning, Verify, Some(26);
    CitusRule = "citus-rule", Error, Verify, Some(27);
    CitusIdentityInt = "citus-identity-int", Warning, Verify, Some(28);
    CitusNotDistributed = "citus-not-distributed", Warning, Verify, Some(29);
    CitusWrongDistributionColumn = "citus-wrong-distribution-column", Error, Verify, Some(30);
}

/// A set of extra rules `verify` evaluates only when asked (`--profile`, or `profile` in the
/// config): what a target platform enforces beyond the realm shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Citus with the realm column as distribution column (docs/citus.md).
    Citus,
}

/// When a profile rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Always (the realm shape rules).
    Always,
    /// Only under this profile.
    Profile(Profile),
    /// Whenever the database is a Citus coordinator (it has Citus's metadata), profile or not.
    CitusCoordinator,
}

impl Rule {
    /// When the rule is evaluated.
    pub fn gate(self) -> Gate {
        match self {
            Rule::CitusNotDistributed | Rule::CitusWrongDistributionColumn => {
                Gate::CitusCoordinator
            }
            r if r.id().starts_with("citus-") => Gate::Profile(Profile::Citus),
            _ => Gate::Always,
        }
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }

    /// The rules `verify` evaluates, in the contract's order.
    pub fn verify_rules() -> impl Iterator<Item = Rule> {
        Rule::ALL.iter().copied().filter(|r| r.evaluator().verify())
    }

    /// The rules whose passing is the backfill's goal: the composite shape, cascading and
    /// validated keys, valid indexes (the error-severity verify rules of the realm shape).
    pub fn backfill_goals() -> impl Iterator<Item = Rule> {
        Rule::verify_rules().filter(|r| {
            r.default_severity() == Severity::Error && !r.is_rls() && r.gate() == Gate::Always
        })
    }

    /// A row level security rule: off unless RLS checks are turned on (`verify --rls`,
    /// `[rls] enabled = true`) or the rule is given a level in `[rules]`.
    pub fn is_rls(self) -> bool {
        self.id().starts_with("rls-")
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// The default severity of a rule id, or `None` when no such rule exists.
pub fn default_severity(rule: &str) -> Option<Severity> {
    Rule::from_id(rule).map(Rule::default_severity)
}

pub fn is_known(rule: &str) -> bool {
    Rule::from_id(rule).is_some()
}

// Lint rule groups live here, with the rules, because the config reads them too (`[rules]`
// takes a group as a key) and the config must not depend on the lint driver.

/// Rule groups, usable wherever a rule id is.
pub const GROUPS: &[&str] = &["locking", "compatibility", "style", "realm", "correctness"];

/// The group of a lint rule (docs/lint.md lists them).
pub fn group(rule: Rule) -> &'static str {
    use Rule::*;
    match rule {
        RealmColumnNullable | CompositePrimaryKey | UniqueWithoutRealm | FkMissingRealm
        | FkNotCascade => "realm",
        RenamingColumn | RenamingTable | BanDropColumn | BanDropTable | BanDropNotNull => {
            "compatibility"
        }
        BanCharField
        | PreferBigintOverInt
        | PreferBigintOverSmallint
        | PreferIdentity
        | PreferTextField
        | PreferTimestamptz
        | RequireTableSchema
        | PreferRobustStmts
        | IdentifierTooLong => "style",
        ParseError
        | TransactionNesting
        | BanUncommittedTransaction
        | BanDropDatabase
        | BanTruncateCascade
        | BanDuplicateColumnAssignments
        | RequireEnumValueOrdering
        | BanConcurrentIndexCreationInTransaction => "correctness",
        _ => "locking",
    }
}

/// The lint rules, in table order.
pub fn lint_rules() -> impl Iterator<Item = Rule> {
    Rule::ALL.iter().copied().filter(|r| r.evaluator().lint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_kebab_case() {
        let mut all: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        for id in &all {
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{id}"
            );
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate rule id");
    }

    #[test]
    fn defaults_follow_the_contract() {
        assert_eq!(default_severity("fk-cross-realm"), Some(Severity::Warning));
        // Its level when RLS checks are on; off otherwise (see `Config::severity`).
        assert_eq!(default_severity("rls-disabled"), Some(Severity::Error));
        assert_eq!(
            default_severity("rls-setting-per-row"),
            Some(Severity::Warning)
        );
        assert_eq!(
            default_severity("composite-primary-key"),
            Some(Severity::Error)
        );
        assert_eq!(default_severity("no-such-rule"), None);
    }

    #[test]
    fn repair_ranks_are_a_total_order_of_the_rules_with_fixes() {
        let mut ranks: Vec<u8> = Rule::ALL.iter().filter_map(|r| r.repair_rank()).collect();
        ranks.sort();
        assert_eq!(ranks, (0..ranks.len() as u8).collect::<Vec<_>>());
        assert!(Rule::verify_rules().all(|r| r.repair_rank().is_some()));
    }

    #[test]
    fn the_backfill_goal_is_the_error_level_shape_rules() {
        let goals: Vec<&str> = Rule::backfill_goals().map(Rule::id).collect();
        assert_eq!(
            goals,
            [
                "realm-column-missing",
                "realm-column-nullable",
                "composite-primary-key",
                "unique-without-realm",
                "realm-fk-missing",
                "fk-missing-realm",
                "fk-not-cascade",
                "constraint-not-validated",
                "invalid-index",
            ]
        );
    }
}
