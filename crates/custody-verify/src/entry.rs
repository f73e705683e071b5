//! One entry against its C2SP tlog-proof: the entry's envelope is hashed into its leaf, the
//! proof's checkpoint is opened with the pinned key, and the leaf is folded up to the signed
//! root; a payload that comes with the entry must open the envelope's commitment.

use custody_core::commitment::{self, CommitmentError, Salt};
use custody_core::envelope::{Envelope, ValidationError};
use custody_core::jcs::{self, JcsError};
use custody_core::merkle;
use custody_core::note::NoteVerifier;
use custody_core::tlog_proof::{TlogProof, TlogProofError};
use serde::Serialize;
use serde_json::Value;

use crate::origin_tail;

/// Why an entry could not be checked, or was not proven.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The entry file is not JSON.
    #[error("--entry is not valid JSON")]
    NotJson(#[source] JcsError),
    /// The envelope cannot be put in RFC 8785 form.
    #[error("--entry envelope")]
    NotCanonical(#[source] JcsError),
    /// The JSON is not a custody envelope.
    #[error("--entry is not a custody envelope: {0}")]
    NotAnEnvelope(ValidationError),
    /// The proof file is not a C2SP tlog-proof.
    #[error("--proof: {0}")]
    MalformedProof(TlogProofError),
    /// The proof does not prove this entry under the pinned key.
    #[error("entry is NOT proven by this tlog-proof: {0}")]
    NotProven(TlogProofError),
    /// The proof is for another log than the one the envelope names.
    #[error("the entry names {tenant}/{log}, but the proof is for the log {origin}")]
    WrongLog {
        /// The tenant the envelope names.
        tenant: String,
        /// The log the envelope names.
        log: String,
        /// The origin of the proof's checkpoint.
        origin: String,
    },
    /// A payload came without what it takes to check it.
    #[error(
        "--entry carries a payload but no salt or no payload_commitment, so it cannot be checked: use the output of `custody get --json`"
    )]
    UncheckablePayload,
    /// The salt is not 32 bytes of hex.
    #[error("salt: {0}")]
    MalformedSalt(CommitmentError),
    /// The payload and salt do not give the envelope's commitment.
    #[error("payload does not open the logged commitment: {0}")]
    PayloadMismatch(CommitmentError),
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
) -> Result<EntryReport, EntryError> {
    let value = jcs::parse_strict(entry_json).map_err(EntryError::NotJson)?;
    let (envelope, payload, salt) = match value.get("envelope") {
        Some(env) => (
            env.clone(),
            value.get("payload").cloned(),
            value.get("salt").and_then(Value::as_str).map(str::to_owned),
        ),
        None => (value, None, None),
    };
    let canonical = jcs::canonicalize(&envelope).map_err(EntryError::NotCanonical)?;
    let parsed = Envelope::from_canonical(&canonical).map_err(EntryError::NotAnEnvelope)?;
    let leaf = merkle::leaf_hash(&canonical);
    let proof = TlogProof::parse(proof_text).map_err(EntryError::MalformedProof)?;
    let checkpoint = proof.verify(&leaf, vkey).map_err(EntryError::NotProven)?;
    if origin_tail(&checkpoint.origin) != (Some(parsed.tenant.as_str()), Some(parsed.log.as_str()))
    {
        return Err(EntryError::WrongLog {
            tenant: parsed.tenant.to_string(),
            log: parsed.log.to_string(),
            origin: checkpoint.origin,
        });
    }
    let mut payload_checked = false;
    let payload = payload.filter(|p| !p.is_null());
    if payload.is_some() && (salt.is_none() || parsed.payload_commitment.is_none()) {
        return Err(EntryError::UncheckablePayload);
    }
    if let (Some(p), Some(s), Some(c)) = (payload, salt, parsed.payload_commitment.as_deref()) {
        let salt = Salt::from_hex(&s).map_err(EntryError::MalformedSalt)?;
        commitment::verify(&salt, &p, c).map_err(EntryError::PayloadMismatch)?;
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

#[cfg(test)]
mod tests {
    use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
    use custody_core::commitment::commit;
    use custody_core::merkle::Hash;
    use custody_core::note::NoteSigner;
    use serde_json::json;

    use super::*;
    use crate::fixtures::{ORIGIN, envelope};

    /// Three entries' envelopes (the second commits to `payload` under `salt`) and the
    /// tlog-proof of the second.
    fn proven(signer: &NoteSigner, salt: &Salt, payload: &Value) -> (Value, String) {
        let envelopes: Vec<Value> = (0..3u64)
            .map(|n| {
                let mut e = envelope(n);
                if n == 1 {
                    e["payload_commitment"] = json!(commit(salt, payload).unwrap());
                }
                e
            })
            .collect();
        let leaves: Vec<Hash> = envelopes
            .iter()
            .map(|e| merkle::leaf_hash(&jcs::canonicalize(e).unwrap()))
            .collect();
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: 3,
            root: merkle::root_from_leaves(&leaves),
            extensions: vec![],
        };
        let proof = TlogProof {
            extra: None,
            index: 1,
            path: merkle::inclusion_proof(1, &leaves).unwrap(),
            checkpoint: SignedCheckpoint::sign(cp, signer).unwrap().note,
        };
        (envelopes[1].clone(), proof.to_text())
    }

    #[test]
    fn an_entry_and_its_payload_are_proven() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let salt = Salt([9; 32]);
        let payload = json!({"operator": "someone"});
        let (envelope, proof) = proven(&signer, &salt, &payload);
        let got = json!({"envelope": envelope, "payload": payload, "salt": hex::encode(salt.0)});
        let r = verify_entry(got.to_string().as_bytes(), &proof, &signer.verifier()).unwrap();
        assert!(r.ok && r.payload_checked);
        assert_eq!((r.index, r.checkpoint_size), (1, 3));
    }

    #[test]
    fn a_changed_entry_or_payload_is_not_proven() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let salt = Salt([9; 32]);
        let payload = json!({"operator": "someone"});
        let (mut envelope, proof) = proven(&signer, &salt, &payload);
        let other = json!({"envelope": envelope, "payload": {"operator": "else"}, "salt": hex::encode(salt.0)});
        let err =
            verify_entry(other.to_string().as_bytes(), &proof, &signer.verifier()).unwrap_err();
        assert!(matches!(err, EntryError::PayloadMismatch(_)), "{err}");
        envelope["body"]["n"] = json!(7);
        let err =
            verify_entry(envelope.to_string().as_bytes(), &proof, &signer.verifier()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("entry is NOT proven by this tlog-proof"),
            "{err}"
        );
    }
}
