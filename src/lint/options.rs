//! What `realmguard lint` is asked to check beyond the config: `--include`/`--exclude` (rule ids
//! or groups) and `--assume-runner`. They resolve into rule levels on top of the config's
//! `[rules]`, so the driver knows only levels.

use crate::config::Config;
use crate::rules::{Rule, Severity};

/// Which tool will run the migrations: realmguard's migrate sets `lock_timeout` and resumes a
/// no-transaction file where it stopped; another runner may do neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runner {
    #[default]
    Realmguard,
    Other,
}

pub use crate::rules::{group, lint_rules, GROUPS};

#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// Rules turned on on top of the config (opt-in rules such as `require-table-schema`);
    /// an `off` rule named here runs at warning level.
    pub include: Vec<Rule>,
    /// Rules turned off, whatever the config and `include` say.
    pub exclude: Vec<Rule>,
    pub runner: Runner,
    /// The server the migrations will run on (major version); `None`: any supported one
    /// (PostgreSQL 12 or later), for the rules whose verdict depends on it.
    pub pg_version: Option<u32>,
}

/// `a,b,locking` into rules: ids and groups, an unknown name is an error naming the choices.
pub fn parse_rule_list(list: &[String]) -> Result<Vec<Rule>, super::Error> {
    let mut out = Vec::new();
    for item in list.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if item.is_empty() {
            continue;
        }
        if GROUPS.contains(&item) {
            out.extend(lint_rules().filter(|r| group(*r) == item));
        } else if let Some(r) = Rule::from_id(item).filter(|r| r.evaluator().lint()) {
            out.push(r);
        } else {
            return Err(super::Error::UnknownRule {
                name: item.to_string(),
            });
        }
    }
    Ok(out)
}

impl LintOptions {
    /// The config the driver runs with: the config's levels, then the runner's defaults, then
    /// `--include`, then `--exclude` (the command line wins over the file).
    pub fn apply(&self, cfg: &Config) -> Config {
        let mut cfg = cfg.clone();
        if self.runner == Runner::Other {
            for r in [Rule::RequireTimeoutSettings, Rule::PreferRobustStmts] {
                cfg.rules
                    .entry(r.id().to_string())
                    .or_insert(Severity::Warning);
            }
        }
        for r in &self.include {
            if cfg.severity(r.id()) == Severity::Off {
                cfg.rules.insert(r.id().to_string(), Severity::Warning);
            }
        }
        for r in &self.exclude {
            cfg.rules.insert(r.id().to_string(), Severity::Off);
        }
        cfg
    }

    /// Whether the server is older than `major` (an unknown version counts as recent).
    pub fn pg_before(&self, major: u32) -> bool {
        self.pg_version.is_some_and(|v| v < major)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_ids_resolve_and_unknown_names_are_refused() {
        let r = parse_rule_list(&["ban-drop-table,realm".into()]).unwrap();
        assert!(r.contains(&Rule::BanDropTable) && r.contains(&Rule::FkNotCascade));
        let err = parse_rule_list(&["nope".into()]).unwrap_err().to_string();
        assert!(err.contains("unknown lint rule or group `nope`"), "{err}");
        // A verify-only rule is not a lint rule.
        assert!(parse_rule_list(&["realm-fk-missing".into()]).is_err());
    }

    #[test]
    fn include_turns_on_exclude_wins_the_rest_keep_their_level() {
        let o = LintOptions {
            include: vec![Rule::RequireTableSchema, Rule::BanDropColumn],
            exclude: vec![Rule::BanDropColumn],
            ..LintOptions::default()
        };
        let cfg = o.apply(&Config::default());
        assert_eq!(cfg.severity("require-table-schema"), Severity::Warning);
        assert_eq!(cfg.severity("ban-drop-column"), Severity::Off);
        assert_eq!(cfg.severity("renaming-column"), Severity::Warning);
        // An included rule the config already sets keeps the config's level.
        let cfg = o.apply(&Config::parse("[rules]\nrequire-table-schema = \"error\"\n").unwrap());
        assert_eq!(cfg.severity("require-table-schema"), Severity::Error);
    }

    #[test]
    fn another_runner_needs_timeouts_and_robust_statements() {
        let o = LintOptions {
            runner: Runner::Other,
            ..LintOptions::default()
        };
        let cfg = o.apply(&Config::default());
        assert_eq!(cfg.severity("require-timeout-settings"), Severity::Warning);
        assert_eq!(cfg.severity("prefer-robust-stmts"), Severity::Warning);
        assert_eq!(
            Config::default().severity("require-timeout-settings"),
            Severity::Off
        );
    }
}
