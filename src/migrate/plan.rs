//! What is applied vs what is on disk, as a pure function (no database): each version's state,
//! and the list of migrations to run, or the drift that stops `migrate`.

use super::source::Migration;
use serde::Serialize;

/// One row of the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub version: i64,
    pub description: String,
    pub checksum: String,
    pub success: bool,
    pub statements_applied: i32,
    pub statements_total: i32,
    pub applied_at: String,
    pub applied_by: String,
    pub duration_ms: i64,
    pub baseline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Applied,
    Pending,
    /// Applied, but the file changed since.
    Modified,
    /// Applied, but its file is gone.
    MissingFile,
    /// Not applied, yet older than the newest applied version.
    OutOfOrder,
    /// A no-transaction migration that stopped part-way; `migrate` resumes it.
    Partial,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Modified => "modified",
            State::MissingFile => "missing file",
            State::OutOfOrder => "out of order",
            State::Partial => "partial",
        }
    }

    /// Anything `status --exit-code` reports as not clean.
    pub fn needs_attention(self) -> bool {
        self != State::Applied
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub version: i64,
    pub description: String,
    pub state: State,
    /// Index into the files slice, when there is a file.
    #[serde(skip)]
    pub file: Option<usize>,
    pub applied: Option<Applied>,
}

/// Every version known to the ledger or the directory, in version order.
pub fn entries(applied: &[Applied], files: &[Migration]) -> Vec<Entry> {
    let newest_applied = applied
        .iter()
        .filter(|a| a.success)
        .map(|a| a.version)
        .max();
    let mut out: Vec<Entry> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let a = applied.iter().find(|a| a.version == f.version).cloned();
            let state = match &a {
                None if newest_applied.is_some_and(|n| f.version < n) => State::OutOfOrder,
                None => State::Pending,
                Some(a) if a.checksum != f.checksum => State::Modified,
                Some(a) if !a.success => State::Partial,
                Some(_) => State::Applied,
            };
            Entry {
                version: f.version,
                description: f.description.clone(),
                state,
                file: Some(i),
                applied: a,
            }
        })
        .collect();
    for a in applied {
        if !files.iter().any(|f| f.version == a.version) {
            out.push(Entry {
                version: a.version,
                description: a.description.clone(),
                state: State::MissingFile,
                file: None,
                applied: Some(a.clone()),
            });
        }
    }
    out.sort_by_key(|e| e.version);
    out
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    pub to: Option<i64>,
    pub allow_modified: bool,
    pub allow_missing: bool,
    pub allow_out_of_order: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{}; nothing was applied", .problems.join("; "))]
pub struct DriftError {
    pub problems: Vec<String>,
}

/// The migrations to run, in order (indices into `files`), or the drift that forbids running.
pub fn plan(
    entries: &[Entry],
    files: &[Migration],
    opts: PlanOptions,
) -> Result<Vec<usize>, DriftError> {
    let mut problems = Vec::new();
    for e in entries {
        let name = e
            .file
            .map(|i| files[i].path.display().to_string())
            .unwrap_or_default();
        match e.state {
            State::Modified if !opts.allow_modified => problems.push(format!(
                "migration {} ({name}) was changed after it was applied (checksum differs); restore the file or pass --allow-modified",
                e.version
            )),
            State::MissingFile if !opts.allow_missing => problems.push(format!(
                "migration {} ({}) is applied but its file is missing; restore it or pass --allow-missing",
                e.version, e.description
            )),
            State::OutOfOrder if !opts.allow_out_of_order => problems.push(format!(
                "migration {} ({name}) is older than the newest applied version and was never applied; renumber it or pass --allow-out-of-order",
                e.version
            )),
            _ => {}
        }
    }
    if !problems.is_empty() {
        return Err(DriftError { problems });
    }
    Ok(entries
        .iter()
        .filter(|e| matches!(e.state, State::Pending | State::OutOfOrder | State::Partial))
        .filter(|e| opts.to.is_none_or(|to| e.version <= to))
        .filter_map(|e| e.file)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::source::from_bytes;

    fn file(v: i64, sql: &str) -> Migration {
        from_bytes(
            v,
            format!("m{v}"),
            format!("{v}_m.sql").into(),
            sql.as_bytes(),
        )
        .unwrap()
    }

    fn applied(f: &Migration, success: bool) -> Applied {
        Applied {
            version: f.version,
            description: f.description.clone(),
            checksum: f.checksum.clone(),
            success,
            statements_applied: 0,
            statements_total: 1,
            applied_at: String::new(),
            applied_by: String::new(),
            duration_ms: 0,
            baseline: false,
        }
    }

    #[test]
    fn fresh_database_runs_everything_in_order() {
        let files = vec![file(1, "a"), file(2, "b"), file(10, "c")];
        let e = entries(&[], &files);
        assert!(e.iter().all(|e| e.state == State::Pending));
        assert_eq!(
            plan(&e, &files, PlanOptions::default()).unwrap(),
            vec![0, 1, 2]
        );
        let to = PlanOptions {
            to: Some(2),
            ..Default::default()
        };
        assert_eq!(plan(&e, &files, to).unwrap(), vec![0, 1]);
    }

    #[test]
    fn up_to_date_plans_nothing() {
        let files = vec![file(1, "a"), file(2, "b")];
        let a: Vec<_> = files.iter().map(|f| applied(f, true)).collect();
        let e = entries(&a, &files);
        assert!(e.iter().all(|e| e.state == State::Applied));
        assert!(plan(&e, &files, PlanOptions::default()).unwrap().is_empty());
    }

    #[test]
    fn drift_stops_unless_allowed() {
        let files = vec![file(1, "a"), file(2, "b"), file(3, "c")];
        let mut a = vec![applied(&files[0], true), applied(&files[2], true)];
        a[0].checksum = "sha256:other".into();
        a.push(Applied {
            version: 9,
            ..applied(&files[1], true)
        });
        let e = entries(&a, &files);
        let states: Vec<State> = e.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            vec![
                State::Modified,
                State::OutOfOrder,
                State::Applied,
                State::MissingFile
            ]
        );
        let err = plan(&e, &files, PlanOptions::default()).unwrap_err();
        assert_eq!(err.problems.len(), 3);
        assert!(err.to_string().contains("migration 1"));
        let all = PlanOptions {
            allow_modified: true,
            allow_missing: true,
            allow_out_of_order: true,
            to: None,
        };
        assert_eq!(plan(&e, &files, all).unwrap(), vec![1]);
    }

    #[test]
    fn partial_is_resumed_but_a_changed_partial_is_modified() {
        let files = vec![file(1, "a")];
        let e = entries(&[applied(&files[0], false)], &files);
        assert_eq!(e[0].state, State::Partial);
        assert_eq!(plan(&e, &files, PlanOptions::default()).unwrap(), vec![0]);
        let mut a = applied(&files[0], false);
        a.checksum = "sha256:x".into();
        assert_eq!(entries(&[a], &files)[0].state, State::Modified);
    }
}
