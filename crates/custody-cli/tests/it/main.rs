//! The `custody` binary's process-level tests: the real executable run as a server and as a
//! client, killed with SIGKILL, pointed at tampered databases, real PostgreSQL (several
//! servers on one database, TLS), a real S3-compatible server and independent tools. One
//! binary, one module per concern.

mod common;

mod access;
mod cli;
mod crash;
mod drift;
mod evidence;
mod integrity;
mod monitor;
mod multi_server;
mod pack_objects;
mod payload_objects;
mod postgres_tls;
mod tamper;
