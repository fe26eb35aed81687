//! All integration tests compile into one binary (ripgrep's layout): one throwaway cluster per
//! run, shared by every module, one database per test.

mod common;

mod audit;
mod backfill;
mod check;
mod citus;
mod cli;
mod embedded;
mod fleet;
mod lint;
mod migrate;
mod realm;
mod rls;
mod tls;
mod verify;
