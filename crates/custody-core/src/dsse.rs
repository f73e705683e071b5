//! DSSE, the Dead Simple Signing Envelope (github.com/secure-systems-lab/dsse, protocol v1):
//! the signed wrapper around every approval (SPEC §7).
//!
//! A signature never covers the payload bytes alone but their pre-authentication encoding
//! ([`pae`]), which binds the payload type, so a signature over one kind of document can never
//! be replayed as another. The envelope is JSON with `payloadType`, a base64 `payload` and a
//! list of `{keyid, sig}`; `keyid` is only a hint and is never trusted.
//!
//! Base64 here is RFC 4648 §4 standard base64 with padding, decoded canonically with
//! `base64ct`. DSSE also allows the URL-safe alphabet; custody writes and reads only the
//! standard one, as Sigstore, in-toto and the DSSE test vectors do.

use base64ct::{Base64, Encoding};
use serde_json::{Map, Value};

use crate::envelope::ValidationError;
use crate::signing::{PublicKey, SignatureError, SigningKey};

/// Most signatures accepted in one envelope, so a hostile envelope cannot make a verifier try
/// an unbounded number of signatures.
pub const MAX_SIGNATURES: usize = 100;

/// The envelope's fields, in the order the DSSE specification lists them.
const ENVELOPE_FIELDS: &[&str] = &["payloadType", "payload", "signatures"];
/// The fields of one signature.
const SIGNATURE_FIELDS: &[&str] = &["keyid", "sig"];

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, where `LEN` is the byte length in
/// ASCII decimal without leading zeros. This, not the payload, is what is signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        6 + 1 + type_len.len() + 1 + payload_type.len() + 1 + body_len.len() + 1 + payload.len(),
    );
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsseSignature {
    /// Unauthenticated hint naming the key; empty when absent.
    pub keyid: String,
    /// The signature over [`pae`] of the envelope's type and payload.
    pub sig: Vec<u8>,
}

/// A DSSE envelope: a payload, its type, and one or more signatures over their [`pae`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsseEnvelope {
    /// Media type of the payload, e.g. `application/vnd.in-toto+json`.
    pub payload_type: String,
    /// The payload bytes, exactly as signed.
    pub payload: Vec<u8>,
    /// The signatures; a parsed envelope has at least one.
    pub signatures: Vec<DsseSignature>,
}

type Errors = crate::envelope::FieldErrors;

/// Readers of this module's fields on top of the shared error collector.
trait EnvelopeFields {
    fn base64(&mut self, field: String, value: Option<&Value>) -> Option<Vec<u8>>;
}

impl EnvelopeFields for Errors {
    fn base64(&mut self, field: String, value: Option<&Value>) -> Option<Vec<u8>> {
        match value {
            None => {
                self.push(field, "is required");
                None
            }
            Some(Value::String(s)) => match Base64::decode_vec(s) {
                Ok(bytes) => Some(bytes),
                Err(_) => {
                    self.push(
                        field,
                        "not standard base64: use the RFC 4648 §4 alphabet with '=' padding",
                    );
                    None
                }
            },
            Some(_) => {
                self.push(field, "must be a base64 string");
                None
            }
        }
    }
}

impl DsseEnvelope {
    /// Reads an envelope from its JSON form, collecting every problem with its path
    /// (`payload`, `signatures[0].sig`). Unknown fields, a missing field, non-standard base64,
    /// an empty signature and an envelope without signatures are all refused.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let Some(obj) = value.as_object() else {
            return Err(ValidationError::one(
                "",
                "a DSSE envelope must be a JSON object",
            ));
        };
        let mut errors = Errors::default();
        errors.unknown(obj, ENVELOPE_FIELDS, "");

        let payload_type = match obj.get("payloadType") {
            None => {
                errors.push("payloadType", "is required");
                String::new()
            }
            Some(Value::String(s)) if s.is_empty() => {
                errors.push("payloadType", "must not be empty");
                String::new()
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                errors.push("payloadType", "must be a string");
                String::new()
            }
        };

        let payload = errors
            .base64("payload".into(), obj.get("payload"))
            .unwrap_or_default();

        let mut signatures = Vec::new();
        match obj.get("signatures") {
            None => errors.push("signatures", "is required"),
            Some(Value::Array(items)) if items.is_empty() => {
                errors.push("signatures", "must list at least one signature");
            }
            Some(Value::Array(items)) if items.len() > MAX_SIGNATURES => errors.push(
                "signatures",
                format!(
                    "has {} signatures; at most {MAX_SIGNATURES} are accepted",
                    items.len()
                ),
            ),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(sig) = read_signature(item, i, &mut errors) {
                        signatures.push(sig);
                    }
                }
            }
            Some(_) => errors.push("signatures", "must be an array of signatures"),
        }

        errors.finish(Self {
            payload_type,
            payload,
            signatures,
        })
    }

    /// The envelope's JSON form, with standard base64 and the field names of the DSSE
    /// specification; an empty `keyid` is left out.
    pub fn to_json(&self) -> Value {
        let signatures: Vec<Value> = self
            .signatures
            .iter()
            .map(|s| {
                let mut obj = Map::new();
                if !s.keyid.is_empty() {
                    obj.insert("keyid".into(), Value::String(s.keyid.clone()));
                }
                obj.insert("sig".into(), Value::String(Base64::encode_string(&s.sig)));
                Value::Object(obj)
            })
            .collect();
        let mut obj = Map::new();
        obj.insert(
            "payloadType".into(),
            Value::String(self.payload_type.clone()),
        );
        obj.insert(
            "payload".into(),
            Value::String(Base64::encode_string(&self.payload)),
        );
        obj.insert("signatures".into(), Value::Array(signatures));
        Value::Object(obj)
    }

    /// The bytes every signature in this envelope must cover: [`pae`] of its type and payload.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Finds a signature made by `key`: the index of the first one that verifies over
    /// [`DsseEnvelope::pae`]. `keyid` hints are ignored, since they are not signed.
    pub fn verify_with(&self, key: &PublicKey) -> Result<usize, SignatureError> {
        let message = self.pae();
        self.signatures
            .iter()
            .position(|s| key.verify(&message, &s.sig).is_ok())
            .ok_or_else(|| SignatureError::NoneVerified {
                count: self.signatures.len(),
                fingerprint: key.fingerprint(),
            })
    }
}

/// Reads `signatures[i]`, recording its problems.
fn read_signature(item: &Value, i: usize, errors: &mut Errors) -> Option<DsseSignature> {
    let prefix = format!("signatures[{i}]");
    let Some(obj) = item.as_object() else {
        errors.push(prefix, "must be an object with sig and an optional keyid");
        return None;
    };
    let before = errors.len();
    errors.unknown(obj, SIGNATURE_FIELDS, &prefix);
    let keyid = match obj.get("keyid") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            errors.push(format!("{prefix}.keyid"), "must be a string");
            String::new()
        }
    };
    let sig = errors.base64(format!("{prefix}.sig"), obj.get("sig"));
    if sig.as_ref().is_some_and(Vec::is_empty) {
        errors.push(format!("{prefix}.sig"), "must not be empty");
    }
    match sig {
        Some(sig) if errors.len() == before => Some(DsseSignature { keyid, sig }),
        _ => None,
    }
}

/// Signs `payload` as `payload_type` with `key`, giving a one-signature envelope.
pub fn sign(key: &SigningKey, payload_type: &str, payload: &[u8], keyid: &str) -> DsseEnvelope {
    DsseEnvelope {
        payload_type: payload_type.to_owned(),
        payload: payload.to_vec(),
        signatures: vec![DsseSignature {
            keyid: keyid.to_owned(),
            sig: key.sign(&pae(payload_type, payload)),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SigningKey {
        SigningKey::ed25519_from_seed(&[3u8; 32])
    }

    fn fields(err: &ValidationError) -> Vec<&str> {
        err.errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn pae_matches_the_specification_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
        // Lengths are bytes, not characters.
        assert_eq!(pae("é", b"\xff"), b"DSSEv1 2 \xc3\xa9 1 \xff");
    }

    #[test]
    fn signs_verifies_and_round_trips_through_json() {
        let env = sign(&key(), "application/vnd.in-toto+json", b"{}", "k1");
        assert_eq!(env.verify_with(&key().public_key()), Ok(0));
        let json = env.to_json();
        assert_eq!(
            json,
            json!({
                "payloadType": "application/vnd.in-toto+json",
                "payload": "e30=",
                "signatures": [{"keyid": "k1", "sig": Base64::encode_string(&env.signatures[0].sig)}]
            })
        );
        assert_eq!(DsseEnvelope::from_json(&json).unwrap(), env);

        let anonymous = sign(&key(), "t", b"x", "");
        let json = anonymous.to_json();
        assert!(json["signatures"][0].get("keyid").is_none());
        assert_eq!(DsseEnvelope::from_json(&json).unwrap(), anonymous);
    }

    #[test]
    fn verify_with_finds_the_matching_signature() {
        let other = SigningKey::p256_from_scalar(&[4u8; 32]).unwrap();
        let mut env = sign(&other, "t", b"payload", "other");
        let mine = sign(&key(), "t", b"payload", "mine");
        env.signatures.push(mine.signatures[0].clone());
        assert_eq!(env.verify_with(&key().public_key()), Ok(1));
        assert_eq!(env.verify_with(&other.public_key()), Ok(0));

        let third = SigningKey::ed25519_from_seed(&[5u8; 32]).public_key();
        let err = env.verify_with(&third).unwrap_err();
        assert_eq!(
            err,
            SignatureError::NoneVerified {
                count: 2,
                fingerprint: third.fingerprint()
            }
        );
    }

    #[test]
    fn the_signature_binds_payload_and_type() {
        let env = sign(&key(), "t", b"payload", "");
        let public = key().public_key();
        let mut tampered = env.clone();
        tampered.payload[0] ^= 1;
        assert!(tampered.verify_with(&public).is_err());
        let mut retyped = env.clone();
        retyped.payload_type = "u".into();
        assert!(retyped.verify_with(&public).is_err());
        // The signature is over PAE, never over the bare payload.
        assert!(public.verify(b"payload", &env.signatures[0].sig).is_err());
    }

    #[test]
    fn every_field_error_is_reported_with_its_path() {
        let bad = json!({
            "payloadType": 7,
            "payload": "not base64!",
            "signatures": [
                {"keyid": 1, "sig": "A3Jq-w=="},
                "nope",
                {"sig": "", "extra": true},
                {"keyid": "k"}
            ],
            "payloadtype": "x"
        });
        let err = DsseEnvelope::from_json(&bad).unwrap_err();
        let f = fields(&err);
        for want in [
            "payloadtype",
            "payloadType",
            "payload",
            "signatures[0].keyid",
            "signatures[0].sig",
            "signatures[1]",
            "signatures[2].extra",
            "signatures[2].sig",
            "signatures[3].sig",
        ] {
            assert!(f.contains(&want), "missing {want} in {f:?}");
        }
        let text = err.to_string();
        assert!(
            text.contains("signatures[0].sig: not standard base64"),
            "{text}"
        );
        assert!(
            text.contains("signatures[2].sig: must not be empty"),
            "{text}"
        );
        assert!(text.contains("signatures[3].sig: is required"), "{text}");
    }

    #[test]
    fn structural_errors() {
        let err = DsseEnvelope::from_json(&json!([])).unwrap_err();
        assert_eq!(fields(&err), [""]);

        let err = DsseEnvelope::from_json(&json!({})).unwrap_err();
        assert_eq!(fields(&err), ["payloadType", "payload", "signatures"]);

        let err = DsseEnvelope::from_json(&json!({
            "payloadType": "", "payload": 3, "signatures": []
        }))
        .unwrap_err();
        assert_eq!(fields(&err), ["payloadType", "payload", "signatures"]);
        assert!(err.to_string().contains("at least one signature"), "{err}");

        let err = DsseEnvelope::from_json(&json!({
            "payloadType": "t", "payload": "", "signatures": {"sig": "AA=="}
        }))
        .unwrap_err();
        assert_eq!(fields(&err), ["signatures"]);

        let many: Vec<Value> = (0..=MAX_SIGNATURES)
            .map(|_| json!({"sig": "AA=="}))
            .collect();
        let err = DsseEnvelope::from_json(&json!({
            "payloadType": "t", "payload": "", "signatures": many
        }))
        .unwrap_err();
        assert!(err.to_string().contains("at most 100"), "{err}");
    }

    #[test]
    fn base64_must_be_standard_and_canonical() {
        let env = |payload: &str| {
            DsseEnvelope::from_json(&json!({
                "payloadType": "t", "payload": payload, "signatures": [{"sig": "AA=="}]
            }))
        };
        assert_eq!(env("aGVsbG8gd29ybGQ=").unwrap().payload, b"hello world");
        assert_eq!(env("").unwrap().payload, b"");
        for bad in ["aGVsbG8gd29ybGQ", "aGVsbG8gd29ybGR=", "_-8=", "aGVs\nbG8="] {
            let err = env(bad).unwrap_err();
            assert_eq!(fields(&err), ["payload"], "{bad}");
        }
    }
}
