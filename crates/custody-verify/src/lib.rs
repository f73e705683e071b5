//! Offline verification of custody evidence: everything a verifier checks with nothing but
//! the verifier keys it pinned and the bytes in front of it. Nothing here talks to a server.
//!
//! The `custody` CLI checks with it before it prints, the server's reconciliation runs its deep
//! verification, and any other program can check the same evidence the same way:
//!
//! - [`entry`]: one entry against its C2SP tlog-proof.
//! - [`log`]: an exported log against its signed checkpoint and checkpoints saved earlier.
//! - [`proven`]: a proven answer (trace, served, history, admit, evidence pack): each log's
//!   signed checkpoint, each leaf re-derived from its envelope, each inclusion proof, each
//!   payload commitment.
//! - [`pack`]: an evidence-pack directory, file by file.
//! - [`tiles`]: a C2SP tiled log, rebuilt from its tiles and entry bundles, and proven to
//!   extend the checkpoint verified on the previous run.
//! - [`deep`]: a stored log re-derived from its bytes through any
//!   [`LedgerReader`](custody_store::LedgerReader), every leaf, tree node, checkpoint and
//!   payload commitment.
//!
//! Each returns a report of what it checked and found, or a typed error when the check could
//! not run at all (an unreadable file, a malformed input); a report that finds problems is an
//! outcome, not an error.

pub mod deep;
pub mod entry;
pub mod log;
pub mod pack;
pub mod proven;
pub mod tiles;

/// `(tenant, log)` from a log origin `<server>/<tenant>/<log>`.
pub(crate) fn origin_tail(origin: &str) -> (Option<&str>, Option<&str>) {
    let mut parts = origin.rsplitn(3, '/');
    let log = parts.next();
    let tenant = parts.next();
    (tenant, log)
}

/// What the unit tests of several modules share: one log's origin and the envelope of its
/// `n`th entry.
#[cfg(test)]
mod fixtures {
    /// The origin the test logs sign for.
    pub const ORIGIN: &str = "test.local/acme/governance";

    /// A valid envelope of entry `n`.
    pub fn envelope(n: u64) -> serde_json::Value {
        serde_json::json!({
            "v": 1,
            "id": format!("01900000-0000-7000-8000-{n:012}"),
            "tenant": "acme",
            "log": "governance",
            "type": "x.test.item",
            "time": "2026-01-01T00:00:00.000000Z",
            "actor": {"kind": "service", "id": "svc"},
            "subject": {"kind": "item", "id": format!("item-{n}")},
            "body": {"n": n},
        })
    }
}
