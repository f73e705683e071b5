//! The PostgreSQL backend's integration tests, on a real cluster: migrations, row-level
//! security, outages, and TLS to a TLS-only server.

mod backend;
mod tls;
