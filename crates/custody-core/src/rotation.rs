//! Key rotations as a log records them: a `key.rotated` entry, signed under the old key, that
//! names the old and the new verifier key.
//!
//! The ledger reads them to finish a rotation a crash interrupted, and deep verification reads
//! them to know which key must have signed each stored checkpoint. Both parse the entries
//! here, so the two can never disagree about what an announcement says.

use serde_json::Value;

/// Type of the entry that announces a log's new signing key.
pub const KEY_ROTATED: &str = "key.rotated";

/// One announced change of a log's signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    /// Index of the `key.rotated` entry; checkpoints up to `index + 1` are signed with the old
    /// key, later ones with the new.
    pub index: u64,
    /// Verifier key before.
    pub old_key: String,
    /// Verifier key after.
    pub new_key: String,
}

/// Why a stored `key.rotated` entry could not be read: the log holds something custody never
/// writes, so whoever reads it must treat the log as corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// The envelope is not JSON.
    #[error("entry {index}: {reason}")]
    NotJson {
        /// Index of the entry.
        index: u64,
        /// What the JSON parser said.
        reason: String,
    },
    /// The body lacks one of the two verifier keys, or it is not a string.
    #[error("key rotation entry {index} lacks {field}")]
    MissingKey {
        /// Index of the entry.
        index: u64,
        /// `old_verifier_key` or `new_verifier_key`.
        field: &'static str,
    },
}

/// The rotation the `key.rotated` entry at `index` announces, read from its canonical
/// envelope bytes.
pub fn rotation_of(index: u64, envelope: &[u8]) -> Result<KeyRotation, RotationError> {
    let env: Value = serde_json::from_slice(envelope).map_err(|e| RotationError::NotJson {
        index,
        reason: e.to_string(),
    })?;
    let field = |field: &'static str| {
        env["body"][field]
            .as_str()
            .map(str::to_owned)
            .ok_or(RotationError::MissingKey { index, field })
    };
    Ok(KeyRotation {
        index,
        old_key: field("old_verifier_key")?,
        new_key: field("new_verifier_key")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_names_both_keys() {
        let envelope = br#"{"type":"key.rotated","body":{"old_verifier_key":"a+1+x","new_verifier_key":"a+2+y"}}"#;
        assert_eq!(
            rotation_of(7, envelope),
            Ok(KeyRotation {
                index: 7,
                old_key: "a+1+x".into(),
                new_key: "a+2+y".into(),
            })
        );
    }

    #[test]
    fn a_damaged_announcement_is_named_by_its_index() {
        let err = rotation_of(3, b"{not json").unwrap_err().to_string();
        assert!(err.starts_with("entry 3: "), "{err}");
        let err = rotation_of(4, br#"{"body":{"old_verifier_key":"a+1+x"}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key rotation entry 4 lacks new_verifier_key"
        );
        let err = rotation_of(5, br#"{"body":{"old_verifier_key":1}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key rotation entry 5 lacks old_verifier_key"
        );
    }
}
