//! Salted payload commitments (SPEC §2, §8; the SD-JWT disclosure idea of RFC 9901).
//!
//! Personal data never enters a leaf. The envelope carries only
//! `sha256:<hex(SHA-256(salt || jcs(payload)))>`; the payload and its salt are stored beside the
//! leaf. Whoever is allowed to see the payload can re-check it against the logged commitment,
//! and erasing payload and salt leaves a commitment that can no longer be opened or brute-forced
//! (the 256-bit salt rules out guessing low-entropy payloads), while every proof stays valid.

use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::jcs::{self, JcsError};

/// Prefix of every digest custody writes, matching `sha256sum` output after the colon.
pub const SHA256_PREFIX: &str = "sha256:";

/// 32 fresh random bytes, one per payload, never reused.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt(pub [u8; 32]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(..)")
    }
}

impl Salt {
    /// Draws a salt from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, CommitmentError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| CommitmentError::Rng(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Parses the lowercase hex form used on the wire and in exports.
    pub fn from_hex(s: &str) -> Result<Self, CommitmentError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| CommitmentError::BadSalt)?;
        Ok(Self(bytes))
    }

    /// Lowercase hex, as returned next to a payload.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Why a commitment could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentError {
    /// The payload is not canonicalisable JSON.
    #[error(transparent)]
    Json(#[from] JcsError),
    /// The operating system refused randomness.
    #[error("no randomness available for a salt: {0}")]
    Rng(String),
    /// A salt that is not 64 hex digits.
    #[error("salt must be 64 lowercase hex digits (32 bytes)")]
    BadSalt,
    /// A commitment string that is not `sha256:` + 64 lowercase hex digits.
    #[error("commitment must be \"sha256:\" followed by 64 lowercase hex digits")]
    BadCommitment,
    /// The payload and salt do not open the commitment.
    #[error("payload and salt do not match the logged commitment")]
    Mismatch,
}

/// `sha256:` + hex of `SHA-256(salt || jcs(payload))`.
pub fn commit(salt: &Salt, payload: &Value) -> Result<String, CommitmentError> {
    let canonical = jcs::canonicalize(payload)?;
    let mut h = Sha256::new();
    h.update(salt.0);
    h.update(&canonical);
    Ok(format!("{SHA256_PREFIX}{}", hex::encode(h.finalize())))
}

/// Checks `payload` and `salt` open `commitment`, comparing digests in constant time.
pub fn verify(salt: &Salt, payload: &Value, commitment: &str) -> Result<(), CommitmentError> {
    let expected = parse_sha256(commitment).ok_or(CommitmentError::BadCommitment)?;
    let actual = commit(salt, payload)?;
    let actual = parse_sha256(&actual).ok_or(CommitmentError::BadCommitment)?;
    if bool::from(expected.ct_eq(&actual)) {
        Ok(())
    } else {
        Err(CommitmentError::Mismatch)
    }
}

/// Parses `sha256:<64 lowercase hex>` into its 32 bytes; `None` for anything else, including
/// uppercase hex, so one digest has exactly one spelling in the log.
pub fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    let hex_part = s.strip_prefix(SHA256_PREFIX)?;
    if hex_part.len() != 64
        || !hex_part
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commitment_is_sha256_of_salt_then_canonical_payload() {
        let salt = Salt([7u8; 32]);
        let payload = json!({"b": 1, "a": "x"});
        let mut h = Sha256::new();
        h.update([7u8; 32]);
        h.update(br#"{"a":"x","b":1}"#);
        let expected = format!("sha256:{}", hex::encode(h.finalize()));
        assert_eq!(commit(&salt, &payload).unwrap(), expected);
        verify(&salt, &payload, &expected).unwrap();
        assert_eq!(
            verify(&Salt([8u8; 32]), &payload, &expected),
            Err(CommitmentError::Mismatch)
        );
        assert_eq!(
            verify(&salt, &payload, &expected.to_uppercase()),
            Err(CommitmentError::BadCommitment)
        );
    }

    #[test]
    fn fresh_salts_differ_and_hide_equal_payloads() {
        let (a, b) = (Salt::generate().unwrap(), Salt::generate().unwrap());
        assert_ne!(a, b);
        let p = json!("alice@example.com");
        assert_ne!(commit(&a, &p).unwrap(), commit(&b, &p).unwrap());
        assert_eq!(Salt::from_hex(&a.to_hex()).unwrap(), a);
        assert_eq!(format!("{a:?}"), "Salt(..)");
    }
}
