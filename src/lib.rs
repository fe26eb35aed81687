//! realmguard: keep a multi-tenant ("realm") PostgreSQL schema safe to scale out.
//!
//! The binary is a thin shell over [`run`]; every command lives in its own module and returns
//! data that [`output`] renders, so the library itself never prints results.

pub mod backfill;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod config;
pub mod db;
pub mod embedded;
pub mod lint;
pub mod migrate;
pub mod output;
pub mod rules;
pub mod split;
pub mod verify;

use std::process::ExitCode;

/// What a command found, mapped to the documented exit codes. Errors (exit 2) travel as `Err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: success, nothing wrong found (warnings allowed).
    Clean,
    /// Exit 1: ran and found something wrong.
    Findings,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Findings => ExitCode::from(1),
        }
    }

    pub fn from_findings(found: bool) -> Self {
        if found {
            Outcome::Findings
        } else {
            Outcome::Clean
        }
    }
}

/// The error and its causes on one line, `outer: inner: root`. sqlx errors repeat their source in
/// their own message ("error returned from database: X" caused by X), so a cause already said is
/// not said again.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        let text = text
            .strip_prefix("error returned from database: ")
            .unwrap_or(&text)
            .trim()
            .to_string();
        if text.is_empty() || parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// Run a parsed command line to completion on a fresh tokio runtime.
pub fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(cli::dispatch(cli))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_says_each_cause_once() {
        let inner = anyhow::anyhow!("permission denied for database x");
        let err = inner
            .context("error returned from database: permission denied for database x")
            .context("cannot create the ledger");
        assert_eq!(
            error_chain(&err),
            "cannot create the ledger: permission denied for database x"
        );
    }
}
