//! realmguard: keep a multi-tenant ("realm") PostgreSQL schema safe to scale out.
//!
//! The binary is a thin shell over [`commands`], the only layer that parses arguments, prints and
//! owns exit codes. Every other module is a domain module: it takes validated options, returns a
//! typed report, and tells an [`events::EventSink`] about its progress. See
//! `docs/architecture.md`.

pub mod audit;
pub mod backfill;
pub mod catalog;
pub mod check;
pub mod citus;
pub mod commands;
pub mod config;
pub mod db;
pub mod embedded;
pub mod events;
pub mod fleet;
pub mod lint;
pub mod migrate;
pub mod names;
pub mod output;
pub mod probe;
pub mod realm;
pub mod rules;
pub mod split;
pub mod verify;
