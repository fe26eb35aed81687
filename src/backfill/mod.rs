//! `realmguard backfill plan/run/status/finish`: convert legacy single-key tables to the realm
//! shape online, while the application keeps reading and writing (see `docs/online-ddl.md`).
//!
//! [`plan`] is pure (catalog model → ordered steps with SQL and lock); [`exec`] runs them and
//! records each in the `realmguard` schema; [`preflight`] refuses to start when the run would
//! stall traffic or silently do nothing. A run that stops (crash, `kill -9`, Ctrl-C) resumes from
//! the recorded plan. [`orchestrate`] holds the commands as domain functions returning the
//! typed reports of [`report`]; [`render`] writes those for a person or as JSON.

pub mod error;
pub mod exec;
pub mod load;
pub mod orchestrate;
pub mod plan;
pub mod preflight;
pub mod prepared;
pub mod render;
pub mod replicas;
pub mod report;
pub mod view;

pub use error::Error;
pub use orchestrate::{finish, run, show_plan, status, FinishOptions, RunOptions};
