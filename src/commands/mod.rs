//! The commands edge: the only layer that reads clap's types, writes to stdout and stderr, owns
//! Ctrl-C and maps results to exit codes. Each command module here validates its arguments into
//! the domain's option structs, calls the domain function (which returns a typed report and sends
//! progress to an [`crate::events::EventSink`]), renders the report and picks the exit code.
//! See `docs/architecture.md`.

mod audit;
mod backfill;
mod check;
mod citus;
pub mod cli;
mod embedded;
mod explain;
mod fleet;
mod lint;
mod migrate;
mod probe;
mod progress;
mod realm;
mod verify;

use crate::events::Cancel;
use std::process::ExitCode;

/// What a command found, mapped to the documented exit codes. Errors (exit 2) travel as `Err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: success, nothing wrong found (warnings allowed).
    Clean,
    /// Exit 1: ran and found something wrong.
    Findings,
    /// Exit 2, with the report printed (it says what failed): a fleet target that failed.
    Failed,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Findings => ExitCode::from(1),
            Outcome::Failed => ExitCode::from(2),
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

/// Run a parsed command line and turn its result into the process's exit code: `error: …` on
/// stderr (passwords redacted) and exit 2 for an error, except that a closed stdout (`| head`)
/// ends the command quietly with exit 0, as ripgrep does.
pub fn main(cli: cli::Cli) -> ExitCode {
    let mut secrets = crate::db::secrets_of(cli.global.database_url.as_deref());
    if let cli::Command::Realm(c) = &cli.command {
        secrets.extend(realm::secrets(c));
    }
    match run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let msg = crate::db::redact(&error_chain(&err), &secrets);
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Run a parsed command line to completion on a fresh tokio runtime.
pub fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: cli::Cli) -> anyhow::Result<Outcome> {
    use cli::{BackfillCommand, CitusCommand, Command, RealmCommand};
    let g = &cli.global;
    match &cli.command {
        Command::Migrate(a) => migrate::migrate(g, a).await,
        Command::Status(a) => migrate::status(g, a).await,
        Command::Baseline(a) => migrate::baseline(g, a).await,
        Command::Verify(a) => verify::verify(g, a).await,
        Command::Lint(a) => lint::lint(g, a),
        Command::Explain(a) => explain::explain(a),
        Command::Audit(a) => audit::audit(g, a).await,
        Command::Check(a) => check::check(g, a).await,
        Command::Backfill(BackfillCommand::Plan(a)) => backfill::cmd_plan(g, a).await,
        Command::Backfill(BackfillCommand::Run(a)) => backfill::cmd_run(g, a).await,
        Command::Backfill(BackfillCommand::Status(a)) => backfill::cmd_status(g, a).await,
        Command::Backfill(BackfillCommand::Finish(a)) => backfill::cmd_finish(g, a).await,
        Command::Realm(RealmCommand::List(a)) => realm::list(g, a).await,
        Command::Realm(RealmCommand::Copy(a)) => realm::copy(g, a).await,
        Command::Realm(RealmCommand::Diff(a)) => realm::diff(g, a).await,
        Command::Realm(RealmCommand::Move(a)) => realm::move_realm(g, a).await,
        Command::Realm(RealmCommand::Delete(a)) => realm::delete(g, a).await,
        Command::Embedded(c) => embedded::run(g, c).await,
        Command::Realm(RealmCommand::Probe(a)) => probe::probe(g, a).await,
        Command::Fleet(c) => fleet::run(g, c).await,
        Command::Citus(CitusCommand::Plan(a)) => citus::plan(g, a).await,
        Command::Citus(CitusCommand::Distribute(a)) => citus::distribute(g, a).await,
    }
}

/// A [`Cancel`] that the first Ctrl-C sets.
fn cancel_on_ctrl_c() -> Cancel {
    let cancel = Cancel::default();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c.cancel();
        }
    });
    cancel
}

/// Whether the error is a write to a closed pipe (the reader of stdout went away).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line (see [`crate::output::error_chain`]).
pub fn error_chain(err: &anyhow::Error) -> String {
    crate::output::error_chain(err)
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

    #[test]
    fn a_broken_pipe_is_recognised_under_context() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "Broken pipe");
        let err = anyhow::Error::new(io).context("cannot write the report");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("Broken pipe")));
    }
}
