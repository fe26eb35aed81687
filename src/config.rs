//! `schema/realmguard.toml`: every key optional, unknown keys and unknown rule ids rejected with
//! a message that names them (exit 2), so a typo never silently turns a check off.

use crate::rules::{self, Profile, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const DEFAULT_PATH: &str = "schema/realmguard.toml";

/// A config file that cannot be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: Invalid,
    },
}

/// What is wrong with a config file's text; each names the key or value to fix.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// toml's message spans several lines with a caret; this is its first clause on one line.
    #[error("{message}")]
    Toml { message: String },
    #[error("unknown rule id `{rule}` in [rules]; see `realmguard verify --help` and `realmguard explain` for the ids, lint groups are {}", rules::GROUPS.join(", "))]
    UnknownRule { rule: String },
    #[error("realm_column must not be empty")]
    EmptyRealmColumn,
    #[error("realm_column lists `{name}` twice")]
    DuplicateRealmColumn { name: String },
    #[error(
        "realm_setting `{setting}` must be a custom setting name with a dot, like \"app.realm_id\""
    )]
    BadRealmSetting { setting: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The column that carries the realm: one name, or a list of which each table uses the
    /// first it has (`realm_column = ["realm_id", "realmId"]`).
    pub realm_column: RealmColumns,
    /// The realms table ("schema.table" or a name resolved by search_path); "" turns the
    /// realm-fk rule off.
    pub realms_table: String,
    /// Schemas to check; empty = every non-system schema except realmguard's own.
    pub schemas: Vec<String>,
    /// Tables that must be realm-scoped even though they lack the column (legacy).
    pub realm_scoped: Vec<String>,
    /// Tables never checked ("schema.table" or "table").
    pub exclude: Vec<String>,
    /// Per-rule level overrides.
    pub rules: BTreeMap<String, Severity>,
    pub backfill: BackfillConfig,
    /// The session setting the application sets to its realm (read by RLS policies; audit checks
    /// that it is set transaction-locally).
    pub realm_setting: String,
    pub rls: RlsConfig,
    pub audit: AuditConfig,
    /// Extra rules for a target platform (`profile = "citus"`); `verify --profile` sets it too.
    pub profile: Option<Profile>,
}

/// `[rls]`: row level security as a second wall between realms (docs/rls.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlsConfig {
    /// Run the `rls-*` rules in `verify` and `check` (as `--rls` does).
    pub enabled: bool,
    /// The role the application connects as; "" = not stated (the role checks are skipped and
    /// every view counts as readable).
    pub app_role: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Query files and directories `audit` reads by default, and `check` audits when set.
    pub paths: Vec<std::path::PathBuf>,
    /// The baseline file ("" : none); read when it exists, written by `audit --write-baseline`.
    pub baseline: String,
}

/// `realm_column`: the names a realm column may have, in order of preference. A table's realm
/// column is the first of them it has; a table that has none (a legacy table) gets the first.
/// It derefs to that first name, which is what code that adds the column uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmColumns(Vec<String>);

impl RealmColumns {
    /// Every accepted name, the preferred first.
    pub fn all(&self) -> &[String] {
        &self.0
    }

    /// The preferred name: the one a table without a realm column gets.
    pub fn first(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or("")
    }

    /// The realm column of a table that has the columns `has` says yes to: the first listed
    /// name it has, else the first name.
    pub fn of(&self, has: impl Fn(&str) -> bool) -> &str {
        self.0
            .iter()
            .map(String::as_str)
            .find(|n| has(n))
            .unwrap_or_else(|| self.first())
    }

    /// Whether `name` is one of the accepted names.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }
}

impl std::ops::Deref for RealmColumns {
    type Target = str;
    fn deref(&self) -> &str {
        self.first()
    }
}

impl std::fmt::Display for RealmColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.first())
    }
}

impl From<&str> for RealmColumns {
    fn from(s: &str) -> Self {
        RealmColumns(vec![s.to_string()])
    }
}

impl From<Vec<String>> for RealmColumns {
    fn from(v: Vec<String>) -> Self {
        RealmColumns(v)
    }
}

impl PartialEq<&str> for RealmColumns {
    fn eq(&self, other: &&str) -> bool {
        self.0.len() == 1 && self.0[0] == *other
    }
}

impl<'de> Deserialize<'de> for RealmColumns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a column name or a list of column names")]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::One(s) => RealmColumns(vec![s]),
            Raw::Many(v) => RealmColumns(v),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Realm given to rows of root tables that have no parent to derive it from.
    pub default_realm: String,
    /// For a child table with several foreign-key paths to realm tables: which foreign key
    /// (constraint name) to derive the realm through, keyed by table.
    pub parent: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            realm_column: "realm_id".into(),
            realms_table: "realms".into(),
            schemas: Vec::new(),
            realm_scoped: Vec::new(),
            exclude: Vec::new(),
            rules: BTreeMap::new(),
            backfill: BackfillConfig::default(),
            realm_setting: "app.realm_id".into(),
            rls: RlsConfig::default(),
            audit: AuditConfig::default(),
            profile: None,
        }
    }
}

impl Default for BackfillConfig {
    fn default() -> Self {
        BackfillConfig {
            default_realm: "hub".into(),
            parent: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Load `path`, or the default path when it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, Error> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| Error::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Self::parse(&text).map_err(|source| Error::Invalid {
                    path: p.to_path_buf(),
                    source,
                })
            }
            None if Path::new(DEFAULT_PATH).exists() => Self::load(Some(Path::new(DEFAULT_PATH))),
            None => Ok(Config::default()),
        }
    }

    pub fn parse(text: &str) -> Result<Config, Invalid> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines with a caret; keep the first clause on one line.
            Invalid::Toml {
                message: e.message().trim().to_string(),
            }
        })?;
        // A lint group's level applies to each of its rules that has no level of its own
        // (docs/lint.md; the realm group's rules are verify's too).
        use crate::rules::{group, lint_rules, GROUPS};
        for g in GROUPS {
            if let Some(level) = cfg.rules.remove(*g) {
                for r in lint_rules().filter(|r| group(*r) == *g) {
                    cfg.rules.entry(r.id().to_string()).or_insert(level);
                }
            }
        }
        for rule in cfg.rules.keys() {
            if !rules::is_known(rule) {
                return Err(Invalid::UnknownRule { rule: rule.clone() });
            }
        }
        let names = cfg.realm_column.all();
        if names.is_empty() || names.iter().any(String::is_empty) {
            return Err(Invalid::EmptyRealmColumn);
        }
        if let Some(dup) = names
            .iter()
            .enumerate()
            .find_map(|(i, n)| names[..i].contains(n).then_some(n))
        {
            return Err(Invalid::DuplicateRealmColumn { name: dup.clone() });
        }
        // A custom setting needs a dot (`app.realm_id`); PostgreSQL refuses others at runtime.
        if !cfg.realm_setting.contains('.') || cfg.realm_setting.contains('\'') {
            return Err(Invalid::BadRealmSetting {
                setting: cfg.realm_setting.clone(),
            });
        }
        Ok(cfg)
    }

    /// Effective severity of a rule: config override, else the rule's default; the `rls-*` rules
    /// default to `off` unless `[rls] enabled` (or `--rls`) turns them on.
    pub fn severity(&self, rule: &str) -> Severity {
        if let Some(s) = self.rules.get(rule) {
            return *s;
        }
        match rules::Rule::from_id(rule) {
            Some(r) if r.is_rls() && !self.rls.enabled => Severity::Off,
            Some(r) => r.default_severity(),
            None => Severity::Error,
        }
    }

    /// Whether any RLS rule will run, so that verify reads policies, roles and views.
    pub fn rls_catalog_needed(&self) -> bool {
        rules::Rule::ALL
            .iter()
            .any(|r| r.is_rls() && self.severity(r.id()) != Severity::Off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.realm_column, "realm_id");
        assert_eq!(c.realms_table, "realms");
        assert_eq!(c.backfill.default_realm, "hub");
        assert_eq!(c.severity("fk-cross-realm"), Severity::Warning);
    }

    #[test]
    fn levels_override_defaults() {
        let c = Config::parse("[rules]\nfk-cross-realm = \"error\"\nrls-disabled = \"warning\"\n")
            .unwrap();
        assert_eq!(c.severity("fk-cross-realm"), Severity::Error);
        assert_eq!(c.severity("rls-disabled"), Severity::Warning);
    }

    #[test]
    fn realm_column_is_a_name_or_a_list() {
        let c = Config::parse("realm_column = \"tenant\"").unwrap();
        assert_eq!(c.realm_column.all(), ["tenant"]);
        let c = Config::parse("realm_column = [\"realm_id\", \"realmId\"]").unwrap();
        assert_eq!(c.realm_column.all(), ["realm_id", "realmId"]);
        assert_eq!(c.realm_column.first(), "realm_id");
        assert_eq!(c.realm_column.of(|n| n == "realmId"), "realmId");
        assert_eq!(
            c.realm_column.of(|n| n == "realm_id" || n == "realmId"),
            "realm_id"
        );
        assert_eq!(c.realm_column.of(|_| false), "realm_id");
        for bad in [
            "realm_column = []",
            "realm_column = [\"\"]",
            "realm_column = [\"a\", \"a\"]",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
        assert!(Config::parse("realm_column = 3").is_err());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("realm_colum = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("realm_colum"), "{err}");
    }

    #[test]
    fn unknown_rule_is_named() {
        let err = Config::parse("[rules]\nno-such-rule = \"off\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no-such-rule"), "{err}");
    }

    #[test]
    fn a_group_level_applies_to_its_rules_without_their_own() {
        let c =
            Config::parse("[rules]\nstyle = \"off\"\nprefer-timestamptz = \"error\"\n").unwrap();
        assert_eq!(c.severity("prefer-text-field"), Severity::Off);
        assert_eq!(c.severity("prefer-timestamptz"), Severity::Error);
        assert_eq!(c.severity("ban-drop-column"), Severity::Warning);
        assert!(!c.rules.contains_key("style"));
    }

    #[test]
    fn rls_rules_are_off_until_turned_on() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.realm_setting, "app.realm_id");
        assert_eq!(c.severity("rls-disabled"), Severity::Off);
        assert!(!c.rls_catalog_needed());
        let c = Config::parse(
            "[rls]\nenabled = true\napp_role = \"app\"\n[rules]\nrls-not-forced = \"off\"",
        )
        .unwrap();
        assert_eq!(c.rls.app_role, "app");
        assert_eq!(c.severity("rls-disabled"), Severity::Error);
        assert_eq!(c.severity("rls-setting-per-row"), Severity::Warning);
        assert_eq!(c.severity("rls-not-forced"), Severity::Off);
        assert!(c.rls_catalog_needed());
        let err = Config::parse("[rls]\nenable = true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("enable"), "{err}");
        assert!(Config::parse("realm_setting = \"realm\"").is_err());
    }

    #[test]
    fn profile_is_read_and_checked() {
        assert_eq!(Config::parse("").unwrap().profile, None);
        assert_eq!(
            Config::parse("profile = \"citus\"").unwrap().profile,
            Some(Profile::Citus)
        );
        assert!(Config::parse("profile = \"vitess\"").is_err());
    }

    #[test]
    fn bad_level_is_rejected() {
        assert!(Config::parse("[rules]\nfk-cross-realm = \"loud\"").is_err());
    }
}
