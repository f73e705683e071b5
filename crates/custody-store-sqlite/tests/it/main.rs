//! The SQLite backend's integration tests.

mod store;
