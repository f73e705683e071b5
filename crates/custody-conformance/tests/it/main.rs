//! The conformance suite, run once on every backend: the embedded SQLite store, PostgreSQL,
//! and SQLite through the payload-objects wrapper with every payload sent to object storage.
//! Each run must pass every case of `custody_conformance::CASES` and records that it did
//! (`scripts/test.sh` checks the records for both databases).

mod objects;
mod postgres;
mod sqlite;
