//! An exported log (`custody export`) checked against its signed checkpoint: every leaf
//! re-derived from the stored envelope bytes, the root recomputed, and the log proven to
//! extend every checkpoint the user saved earlier. A mismatch is reported by entry index.

use std::io::BufRead;

use base64ct::{Base64, Encoding};
use custody_api::ExportedLeaf;
use custody_core::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use custody_core::envelope::Envelope;
use custody_core::merkle::{self, Hash};
use custody_core::note::NoteVerifier;
use serde::{Deserialize, Serialize};

use crate::origin_tail;

/// Format tag of the first line of an export file.
pub const EXPORT_FORMAT: &str = "custody-log-export/v1";

/// First line of an export file: which log, and the signed checkpoint the leaves must match.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportHeader {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// The log's origin.
    pub origin: String,
    /// The log's verifier key as the server announced it (not trusted: the user pins one).
    pub verifier_key: String,
    /// Signed checkpoint covering exactly the exported leaves.
    pub checkpoint: String,
}

/// Why an export could not be checked at all. What the check finds wrong with the log itself
/// is reported in [`LogReport::problems`].
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Reading the export failed.
    #[error("cannot read the export")]
    Unreadable(#[source] std::io::Error),
    /// The export has no lines.
    #[error("the export is empty")]
    Empty,
    /// The first line is not an [`ExportHeader`].
    #[error("the export's first line is not a custody export header")]
    NotAnExport(#[source] serde_json::Error),
    /// The header names a format this version does not read.
    #[error("unsupported export format {0:?}")]
    UnsupportedFormat(String),
    /// The export's checkpoint does not open with the pinned key.
    #[error("the export's checkpoint is not signed by the pinned key: {0}")]
    Unsigned(CheckpointError),
    /// A line after the header is not an exported leaf.
    #[error("export line {line} is not a leaf record")]
    NotALeaf {
        /// Line number, from 1.
        line: usize,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
    /// Leaves are missing or out of order.
    #[error(
        "export line {line} holds index {index}, expected {expected}: the export is incomplete or reordered"
    )]
    OutOfOrder {
        /// Line number, from 1.
        line: usize,
        /// The index the line holds.
        index: u64,
        /// The index it should hold.
        expected: u64,
    },
    /// A leaf's data is not base64.
    #[error("index {index}: leaf_data is not base64")]
    NotBase64 {
        /// The leaf's index.
        index: u64,
    },
    /// A saved checkpoint does not open with the pinned key.
    #[error("--checkpoint #{number}: not signed by the pinned key: {reason}")]
    SavedUnsigned {
        /// Which saved checkpoint, from 1.
        number: usize,
        /// Why it does not open.
        reason: CheckpointError,
    },
    /// A saved checkpoint is of another log.
    #[error("--checkpoint #{number} is for {origin}, not {expected}")]
    SavedForAnotherLog {
        /// Which saved checkpoint, from 1.
        number: usize,
        /// The log it is for.
        origin: String,
        /// The exported log.
        expected: String,
    },
}

/// One thing wrong with an exported log.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The entry, when the problem is with one entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// What is wrong.
    pub message: String,
}

/// Outcome of verifying a whole exported log.
#[derive(Debug, Serialize)]
pub struct LogReport {
    /// True when there are no problems.
    pub ok: bool,
    /// The log's origin.
    pub origin: String,
    /// Entries checked.
    pub size: u64,
    /// Root recomputed from the leaf data, base64.
    pub root: String,
    /// Saved checkpoints this log was shown to extend.
    pub consistent_with: Vec<u64>,
    /// Everything wrong, by entry where possible.
    pub problems: Vec<Problem>,
}

/// Verifies an export file: the signed checkpoint, every leaf re-derived from its stored
/// bytes, the root, and consistency with checkpoints saved earlier.
pub fn verify_log(
    export: impl BufRead,
    vkey: &NoteVerifier,
    saved: &[String],
) -> Result<LogReport, LogError> {
    let mut lines = export.lines();
    let header: ExportHeader = match lines.next() {
        Some(l) => serde_json::from_str(&l.map_err(LogError::Unreadable)?)
            .map_err(LogError::NotAnExport)?,
        None => return Err(LogError::Empty),
    };
    if header.format != EXPORT_FORMAT {
        return Err(LogError::UnsupportedFormat(header.format));
    }
    let signed = SignedCheckpoint::open(&header.checkpoint, vkey).map_err(LogError::Unsigned)?;
    let cp: Checkpoint = signed.checkpoint;
    let (tenant, log) = origin_tail(&cp.origin);

    let mut problems = Vec::new();
    let mut computed: Vec<Hash> = Vec::with_capacity(cp.size.min(1 << 24) as usize);
    let mut recorded: Vec<Hash> = Vec::with_capacity(cp.size.min(1 << 24) as usize);
    let mut mismatched: Vec<u64> = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(LogError::Unreadable)?;
        if line.is_empty() {
            continue;
        }
        let expected = n as u64;
        let leaf: ExportedLeaf =
            serde_json::from_str(&line).map_err(|source| LogError::NotALeaf {
                line: n + 2,
                source,
            })?;
        if leaf.index != expected {
            return Err(LogError::OutOfOrder {
                line: n + 2,
                index: leaf.index,
                expected,
            });
        }
        let data = Base64::decode_vec(&leaf.leaf_data)
            .map_err(|_| LogError::NotBase64 { index: expected })?;
        let hash = merkle::leaf_hash(&data);
        let rec = Hash::from_hex(&leaf.recorded_leaf_hash).unwrap_or(Hash([0; 32]));
        if hash != rec {
            mismatched.push(expected);
        }
        match Envelope::from_canonical(&data) {
            Ok(env) => {
                if Some(env.tenant.as_str()) != tenant || Some(env.log.as_str()) != log {
                    problems.push(Problem {
                        index: Some(expected),
                        message: format!(
                            "envelope names {}/{}, but the log is {}",
                            env.tenant, env.log, cp.origin
                        ),
                    });
                }
            }
            Err(e) => problems.push(Problem {
                index: Some(expected),
                message: format!("stored envelope is not a canonical custody envelope: {e}"),
            }),
        }
        computed.push(hash);
        recorded.push(rec);
    }
    if computed.len() as u64 != cp.size {
        problems.push(Problem {
            index: None,
            message: format!(
                "the export holds {} entries but its checkpoint covers {}",
                computed.len(),
                cp.size
            ),
        });
    }
    let root = if computed.is_empty() {
        merkle::empty_root()
    } else {
        merkle::root_from_leaves(&computed)
    };
    if root != cp.root && computed.len() as u64 == cp.size {
        let recorded_root = if recorded.is_empty() {
            merkle::empty_root()
        } else {
            merkle::root_from_leaves(&recorded)
        };
        if recorded_root == cp.root {
            for i in &mismatched {
                problems.push(Problem {
                    index: Some(*i),
                    message: format!(
                        "stored envelope does not match the leaf hash the signed checkpoint commits to (hash of stored bytes {}, committed {})",
                        computed[*i as usize], recorded[*i as usize]
                    ),
                });
            }
        } else {
            problems.push(Problem {
                index: None,
                message: format!(
                    "the root recomputed from the entries does not match the signed checkpoint, and the recorded leaf hashes are altered too; suspect entries: {mismatched:?}"
                ),
            });
        }
    }

    let mut consistent_with = Vec::new();
    for (i, note) in saved.iter().enumerate() {
        let old = SignedCheckpoint::open(note, vkey)
            .map_err(|reason| LogError::SavedUnsigned {
                number: i + 1,
                reason,
            })?
            .checkpoint;
        if old.origin != cp.origin {
            return Err(LogError::SavedForAnotherLog {
                number: i + 1,
                origin: old.origin,
                expected: cp.origin,
            });
        }
        if old.size > computed.len() as u64 {
            problems.push(Problem {
                index: None,
                message: format!(
                    "saved checkpoint of size {} is newer than this export ({} entries): export again",
                    old.size,
                    computed.len()
                ),
            });
            continue;
        }
        let old_root = if old.size == 0 {
            merkle::empty_root()
        } else {
            merkle::root_from_leaves(&computed[..old.size as usize])
        };
        let consistent = if old.size == 0 {
            old.root == merkle::empty_root()
        } else {
            merkle::consistency_proof(old.size, &computed)
                .and_then(|p| {
                    merkle::verify_consistency(
                        old.size,
                        computed.len() as u64,
                        &p,
                        &old.root,
                        &root,
                    )
                })
                .is_ok()
                && old_root == old.root
        };
        if consistent {
            consistent_with.push(old.size);
        } else {
            problems.push(Problem {
                index: None,
                message: format!(
                    "FORK: the saved checkpoint of size {} is not a prefix of this log (its root {} != recomputed {})",
                    old.size,
                    old.root.to_base64(),
                    old_root.to_base64()
                ),
            });
        }
    }

    Ok(LogReport {
        ok: problems.is_empty(),
        origin: cp.origin,
        size: computed.len() as u64,
        root: root.to_base64(),
        consistent_with,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use custody_core::jcs;
    use custody_core::note::NoteSigner;

    use super::*;

    use crate::fixtures::ORIGIN;

    fn envelope(n: u64) -> Vec<u8> {
        jcs::canonicalize(&crate::fixtures::envelope(n)).unwrap()
    }

    fn checkpoint(signer: &NoteSigner, leaves: &[Hash]) -> String {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: leaves.len() as u64,
            root: merkle::root_from_leaves(leaves),
            extensions: vec![],
        };
        SignedCheckpoint::sign(cp, signer).unwrap().note
    }

    /// An export of `data`, its checkpoint over the recorded leaf hashes of `recorded`.
    fn export(signer: &NoteSigner, data: &[Vec<u8>], recorded: &[Vec<u8>]) -> Vec<u8> {
        let leaves: Vec<Hash> = recorded.iter().map(|d| merkle::leaf_hash(d)).collect();
        let header = ExportHeader {
            format: EXPORT_FORMAT.into(),
            origin: ORIGIN.into(),
            verifier_key: signer.verifier().to_string(),
            checkpoint: checkpoint(signer, &leaves),
        };
        let mut out = serde_json::to_vec(&header).unwrap();
        for (i, d) in data.iter().enumerate() {
            out.push(b'\n');
            let leaf = ExportedLeaf {
                index: i as u64,
                recorded_leaf_hash: leaves[i].to_hex(),
                leaf_data: Base64::encode_string(d),
            };
            out.extend(serde_json::to_vec(&leaf).unwrap());
        }
        out
    }

    #[test]
    fn an_export_verifies_and_extends_a_saved_checkpoint() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let data: Vec<Vec<u8>> = (0..7).map(envelope).collect();
        let leaves: Vec<Hash> = data.iter().map(|d| merkle::leaf_hash(d)).collect();
        let saved = checkpoint(&signer, &leaves[..4]);
        let r = verify_log(
            export(&signer, &data, &data).as_slice(),
            &signer.verifier(),
            &[saved],
        )
        .unwrap();
        assert!(r.ok, "{:?}", r.problems);
        assert_eq!((r.size, r.consistent_with), (7, vec![4]));
    }

    #[test]
    fn a_changed_entry_is_named_and_a_foreign_key_refused() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let data: Vec<Vec<u8>> = (0..7).map(envelope).collect();
        let mut changed = data.clone();
        changed[3] = envelope(30);
        let r = verify_log(
            export(&signer, &changed, &data).as_slice(),
            &signer.verifier(),
            &[],
        )
        .unwrap();
        assert!(!r.ok);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert_eq!(r.problems[0].index, Some(3));

        let other = NoteSigner::generate(ORIGIN).unwrap();
        let err = verify_log(
            export(&signer, &data, &data).as_slice(),
            &other.verifier(),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, LogError::Unsigned(_)), "{err}");
        let err = verify_log(&b""[..], &signer.verifier(), &[]).unwrap_err();
        assert_eq!(err.to_string(), "the export is empty");
    }
}
