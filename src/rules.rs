//! Every rule id realmguard knows, with its default severity. One list, shared by the config
//! (`[rules]` levels, unknown ids rejected), `verify`, `lint` and the ignore comments, so scripts
//! can match on stable kebab-case ids (the ids follow PRODUCT.md and, for lint, squawk's).

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

/// Rules evaluated by `verify` over the live catalog (PRODUCT.md, "verify: the rules").
pub const VERIFY_RULES: &[(&str, Severity)] = &[
    ("realm-column-missing", Severity::Error),
    ("realm-column-nullable", Severity::Error),
    ("composite-primary-key", Severity::Error),
    ("unique-without-realm", Severity::Error),
    ("realm-fk-missing", Severity::Error),
    ("fk-missing-realm", Severity::Error),
    ("fk-not-cascade", Severity::Error),
    ("fk-cross-realm", Severity::Warning),
    ("constraint-not-validated", Severity::Error),
    ("invalid-index", Severity::Error),
    ("fk-unindexed", Severity::Warning),
    ("realms-table-missing", Severity::Warning),
    ("rls-disabled", Severity::Off),
];

/// Rules evaluated by `lint` over migration files. The realm rules share verify's ids.
pub const LINT_RULES: &[(&str, Severity)] = &[
    ("require-concurrent-index-creation", Severity::Error),
    ("require-concurrent-index-deletion", Severity::Error),
    ("constraint-missing-not-valid", Severity::Error),
    ("adding-not-nullable-field", Severity::Error),
    ("adding-required-field", Severity::Error),
    ("adding-field-with-default", Severity::Error),
    ("changing-column-type", Severity::Error),
    ("disallowed-unique-constraint", Severity::Error),
    (
        "ban-concurrent-index-creation-in-transaction",
        Severity::Error,
    ),
    ("renaming-column", Severity::Warning),
    ("renaming-table", Severity::Warning),
    ("ban-drop-column", Severity::Warning),
    ("parse-error", Severity::Error),
];

/// The default severity of a rule id, or `None` when no such rule exists.
pub fn default_severity(rule: &str) -> Option<Severity> {
    VERIFY_RULES
        .iter()
        .chain(LINT_RULES)
        .find(|(id, _)| *id == rule)
        .map(|(_, s)| *s)
}

pub fn is_known(rule: &str) -> bool {
    default_severity(rule).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_kebab_case() {
        let mut all: Vec<&str> = VERIFY_RULES
            .iter()
            .chain(LINT_RULES)
            .map(|(id, _)| *id)
            .collect();
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
        assert_eq!(default_severity("rls-disabled"), Some(Severity::Off));
        assert_eq!(
            default_severity("composite-primary-key"),
            Some(Severity::Error)
        );
        assert_eq!(default_severity("no-such-rule"), None);
    }
}
