//! Thin entry point: parse arguments and hand them to the commands edge, which runs the command
//! and maps its outcome to the exit code (0 clean, 1 findings, 2 could not do what was asked; see
//! `docs/architecture.md`).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    realmguard::commands::main(realmguard::commands::cli::Cli::parse())
}
