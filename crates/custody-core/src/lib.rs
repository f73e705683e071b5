//! The pure core of custody: everything a verifier needs and nothing that touches a disk,
//! a socket or a clock it was not handed.
//!
//! A third party re-checks custody's evidence with this crate alone (or with any other
//! implementation of the same public formats):
//!
//! - [`envelope`]: the entry model of the ledger and its validation, field by field.
//! - [`jcs`]: RFC 8785 canonical JSON, the bytes that are hashed into the log.
//! - [`commitment`]: salted commitments that bind personal data without publishing it.
//! - [`merkle`]: RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs.
//! - [`note`]: C2SP signed notes with Ed25519 and verifier key strings.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies.
//! - [`tlog_proof`]: C2SP tlog-proof, the offline evidence for one entry.
//! - [`tiles`]: C2SP tlog-tiles paths, tile widths and entry bundles.
//! - [`signing`]: approver keys (Ed25519, ECDSA P-256) read from PEM, and their signatures.
//! - [`dsse`]: DSSE envelopes, the signed wrapper around approvals.
//! - [`intoto`]: in-toto Statements and the approval predicate they carry.
//! - [`rotation`]: a log's signing-key rotations, as its `key.rotated` entries announce them.

pub mod checkpoint;
pub mod commitment;
pub mod dsse;
pub mod envelope;
pub mod intoto;
pub mod jcs;
pub mod merkle;
pub mod note;
pub mod rotation;
pub mod signing;
pub mod tiles;
pub mod tlog_proof;
