//! Thin entry point: parse arguments, run, map the outcome to an exit code.
//! Exit codes: 0 clean, 1 findings, 2 could not do what was asked (see PRODUCT.md).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = realmguard::cli::Cli::parse();
    let secrets = realmguard::db::secrets_of(cli.global.database_url.as_deref());
    match realmguard::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            let msg = realmguard::db::redact(&realmguard::error_chain(&err), &secrets);
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
