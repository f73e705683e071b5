//! Harnesses shared by custody's integration tests, so each is written once: the real server
//! in-process on port 0 (`server`, with the feature of that name), a PostgreSQL cluster ([`postgres`]), the Python
//! environment that independent implementations run in ([`python`]), and an S3-compatible
//! object store ([`moto`]), and certificates made by the test (`certificates`, with the `tls`
//! feature).
//!
//! Every harness either gives the test the real component or panics: a test that needs
//! PostgreSQL, Python or S3 fails on a machine without them instead of passing without having
//! run. Only dev-dependencies name this crate.

#[cfg(feature = "tls")]
pub mod certificates;
pub mod moto;
pub mod postgres;
pub mod python;
#[cfg(feature = "server")]
pub mod server;

/// The repository's root directory, where `scripts/` and `testdata/` live.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
