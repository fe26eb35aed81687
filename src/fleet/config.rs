//! `schema/fleet.toml`: the databases of the deployment. Unknown keys are refused with the line
//! they are on, so a typo (`urll`) never silently drops a target. See `docs/fleet.md`.

use serde::Deserialize;
use std::path::Path;

pub const DEFAULT_PATH: &str = "schema/fleet.toml";

/// What to do after a target fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Start no new target; running ones finish the migration in hand and stop.
    Stop,
    /// Go on with the others (up to `max_failures`).
    Continue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// Targets worked on at once (default: min(8, targets)).
    pub jobs: Option<usize>,
    pub on_error: Option<OnError>,
    /// With `continue`: start no new target after this many failures; 0 = no cap.
    pub max_failures: Option<usize>,
    /// The group that runs first; all of it must succeed before any other target starts.
    pub canary: Option<String>,
    #[serde(default, rename = "target")]
    pub targets: Vec<TargetSpec>,
    pub targets_from: Option<TargetsFrom>,
}

/// One `[[target]]`: a name, and a URL given inline or by the environment variable holding it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: String,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub group: Option<String>,
}

/// `[targets_from]`: more targets, one per row (`name`, `url`, optionally `group`) of `query` run
/// on the database at `url` / `$url_env`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsFrom {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub query: String,
    /// The group of targets whose row has no `group` column.
    pub group: Option<String>,
}

/// Where a URL comes from, checked to be exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    Inline(String),
    Env(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FleetFileError {
    #[error("no fleet file {0}; write one (or try `realmguard fleet init --local 3`), or pass --fleet PATH")]
    Missing(String),
    #[error("cannot read fleet file {path}: {cause}")]
    Unreadable { path: String, cause: String },
    #[error("invalid fleet file {path}{at}: {message}")]
    Invalid {
        path: String,
        at: String,
        message: String,
    },
}

impl FleetFile {
    /// Read and check `path` (default [`DEFAULT_PATH`]).
    pub fn load(path: Option<&Path>) -> Result<FleetFile, FleetFileError> {
        let path = path.unwrap_or(Path::new(DEFAULT_PATH));
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FleetFileError::Missing(shown.clone()),
            _ => FleetFileError::Unreadable {
                path: shown.clone(),
                cause: e.to_string(),
            },
        })?;
        Self::parse(&text).map_err(|(line, message)| FleetFileError::Invalid {
            path: shown,
            at: line.map(|l| format!(" line {l}")).unwrap_or_default(),
            message,
        })
    }

    /// Parse and check; the error is (line, message).
    pub fn parse(text: &str) -> Result<FleetFile, (Option<usize>, String)> {
        let file: FleetFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            // toml's message spans several lines with a caret; its first line says it.
            let msg = e.message().lines().next().unwrap_or("").trim().to_string();
            (line, msg)
        })?;
        file.check().map_err(|m| (None, m))?;
        Ok(file)
    }

    fn check(&self) -> Result<(), String> {
        if self.jobs == Some(0) {
            return Err("jobs must be at least 1".into());
        }
        if self.targets.is_empty() && self.targets_from.is_none() {
            return Err("it names no [[target]] and no [targets_from]".into());
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.targets {
            if t.name.trim().is_empty() {
                return Err("a [[target]] has an empty name".into());
            }
            if !seen.insert(t.name.as_str()) {
                return Err(format!("target `{}` is named twice", t.name));
            }
            url_source(&t.url, &t.url_env).map_err(|m| format!("target `{}`: {m}", t.name))?;
        }
        if let Some(from) = &self.targets_from {
            url_source(&from.url, &from.url_env).map_err(|m| format!("[targets_from]: {m}"))?;
            if from.query.trim().is_empty() {
                return Err("[targets_from]: query is empty".into());
            }
        }
        Ok(())
    }
}

/// Exactly one of `url` and `url_env`.
pub fn url_source(url: &Option<String>, env: &Option<String>) -> Result<UrlSource, String> {
    match (url, env) {
        (Some(u), None) => Ok(UrlSource::Inline(u.clone())),
        (None, Some(e)) if !e.trim().is_empty() => Ok(UrlSource::Env(e.clone())),
        (None, Some(_)) => Err("url_env is empty".into()),
        (Some(_), Some(_)) => Err("give url or url_env, not both".into()),
        (None, None) => Err("needs url or url_env".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
jobs = 8
on_error = "stop"
max_failures = 0
canary = "canary"

[[target]]
name    = "hub"
url_env = "HUB_DATABASE_URL"
group   = "canary"

[[target]]
name = "worker-1"
url  = "postgres://app@worker1.internal/app"

[targets_from]
url_env = "HUB_DATABASE_URL"
query   = "SELECT id AS name, database_url AS url FROM instances"
"#;

    #[test]
    fn the_documented_example_parses() {
        let f = FleetFile::parse(EXAMPLE).unwrap();
        assert_eq!(f.jobs, Some(8));
        assert_eq!(f.on_error, Some(OnError::Stop));
        assert_eq!(f.targets.len(), 2);
        assert_eq!(f.targets[0].group.as_deref(), Some("canary"));
        assert_eq!(
            url_source(&f.targets[0].url, &f.targets[0].url_env),
            Ok(UrlSource::Env("HUB_DATABASE_URL".into()))
        );
        assert!(f.targets_from.is_some());
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let (line, msg) = FleetFile::parse("[[target]]\nname = \"a\"\nurll = \"x\"\n").unwrap_err();
        assert_eq!(line, Some(3));
        assert!(msg.contains("urll"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn targets_need_exactly_one_url_and_distinct_names() {
        let both = "[[target]]\nname = \"a\"\nurl = \"postgres://x/y\"\nurl_env = \"X\"\n";
        assert!(FleetFile::parse(both).unwrap_err().1.contains("not both"));
        let none = "[[target]]\nname = \"a\"\n";
        assert!(FleetFile::parse(none).unwrap_err().1.contains("needs url"));
        let twice =
            "[[target]]\nname = \"a\"\nurl = \"u\"\n[[target]]\nname = \"a\"\nurl = \"u\"\n";
        assert!(FleetFile::parse(twice).unwrap_err().1.contains("twice"));
        assert!(FleetFile::parse("jobs = 2\n")
            .unwrap_err()
            .1
            .contains("no [[target]]"));
        let bad = "on_error = \"maybe\"\n[[target]]\nname = \"a\"\nurl = \"u\"\n";
        assert_eq!(FleetFile::parse(bad).unwrap_err().0, Some(1));
    }
}
