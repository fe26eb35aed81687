//! Typed reads of `pg_catalog`.
