//! `realmguard backfill plan/run/status`: convert legacy single-key tables to the realm shape
//! online, while the application keeps reading and writing (see `ONLINE-DDL.md`).
//!
//! [`plan`] is pure (catalog model → ordered steps with SQL and lock); [`exec`] runs them and
//! records each in the `realmguard` schema; [`preflight`] refuses to start when the run would
//! stall traffic or silently do nothing. A run that stops (crash, `kill -9`, Ctrl-C) resumes from
//! the recorded plan.

pub mod exec;
pub mod model;
pub mod plan;
pub mod preflight;
pub mod replicas;
