//! Checks the proofs every audit answer and evidence pack carries, so nothing is shown as
//! proven that was not: each log's signed checkpoint is opened with a verifier key, each
//! entry's leaf hash is re-derived from its envelope (RFC 8785, then RFC 9162 leaf hash), and
//! each inclusion proof is folded up to the signed root. The CLI's read commands and the check
//! of an evidence pack share this one implementation.

use std::collections::BTreeMap;

use base64ct::{Base64, Encoding};
use custody_api::evidence::{LogCheckpoint, Proven, ProvenEntry};
use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::commitment::{self, Salt};
use custody_core::envelope::Envelope;
use custody_core::jcs;
use custody_core::merkle::{self, Hash};
use custody_core::note::{Note, NoteVerifier};
use serde::Serialize;

use crate::origin_tail;

/// Which verifier key opens each log's checkpoint.
#[derive(Debug, Clone, Copy)]
pub enum Keys<'a> {
    /// Keys the user pinned (`--vkey`), matched to each checkpoint by its origin. A checkpoint
    /// no pinned key names is a failure.
    Pinned(&'a [NoteVerifier]),
    /// The key each answer carries for its own logs: proves the answer is consistent with what
    /// the server signs, not that the server is the one you trust.
    Announced,
    /// Keys by log name, e.g. read from a pack's `keys/` directory.
    ByLog(&'a BTreeMap<String, NoteVerifier>),
}

impl Keys<'_> {
    /// Whether the keys come from the user rather than from the material being checked.
    pub fn pinned(&self) -> bool {
        matches!(self, Keys::Pinned(_))
    }
}

/// What a problem is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// The checkpoint of one log.
    Checkpoint {
        /// Log name.
        log: String,
    },
    /// One entry.
    Entry {
        /// Log name.
        log: String,
        /// Index in that log.
        index: u64,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Checkpoint { log } => write!(f, "{log} checkpoint"),
            Target::Entry { log, index } => write!(f, "{log}#{index}"),
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// What failed.
    pub target: Target,
    /// The check: `signature`, `leaf_hash`, `inclusion`, `envelope`, `payload_commitment`.
    pub check: &'static str,
    /// Why.
    pub message: String,
}

/// Outcome of checking the proofs of one answer.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Entries whose leaf hash and inclusion proof were checked.
    pub entries: usize,
    /// Checkpoints whose signature verified: `(log, size)`.
    pub checkpoints: Vec<(String, u64)>,
    /// Payloads that opened their commitments.
    pub payloads: usize,
    /// Whether the keys were pinned by the user.
    pub pinned: bool,
    /// Everything that failed; empty when all is proven.
    pub failures: Vec<Failure>,
}

impl Report {
    /// `verified: 14 entries against governance@57, inference@3001` and where the keys came
    /// from.
    pub fn summary(&self) -> String {
        let logs: Vec<String> = self
            .checkpoints
            .iter()
            .map(|(l, s)| format!("{l}@{s}"))
            .collect();
        let against = if logs.is_empty() {
            String::new()
        } else {
            format!(" against {}", logs.join(", "))
        };
        let trust = if self.pinned {
            "proofs checked against the pinned key(s)"
        } else {
            "proofs checked against the server's key; pin one with --vkey"
        };
        format!(
            "verified: {} {}{against} ({trust})",
            self.entries,
            if self.entries == 1 {
                "entry"
            } else {
                "entries"
            }
        )
    }

    /// The report when every check passed; otherwise an error naming each failure.
    pub fn into_result(self) -> Result<Report, Unproven> {
        if self.failures.is_empty() {
            Ok(self)
        } else {
            Err(Unproven {
                failures: self.failures,
            })
        }
    }
}

/// An answer whose proofs do not all verify: it must not be shown as evidence.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the answer's proofs do NOT verify, so it is not shown: {}", list(.failures))]
pub struct Unproven {
    /// Every check that failed.
    pub failures: Vec<Failure>,
}

/// `target check: message` of each failure, `; `-separated.
fn list(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|f| format!("{} {}: {}", f.target, f.check, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The origin a signed note claims, read without checking its signature (to pick the key).
fn claimed_origin(note: &str) -> Option<String> {
    let n = Note::parse(note).ok()?;
    Checkpoint::parse(&n.text).ok().map(|c| c.origin)
}

/// Opens one log's checkpoint with the chosen key and checks it is the one the answer names.
fn open_checkpoint(
    lc: &LogCheckpoint,
    keys: Keys<'_>,
    tenant: Option<&str>,
) -> Result<Checkpoint, String> {
    let origin = claimed_origin(&lc.checkpoint)
        .ok_or_else(|| "not a C2SP signed checkpoint note".to_owned())?;
    let verifier = match keys {
        Keys::Pinned(pinned) => pinned
            .iter()
            .find(|v| v.name() == origin)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "no pinned --vkey is for {origin}: pin every log the answer uses (`custody vkey -t TENANT -l {}`)",
                    lc.log
                )
            })?,
        Keys::Announced => NoteVerifier::parse(lc.verifier_key.trim())
            .map_err(|e| format!("the answer's verifier key is malformed: {e}"))?,
        Keys::ByLog(by_log) => by_log
            .get(&lc.log)
            .cloned()
            .ok_or_else(|| format!("no verifier key for the {} log", lc.log))?,
    };
    let signed = SignedCheckpoint::open(&lc.checkpoint, &verifier).map_err(|e| {
        format!(
            "checkpoint is not signed by {}{}: {e}",
            verifier,
            if keys.pinned() { " (pinned)" } else { "" }
        )
    })?;
    let cp = signed.checkpoint;
    let (cp_tenant, cp_log) = origin_tail(&cp.origin);
    if cp_log != Some(lc.log.as_str()) {
        return Err(format!(
            "checkpoint is for {}, not the {} log",
            cp.origin, lc.log
        ));
    }
    if let Some(t) = tenant
        && cp_tenant != Some(t)
    {
        return Err(format!("checkpoint is for {}, not tenant {t}", cp.origin));
    }
    if cp.size != lc.size {
        return Err(format!(
            "the signed checkpoint has size {}, the answer says {}",
            cp.size, lc.size
        ));
    }
    Ok(cp)
}

/// The canonical envelope bytes (the leaf data) of an entry.
pub fn leaf_data(entry: &ProvenEntry) -> Result<Vec<u8>, String> {
    jcs::canonicalize(&entry.envelope).map_err(|e| format!("envelope is not canonicalisable: {e}"))
}

/// Checks one entry against its log's verified checkpoint.
fn check_entry(entry: &ProvenEntry, cp: &Checkpoint, failures: &mut Vec<Failure>) -> bool {
    let target = Target::Entry {
        log: entry.log.clone(),
        index: entry.index,
    };
    let mut fail = |check: &'static str, message: String| {
        failures.push(Failure {
            target: target.clone(),
            check,
            message,
        });
        false
    };
    let data = match leaf_data(entry) {
        Ok(d) => d,
        Err(e) => return fail("envelope", e),
    };
    match Envelope::from_canonical(&data) {
        Ok(env) => {
            let (tenant, log) = origin_tail(&cp.origin);
            if Some(env.tenant.as_str()) != tenant || Some(env.log.as_str()) != log {
                return fail(
                    "envelope",
                    format!(
                        "the envelope names {}/{}, but its proof is for {}",
                        env.tenant, env.log, cp.origin
                    ),
                );
            }
        }
        Err(e) => return fail("envelope", format!("not a custody envelope: {e}")),
    }
    let leaf = merkle::leaf_hash(&data);
    match Hash::from_hex(&entry.leaf_hash) {
        Ok(claimed) if claimed == leaf => {}
        Ok(claimed) => {
            return fail(
                "leaf_hash",
                format!("the envelope hashes to {leaf}, but the answer says {claimed}"),
            );
        }
        Err(_) => {
            return fail(
                "leaf_hash",
                format!("{:?} is not a hex hash", entry.leaf_hash),
            );
        }
    }
    let proof: Result<Vec<Hash>, _> = entry.proof.iter().map(|h| Hash::from_base64(h)).collect();
    let Ok(proof) = proof else {
        return fail("inclusion", "a proof hash is not base64 of 32 bytes".into());
    };
    if let Err(e) = merkle::verify_inclusion(entry.index, cp.size, &leaf, &proof, &cp.root) {
        return fail(
            "inclusion",
            format!(
                "the inclusion proof does not lead to the signed root of {}@{}: {e}",
                entry.log, cp.size
            ),
        );
    }
    true
}

/// Checks that an entry's payload and salt open its envelope's payload commitment. `None` when
/// the entry carries no payload.
pub fn check_payload(entry: &ProvenEntry) -> Option<Result<(), String>> {
    let payload = entry.payload.as_ref()?;
    Some(open_commitment(entry, payload))
}

fn open_commitment(entry: &ProvenEntry, payload: &serde_json::Value) -> Result<(), String> {
    let salt = entry
        .salt
        .as_deref()
        .ok_or("a payload without its salt cannot be checked")?;
    let bytes = Base64::decode_vec(salt).map_err(|_| "the salt is not base64".to_owned())?;
    let salt: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "the salt is not 32 bytes".to_owned())?;
    let commitment = entry
        .envelope
        .get("payload_commitment")
        .and_then(|c| c.as_str())
        .ok_or("the envelope has no payload_commitment")?;
    commitment::verify(&Salt(salt), payload, commitment).map_err(|e| {
        format!("sha256(salt || jcs(payload)) is not the envelope's payload_commitment: {e}")
    })
}

/// Checks every checkpoint and entry of an answer. `tenant`, when given, must be the tenant
/// every checkpoint's origin names.
pub fn check(proven: &Proven, keys: Keys<'_>, tenant: Option<&str>) -> Report {
    let mut failures = Vec::new();
    let mut opened: BTreeMap<String, Checkpoint> = BTreeMap::new();
    let mut checkpoints = Vec::new();
    for lc in &proven.checkpoints {
        if opened.contains_key(&lc.log) {
            failures.push(Failure {
                target: Target::Checkpoint {
                    log: lc.log.clone(),
                },
                check: "signature",
                message: "the answer carries two checkpoints for this log".into(),
            });
            continue;
        }
        match open_checkpoint(lc, keys, tenant) {
            Ok(cp) => {
                checkpoints.push((lc.log.clone(), cp.size));
                opened.insert(lc.log.clone(), cp);
            }
            Err(message) => failures.push(Failure {
                target: Target::Checkpoint {
                    log: lc.log.clone(),
                },
                check: "signature",
                message,
            }),
        }
    }
    let mut entries = 0;
    let mut payloads = 0;
    for e in &proven.entries {
        let Some(cp) = opened.get(&e.log) else {
            if proven.checkpoints.iter().all(|c| c.log != e.log) {
                failures.push(Failure {
                    target: Target::Entry {
                        log: e.log.clone(),
                        index: e.index,
                    },
                    check: "inclusion",
                    message: format!("the answer has no checkpoint for the {} log", e.log),
                });
            }
            continue;
        };
        if check_entry(e, cp, &mut failures) {
            entries += 1;
        }
        match check_payload(e) {
            None => {}
            Some(Ok(())) => payloads += 1,
            Some(Err(message)) => failures.push(Failure {
                target: Target::Entry {
                    log: e.log.clone(),
                    index: e.index,
                },
                check: "payload_commitment",
                message,
            }),
        }
    }
    Report {
        entries,
        checkpoints,
        payloads,
        pinned: keys.pinned(),
        failures,
    }
}

/// Checks an answer's proofs with the pinned keys, or the answer's own when none are pinned,
/// and fails unless everything verifies.
pub fn verify_answer(
    proven: &Proven,
    pinned: &[NoteVerifier],
    tenant: &str,
) -> Result<Report, Unproven> {
    let keys = if pinned.is_empty() {
        Keys::Announced
    } else {
        Keys::Pinned(pinned)
    };
    check(proven, keys, Some(tenant)).into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_api::evidence::LogCheckpoint;
    use custody_core::commitment::commit;
    use custody_core::note::NoteSigner;
    use serde_json::json;

    use crate::fixtures::{ORIGIN, envelope};

    /// Five entries, all proven against one signed checkpoint; entry 2 has a payload.
    fn answer(signer: &NoteSigner) -> Proven {
        let salt = Salt([7u8; 32]);
        let payload = json!({"operator": "someone"});
        let mut envelopes: Vec<serde_json::Value> = (0..5).map(envelope).collect();
        envelopes[2]["payload_commitment"] = json!(commit(&salt, &payload).unwrap());
        let leaves: Vec<Hash> = envelopes
            .iter()
            .map(|e| merkle::leaf_hash(&jcs::canonicalize(e).unwrap()))
            .collect();
        let root = merkle::root_from_leaves(&leaves);
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: 5,
            root,
            extensions: vec![],
        };
        let note = SignedCheckpoint::sign(cp, signer).unwrap().note;
        let entries = envelopes
            .into_iter()
            .enumerate()
            .map(|(i, envelope)| ProvenEntry {
                log: "governance".into(),
                index: i as u64,
                role: "x".into(),
                envelope,
                leaf_hash: leaves[i].to_hex(),
                proof: merkle::inclusion_proof(i as u64, &leaves)
                    .unwrap()
                    .iter()
                    .map(Hash::to_base64)
                    .collect(),
                payload: (i == 2).then(|| payload.clone()),
                salt: (i == 2).then(|| Base64::encode_string(&salt.0)),
            })
            .collect();
        Proven {
            entries,
            checkpoints: vec![LogCheckpoint {
                log: "governance".into(),
                size: 5,
                checkpoint: note,
                verifier_key: signer.verifier().to_string(),
            }],
        }
    }

    fn checks(r: &Report) -> Vec<(String, &'static str)> {
        r.failures
            .iter()
            .map(|f| (f.target.to_string(), f.check))
            .collect()
    }

    #[test]
    fn a_sound_answer_verifies_with_announced_and_pinned_keys() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let p = answer(&signer);
        let r = check(&p, Keys::Announced, Some("acme"));
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!((r.entries, r.payloads), (5, 1));
        assert_eq!(
            r.summary(),
            "verified: 5 entries against governance@5 (proofs checked against the server's key; pin one with --vkey)"
        );
        let pinned = [signer.verifier()];
        let r = check(&p, Keys::Pinned(&pinned), Some("acme"));
        assert!(r.failures.is_empty() && r.pinned, "{:?}", r.failures);
        assert!(verify_answer(&p, &pinned, "acme").is_ok());
    }

    #[test]
    fn every_kind_of_tampering_is_named() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let other = NoteSigner::generate(ORIGIN).unwrap();

        // An envelope changed after the fact.
        let mut p = answer(&signer);
        p.entries[1].envelope["body"]["n"] = json!(99);
        let r = check(&p, Keys::Announced, Some("acme"));
        assert_eq!(checks(&r), [("governance#1".into(), "leaf_hash")]);

        // ... with its leaf hash recomputed to match: the proof no longer reaches the root.
        let data = jcs::canonicalize(&p.entries[1].envelope).unwrap();
        p.entries[1].leaf_hash = merkle::leaf_hash(&data).to_hex();
        let r = check(&p, Keys::Announced, Some("acme"));
        assert_eq!(checks(&r), [("governance#1".into(), "inclusion")]);

        // A key the user did not pin; another tenant's answer.
        let p = answer(&other);
        let pinned = [signer.verifier()];
        let r = check(&p, Keys::Pinned(&pinned), Some("acme"));
        assert_eq!(checks(&r), [("governance checkpoint".into(), "signature")]);
        let err = verify_answer(&p, &pinned, "acme").unwrap_err().to_string();
        assert!(err.contains("do NOT verify"), "{err}");
        let r = check(&p, Keys::Announced, Some("beta"));
        assert_eq!(checks(&r), [("governance checkpoint".into(), "signature")]);

        // A payload that does not open its commitment.
        let mut p = answer(&signer);
        p.entries[2].payload = Some(json!({"operator": "someone else"}));
        let r = check(&p, Keys::Announced, Some("acme"));
        assert_eq!(checks(&r), [("governance#2".into(), "payload_commitment")]);

        // An entry of a log the answer has no checkpoint for; a size that is not the signed one.
        let mut p = answer(&signer);
        p.entries[0].log = "inference".into();
        let r = check(&p, Keys::Announced, Some("acme"));
        assert_eq!(checks(&r), [("inference#0".into(), "inclusion")]);
        let mut p = answer(&signer);
        p.checkpoints[0].size = 4;
        let r = check(&p, Keys::Announced, Some("acme"));
        assert_eq!(checks(&r), [("governance checkpoint".into(), "signature")]);
    }
}
