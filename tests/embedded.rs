//! The embedded cluster.
