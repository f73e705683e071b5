//! Offline verification: nothing here talks to a server. Everything is checked against a
//! verifier key the user pinned, with the RFC 9162 and C2SP algorithms of `custody-core`.

use std::io::BufRead;

use anyhow::{Context, bail};
use base64ct::{Base64, Encoding};
use custody_api::ExportedLeaf;
use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::commitment::{self, Salt};
use custody_core::envelope::Envelope;
use custody_core::jcs;
use custody_core::merkle::{self, Hash};
use custody_core::note::NoteVerifier;
use custody_core::tlog_proof::TlogProof;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// Reads a verifier key given inline or as a file holding it.
pub fn read_vkey(arg: &str) -> anyhow::Result<NoteVerifier> {
    let text = if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read --vkey file {arg}"))?
    } else {
        arg.to_string()
    };
    NoteVerifier::parse(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "--vkey: {e}; pass the verifier key string (origin+keyid+key) from `custody vkey` or a file holding it"
        )
    })
}

/// Outcome of verifying one entry.
#[derive(Debug, Serialize)]
pub struct EntryReport {
    /// Whether every check passed.
    pub ok: bool,
    /// Origin of the checkpoint.
    pub origin: String,
    /// Entry index.
    pub index: u64,
    /// Checkpoint size the proof is against.
    pub checkpoint_size: u64,
    /// Leaf hash recomputed from the envelope, hex.
    pub leaf_hash: String,
    /// Whether a payload was checked against its commitment.
    pub payload_checked: bool,
}

/// Verifies an entry (an envelope, or the JSON of `custody get`) against a tlog-proof.
pub fn verify_entry(
    entry_json: &[u8],
    proof_text: &str,
    vkey: &NoteVerifier,
) -> anyhow::Result<EntryReport> {
    let value = jcs::parse_strict(entry_json).context("--entry is not valid JSON")?;
    let (envelope, payload, salt) = match value.get("envelope") {
        Some(env) => (
            env.clone(),
            value.get("payload").cloned(),
            value.get("salt").and_then(Value::as_str).map(str::to_owned),
        ),
        None => (value, None, None),
    };
    let canonical = jcs::canonicalize(&envelope).context("--entry envelope")?;
    let parsed = Envelope::from_canonical(&canonical)
        .map_err(|e| anyhow::anyhow!("--entry is not a custody envelope: {e}"))?;
    let leaf = merkle::leaf_hash(&canonical);
    let proof = TlogProof::parse(proof_text).map_err(|e| anyhow::anyhow!("--proof: {e}"))?;
    let checkpoint = proof
        .verify(&leaf, vkey)
        .map_err(|e| anyhow::anyhow!("entry is NOT proven by this tlog-proof: {e}"))?;
    if origin_tail(&checkpoint.origin) != (Some(parsed.tenant.as_str()), Some(parsed.log.as_str()))
    {
        bail!(
            "the entry names {}/{}, but the proof is for the log {}",
            parsed.tenant,
            parsed.log,
            checkpoint.origin
        );
    }
    let mut payload_checked = false;
    let payload = payload.filter(|p| !p.is_null());
    if payload.is_some() && (salt.is_none() || parsed.payload_commitment.is_none()) {
        bail!(
            "--entry carries a payload but no salt or no payload_commitment, so it cannot be checked: use the output of `custody get --json`"
        );
    }
    if let (Some(p), Some(s), Some(c)) = (payload, salt, parsed.payload_commitment.as_deref()) {
        let salt = Salt::from_hex(&s).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        commitment::verify(&salt, &p, c)
            .map_err(|e| anyhow::anyhow!("payload does not open the logged commitment: {e}"))?;
        payload_checked = true;
    }
    Ok(EntryReport {
        ok: true,
        origin: checkpoint.origin,
        index: proof.index,
        checkpoint_size: checkpoint.size,
        leaf_hash: leaf.to_hex(),
        payload_checked,
    })
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
) -> anyhow::Result<LogReport> {
    let mut lines = export.lines();
    let header: ExportHeader = match lines.next() {
        Some(l) => serde_json::from_str(&l.context("cannot read the export")?)
            .context("the export's first line is not a custody export header")?,
        None => bail!("the export is empty"),
    };
    if header.format != EXPORT_FORMAT {
        bail!("unsupported export format {:?}", header.format);
    }
    let signed = SignedCheckpoint::open(&header.checkpoint, vkey).map_err(|e| {
        anyhow::anyhow!("the export's checkpoint is not signed by the pinned key: {e}")
    })?;
    let cp: Checkpoint = signed.checkpoint;
    let (tenant, log) = origin_tail(&cp.origin);

    let mut problems = Vec::new();
    let mut computed: Vec<Hash> = Vec::with_capacity(cp.size.min(1 << 24) as usize);
    let mut recorded: Vec<Hash> = Vec::with_capacity(cp.size.min(1 << 24) as usize);
    let mut mismatched: Vec<u64> = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.context("cannot read the export")?;
        if line.is_empty() {
            continue;
        }
        let expected = n as u64;
        let leaf: ExportedLeaf = serde_json::from_str(&line)
            .with_context(|| format!("export line {} is not a leaf record", n + 2))?;
        if leaf.index != expected {
            bail!(
                "export line {} holds index {}, expected {expected}: the export is incomplete or reordered",
                n + 2,
                leaf.index
            );
        }
        let data = Base64::decode_vec(&leaf.leaf_data)
            .map_err(|_| anyhow::anyhow!("index {expected}: leaf_data is not base64"))?;
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
            .map_err(|e| {
                anyhow::anyhow!("--checkpoint #{}: not signed by the pinned key: {e}", i + 1)
            })?
            .checkpoint;
        if old.origin != cp.origin {
            bail!(
                "--checkpoint #{} is for {}, not {}",
                i + 1,
                old.origin,
                cp.origin
            );
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

/// `(tenant, log)` from `<server>/<tenant>/<log>`.
fn origin_tail(origin: &str) -> (Option<&str>, Option<&str>) {
    let mut parts = origin.rsplitn(3, '/');
    let log = parts.next();
    let tenant = parts.next();
    (tenant, log)
}
