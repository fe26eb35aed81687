//! The fleet's report: one row per target, a summary with the versions the fleet is at, and its
//! text, JSON and JUnit renderings.

use crate::output::{self, Format, JunitCase};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// What the fleet was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Status,
    Migrate,
    Verify,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Status => "status",
            Action::Migrate => "migrate",
            Action::Verify => "verify",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Done: migrated (or, for status and verify, read).
    Ok,
    /// Nothing to do: found up to date read-only, no lock taken.
    Skipped,
    /// Could not be reached or could not do what was asked; the error says why.
    Failed,
    /// Never started: a canary failed, the run was stopped, or Ctrl-C.
    NotStarted,
    /// The ledger and the files disagree (edited, missing or out-of-order file): not migrated.
    Drifted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Skipped => "skipped",
            State::Failed => "failed",
            State::NotStarted => "not_started",
            State::Drifted => "drifted",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VerifyCounts {
    pub errors: usize,
    pub warnings: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub name: String,
    pub group: Option<String>,
    pub state: State,
    /// Newest applied version when the run started (0: none applied; null: not reached).
    pub version_before: Option<i64>,
    pub version_after: Option<i64>,
    /// Migrations this run applied (committed) there.
    pub applied: usize,
    /// Migrations still to apply there afterwards.
    pub pending: usize,
    /// What disagrees between its ledger and the files.
    pub drift: Vec<String>,
    pub verify: Option<VerifyCounts>,
    pub duration_ms: u64,
    /// Why it failed or did not start: one line, password-free.
    pub error: Option<String>,
}

impl TargetReport {
    pub fn new(name: &str, group: Option<&str>) -> TargetReport {
        TargetReport {
            name: name.to_string(),
            group: group.map(str::to_string),
            state: State::NotStarted,
            version_before: None,
            version_after: None,
            applied: 0,
            pending: 0,
            drift: Vec::new(),
            verify: None,
            duration_ms: 0,
            error: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub targets: usize,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_started: usize,
    pub drifted: usize,
    /// Version → how many targets are at it (targets not reached are not counted).
    pub versions: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub ok: bool,
    pub summary: Summary,
    pub targets: Vec<TargetReport>,
    #[serde(skip)]
    pub action: Action,
}

/// How a fleet run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// All ran, but something is wrong: verify errors, drift, mixed versions, or pending.
    Findings,
    /// A target failed, could not be reached, or was never started.
    Failed,
}

impl FleetReport {
    pub fn new(action: Action, targets: Vec<TargetReport>) -> FleetReport {
        let mut s = Summary {
            targets: targets.len(),
            ..Summary::default()
        };
        for t in &targets {
            match t.state {
                State::Ok => s.ok += 1,
                State::Skipped => s.skipped += 1,
                State::Failed => s.failed += 1,
                State::NotStarted => s.not_started += 1,
                State::Drifted => s.drifted += 1,
            }
            if let Some(v) = t.version_after {
                *s.versions.entry(v.to_string()).or_default() += 1;
            }
        }
        let verify_errors = targets
            .iter()
            .any(|t| t.verify.is_some_and(|v| v.errors > 0));
        let ok = s.failed == 0
            && s.not_started == 0
            && s.drifted == 0
            && !verify_errors
            && s.versions.len() <= 1;
        FleetReport {
            ok,
            summary: s,
            targets,
            action,
        }
    }

    pub fn mixed_versions(&self) -> bool {
        self.summary.versions.len() > 1
    }

    /// `pending_is_finding`: `status --exit-code`.
    pub fn verdict(&self, pending_is_finding: bool) -> Verdict {
        let s = &self.summary;
        if s.failed > 0 || s.not_started > 0 {
            return Verdict::Failed;
        }
        let pending = pending_is_finding && self.targets.iter().any(|t| t.pending > 0);
        let mixed = self.action != Action::Migrate && self.mixed_versions();
        if s.drifted > 0 || mixed || self.has_verify_errors() || pending {
            Verdict::Findings
        } else {
            Verdict::Clean
        }
    }

    fn has_verify_errors(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.verify.is_some_and(|v| v.errors > 0))
    }

    /// "5 on 18 targets, 4 on 2": the most common version first.
    pub fn versions_line(&self) -> String {
        let mut v: Vec<(&String, &usize)> = self.summary.versions.iter().collect();
        v.sort_by(|a, b| {
            b.1.cmp(a.1)
                .then_with(|| version_num(b.0).cmp(&version_num(a.0)))
        });
        let parts: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(i, (ver, n))| {
                let unit = if i > 0 {
                    ""
                } else if **n == 1 {
                    " target"
                } else {
                    " targets"
                };
                format!("{ver} on {n}{unit}")
            })
            .collect();
        match parts.len() {
            0 => "versions: no target reached".into(),
            1 => format!("versions: {} (all at one version)", parts[0]),
            _ => format!("versions: {} (MIXED)", parts.join(", ")),
        }
    }
}

fn version_num(s: &str) -> i64 {
    s.parse().unwrap_or(i64::MIN)
}

pub fn render(r: &FleetReport, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Json => output::write_json(out, r),
        Format::Junit => render_junit(r, out),
        Format::Text => render_text(r, out),
    }
}

fn version_cell(t: &TargetReport) -> String {
    match (t.version_before, t.version_after) {
        (Some(a), Some(b)) if a != b => format!("{a} → {b}"),
        (_, Some(b)) => b.to_string(),
        (Some(a), None) => a.to_string(),
        (None, None) => "-".into(),
    }
}

fn error_cell(t: &TargetReport) -> String {
    match (&t.error, t.drift.first()) {
        (Some(e), _) => e.clone(),
        (None, Some(d)) if t.drift.len() > 1 => format!("{d} (+{} more)", t.drift.len() - 1),
        (None, Some(d)) => d.clone(),
        (None, None) => String::new(),
    }
}

fn render_text(r: &FleetReport, out: &mut dyn Write) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = r
        .targets
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.group.clone().unwrap_or_default(),
                t.state.as_str().into(),
                version_cell(t),
                t.applied.to_string(),
                t.pending.to_string(),
                t.verify
                    .map_or("-".into(), |v| format!("{}/{}", v.errors, v.warnings)),
                format!("{} ms", t.duration_ms),
                error_cell(t),
            ]
        })
        .collect();
    writeln!(
        out,
        "{}",
        output::table(
            &[
                "target",
                "group",
                "state",
                "version",
                "applied",
                "pending",
                "verify err/warn",
                "duration",
                "error"
            ],
            &rows
        )
    )?;
    let s = &r.summary;
    let mut counts = vec![format!("{} ok", s.ok)];
    for (n, what) in [
        (s.skipped, "skipped"),
        (s.failed, "failed"),
        (s.not_started, "not started"),
        (s.drifted, "drifted"),
    ] {
        if n > 0 {
            counts.push(format!("{n} {what}"));
        }
    }
    writeln!(
        out,
        "fleet {}: {} target(s): {}; {}",
        r.action.as_str(),
        s.targets,
        counts.join(", "),
        r.versions_line()
    )?;
    if !r.ok {
        writeln!(out, "The fleet is NOT ok.")?;
    }
    Ok(())
}

fn render_junit(r: &FleetReport, out: &mut dyn Write) -> std::io::Result<()> {
    // A fleet at mixed versions is not ok: for status and verify, each target behind fails.
    let newest = r.targets.iter().filter_map(|t| t.version_after).max();
    let behind = |t: &TargetReport| {
        r.action != Action::Migrate && r.mixed_versions() && t.version_after < newest
    };
    let cases: Vec<JunitCase> = r
        .targets
        .iter()
        .map(|t| {
            let verify_errors = t.verify.map_or(0, |v| v.errors);
            let (failure, kind) = match t.state {
                State::Failed | State::NotStarted | State::Drifted => (
                    Some((
                        format!("{}: {}", t.state.as_str(), error_cell(t)),
                        t.drift.join("\n"),
                    )),
                    t.state.as_str(),
                ),
                _ if verify_errors > 0 => (
                    Some((format!("{verify_errors} verify error(s)"), String::new())),
                    "verify",
                ),
                _ if behind(t) => (
                    Some((
                        format!(
                            "behind: at version {} while the fleet's newest is {}",
                            version_cell(t),
                            newest.unwrap_or(0)
                        ),
                        r.versions_line(),
                    )),
                    "behind",
                ),
                _ => (None, ""),
            };
            JunitCase {
                classname: format!("fleet.{}", t.group.as_deref().unwrap_or("default")),
                name: t.name.clone(),
                failure_type: failure.as_ref().map(|_| kind.to_string()),
                failure,
                system_out: Some(format!(
                    "{}: version {}, applied {}, pending {}",
                    t.state.as_str(),
                    version_cell(t),
                    t.applied,
                    t.pending
                )),
            }
        })
        .collect();
    output::write_junit(
        out,
        &format!("realmguard fleet {}", r.action.as_str()),
        &cases,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(name: &str, state: State, v: Option<i64>) -> TargetReport {
        TargetReport {
            state,
            version_after: v,
            ..TargetReport::new(name, None)
        }
    }

    #[test]
    fn mixed_versions_are_never_ok() {
        let r = FleetReport::new(
            Action::Status,
            vec![
                at("a", State::Ok, Some(5)),
                at("b", State::Ok, Some(5)),
                at("c", State::Ok, Some(4)),
            ],
        );
        assert!(!r.ok);
        assert_eq!(r.verdict(false), Verdict::Findings);
        assert_eq!(
            r.versions_line(),
            "versions: 5 on 2 targets, 4 on 1 (MIXED)"
        );
        let same = FleetReport::new(Action::Status, vec![at("a", State::Ok, Some(5))]);
        assert!(same.ok);
        assert_eq!(same.verdict(false), Verdict::Clean);
        assert_eq!(
            same.versions_line(),
            "versions: 5 on 1 target (all at one version)"
        );
    }

    #[test]
    fn a_failed_or_unstarted_target_fails_the_run() {
        let r = FleetReport::new(
            Action::Migrate,
            vec![
                at("a", State::Ok, Some(5)),
                at("b", State::NotStarted, None),
            ],
        );
        assert_eq!(r.verdict(false), Verdict::Failed);
        assert_eq!(r.summary.not_started, 1);
        assert_eq!(r.summary.versions.get("5"), Some(&1));
    }
}
