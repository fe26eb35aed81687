//! migrate, status and baseline against a real PostgreSQL.
