//! `model_signing`-compatible signature bundles for a model version (SPEC §7).
//!
//! A bundle lets anyone holding the public key run `model_signing verify key` on their copy of
//! the model, with no custody software. The format is what `model_signing` 1.1.1 writes for
//! `sign key` (`_signing/signing.py` `Payload`, `_signing/sign_ec_key.py` `Signer`,
//! `_signing/sign_sigstore_pb.py` `pae` and `Signature.write`):
//!
//! - the payload is an in-toto v1 statement whose one subject is the model name with the root
//!   digest, predicate type `https://model_signing/signature/v1.0`, and whose predicate holds
//!   the serialization parameters and one resource descriptor per file;
//! - the payload is signed as a DSSE envelope (payload type `application/vnd.in-toto+json`),
//!   over the DSSE v1 pre-authentication encoding;
//! - the envelope sits in a Sigstore bundle v0.3 whose verification material is a
//!   `publicKey.hint` (hex SHA-256 of the PEM public key) and no transparency log entries.
//!
//! `model_signing` writes the statement with protobuf's `MessageToJson`: two-space indent,
//! non-ASCII escaped, but object keys inside the predicate in hash order, which differs from
//! run to run. Verifiers parse the JSON and check the signature over the exact payload bytes,
//! so custody writes the same layout with one fixed key order, making its payload a
//! deterministic function of the manifest and model name.

use base64ct::{Base64, Encoding};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::hash::{IGNORED_TOP_LEVEL_NAMES, ModelDigest};

/// The in-toto statement type of the payload.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The model-signing predicate type, v1.0.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The Sigstore bundle media type `model_signing` writes and requires for key signatures.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";

/// Why a bundle could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The public key text is not one PEM `PUBLIC KEY` block.
    #[error("public key is not a PEM \"PUBLIC KEY\" block: {0}")]
    PublicKeyPem(&'static str),
    /// The statement subject needs a name.
    #[error("model name must not be empty")]
    EmptyModelName,
    /// The signing closure returned no bytes.
    #[error("the signer returned an empty signature")]
    EmptySignature,
}

/// The statement payload for `digest` under `model_name`: the bytes the DSSE envelope carries.
///
/// Layout: `json.dumps(indent=2, ensure_ascii=True)` of
/// `{"_type", "subject": [{"name", "digest": {"sha256"}}], "predicateType", "predicate":
/// {"serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false,
/// "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"]}, "resources":
/// [{"name", "algorithm": "sha256", "digest"}]}}`, keys in that order, no trailing newline.
pub fn statement(digest: &ModelDigest, model_name: &str) -> Result<Vec<u8>, BundleError> {
    #[derive(Serialize)]
    struct Statement<'a> {
        #[serde(rename = "_type")]
        statement_type: &'static str,
        subject: [Subject<'a>; 1],
        #[serde(rename = "predicateType")]
        predicate_type: &'static str,
        predicate: Predicate<'a>,
    }
    #[derive(Serialize)]
    struct Subject<'a> {
        name: &'a str,
        digest: Sha256Digest,
    }
    #[derive(Serialize)]
    struct Sha256Digest {
        sha256: String,
    }
    #[derive(Serialize)]
    struct Predicate<'a> {
        serialization: Serialization,
        resources: Vec<Resource<'a>>,
    }
    #[derive(Serialize)]
    struct Serialization {
        method: &'static str,
        hash_type: &'static str,
        allow_symlinks: bool,
        ignore_paths: [&'static str; 4],
    }
    #[derive(Serialize)]
    struct Resource<'a> {
        name: &'a str,
        algorithm: &'static str,
        digest: String,
    }

    if model_name.is_empty() {
        return Err(BundleError::EmptyModelName);
    }
    let statement = Statement {
        statement_type: STATEMENT_TYPE,
        subject: [Subject {
            name: model_name,
            digest: Sha256Digest {
                sha256: hex::encode(digest.root()),
            },
        }],
        predicate_type: PREDICATE_TYPE,
        predicate: Predicate {
            serialization: Serialization {
                method: "files",
                hash_type: "sha256",
                allow_symlinks: false,
                ignore_paths: IGNORED_TOP_LEVEL_NAMES,
            },
            resources: digest
                .files()
                .iter()
                .map(|f| Resource {
                    name: &f.path,
                    algorithm: "sha256",
                    digest: hex::encode(f.sha256),
                })
                .collect(),
        },
    };
    Ok(escape_non_ascii(&to_json(&statement, true)).into_bytes())
}

/// The DSSE v1 pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(body)> <body>`,
/// lengths in bytes as ASCII decimal. This, not the payload, is what gets signed.
pub fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Re-armors a PEM public key the way pyca/cryptography writes one (64-character base64
/// lines, LF endings, final newline), so the hint does not depend on how the file was saved.
pub fn canonical_public_key_pem(pem: &str) -> Result<String, BundleError> {
    let body = pem
        .trim()
        .strip_prefix(PEM_BEGIN)
        .ok_or(BundleError::PublicKeyPem("missing BEGIN PUBLIC KEY line"))?
        .strip_suffix(PEM_END)
        .ok_or(BundleError::PublicKeyPem("missing END PUBLIC KEY line"))?;
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der =
        Base64::decode_vec(&base64).map_err(|_| BundleError::PublicKeyPem("invalid base64"))?;
    if der.first() != Some(&0x30) {
        return Err(BundleError::PublicKeyPem("not a DER SubjectPublicKeyInfo"));
    }
    let encoded = Base64::encode_string(&der);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 64 + 64);
    out.push_str(PEM_BEGIN);
    out.push('\n');
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(PEM_END);
    out.push('\n');
    Ok(out)
}

/// The bundle's `publicKey.hint`: lowercase hex SHA-256 of the canonical PEM text, which is
/// what `model_signing verify key` recomputes from the key it is given and compares.
pub fn public_key_hint(pem: &str) -> Result<String, BundleError> {
    let canonical = canonical_public_key_pem(pem)?;
    Ok(hex::encode(Sha256::digest(canonical.as_bytes())))
}

/// A Sigstore bundle v0.3 (JSON text, as `model_signing` writes it: compact, no trailing
/// newline) signing `digest` under `model_name`, ready for `model_signing verify key`.
///
/// `public_key_pem` is the signer's SubjectPublicKeyInfo in PEM. `sign` receives the DSSE
/// pre-authentication encoding and returns a DER ECDSA signature over it with the matching
/// private key (P-256 with SHA-256, the hash `model_signing` pairs with a P-256 key).
pub fn signature_bundle(
    digest: &ModelDigest,
    model_name: &str,
    public_key_pem: &str,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Result<String, BundleError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Bundle<'a> {
        media_type: &'static str,
        verification_material: VerificationMaterial,
        dsse_envelope: Envelope<'a>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct VerificationMaterial {
        public_key: PublicKeyIdentifier,
        tlog_entries: [(); 0],
    }
    #[derive(Serialize)]
    struct PublicKeyIdentifier {
        hint: String,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Envelope<'a> {
        payload: String,
        payload_type: &'static str,
        signatures: [Signature<'a>; 1],
    }
    #[derive(Serialize)]
    struct Signature<'a> {
        sig: String,
        keyid: &'a str,
    }

    let hint = public_key_hint(public_key_pem)?;
    let payload = statement(digest, model_name)?;
    let signature = sign(&dsse_pae(PAYLOAD_TYPE, &payload));
    if signature.is_empty() {
        return Err(BundleError::EmptySignature);
    }
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE,
        verification_material: VerificationMaterial {
            public_key: PublicKeyIdentifier { hint },
            tlog_entries: [],
        },
        dsse_envelope: Envelope {
            payload: Base64::encode_string(&payload),
            payload_type: PAYLOAD_TYPE,
            signatures: [Signature {
                sig: Base64::encode_string(&signature),
                keyid: "",
            }],
        },
    };
    Ok(to_json(&bundle, false))
}

/// Serializes the fixed-shape structs above; they hold only strings, booleans and arrays.
fn to_json<T: Serialize>(value: &T, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.unwrap_or_default()
}

/// Python's `ensure_ascii`: every character outside printable ASCII becomes `\uXXXX` (UTF-16
/// units, lowercase hex). Structural JSON characters are ASCII, so only string contents change.
fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::FileDigest;

    fn digest_of(files: &[(&str, &[u8])]) -> ModelDigest {
        ModelDigest::from_files(
            files
                .iter()
                .map(|(path, contents)| FileDigest {
                    path: (*path).to_owned(),
                    sha256: Sha256::digest(contents).into(),
                    size: contents.len() as u64,
                })
                .collect(),
        )
        .unwrap()
    }

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJu/OvQ7p40pmkYfhizqRIrL3M5Rb\n\
ZJzJ+fkh6fna2BKQI4venMe7Mw0VDGdwTdJa5wVSBXRLbzG/QHB0WHLQ5g==\n\
-----END PUBLIC KEY-----\n";

    #[test]
    fn statement_has_the_model_signing_layout() {
        let digest = digest_of(&[("b", b"abc"), ("a/x", b"")]);
        let text = String::from_utf8(statement(&digest, "m").unwrap()).unwrap();
        let expected = format!(
            r#"{{
  "_type": "https://in-toto.io/Statement/v1",
  "subject": [
    {{
      "name": "m",
      "digest": {{
        "sha256": "{root}"
      }}
    }}
  ],
  "predicateType": "https://model_signing/signature/v1.0",
  "predicate": {{
    "serialization": {{
      "method": "files",
      "hash_type": "sha256",
      "allow_symlinks": false,
      "ignore_paths": [
        ".git",
        ".gitattributes",
        ".github",
        ".gitignore"
      ]
    }},
    "resources": [
      {{
        "name": "a/x",
        "algorithm": "sha256",
        "digest": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
      }},
      {{
        "name": "b",
        "algorithm": "sha256",
        "digest": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
      }}
    ]
  }}
}}"#,
            root = hex::encode(digest.root())
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn statement_escapes_non_ascii_like_python() {
        let digest = digest_of(&[("caf\u{e9}/\u{1f600}\u{7f}", b"x")]);
        let text = String::from_utf8(statement(&digest, "mod\u{e8}le").unwrap()).unwrap();
        assert!(text.is_ascii());
        assert!(
            text.contains(r#""name": "caf\u00e9/\ud83d\ude00\u007f""#),
            "{text}"
        );
        assert!(text.contains(r#""name": "mod\u00e8le""#));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed["predicate"]["resources"][0]["name"],
            "caf\u{e9}/\u{1f600}\u{7f}"
        );
    }

    #[test]
    fn statement_of_a_single_file_names_the_resource_dot() {
        let digest = digest_of(&[(".", b"abc")]);
        let parsed: serde_json::Value =
            serde_json::from_slice(&statement(&digest, "model.bin").unwrap()).unwrap();
        assert_eq!(parsed["subject"][0]["name"], "model.bin");
        assert_eq!(parsed["predicate"]["resources"][0]["name"], ".");
        assert_eq!(
            parsed["subject"][0]["digest"]["sha256"],
            hex::encode(Sha256::digest(Sha256::digest(b"abc")))
        );
        assert_eq!(statement(&digest, ""), Err(BundleError::EmptyModelName));
    }

    #[test]
    fn pae_follows_dsse_v1() {
        assert_eq!(
            dsse_pae(PAYLOAD_TYPE, b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}".to_vec()
        );
        assert_eq!(dsse_pae("t", b""), b"DSSEv1 1 t 0 ".to_vec());
    }

    #[test]
    fn hint_ignores_how_the_pem_was_saved() {
        let hint = public_key_hint(PEM).unwrap();
        assert_eq!(hint, hex::encode(Sha256::digest(PEM.as_bytes())));
        let crlf = PEM.replace('\n', "\r\n");
        assert_eq!(public_key_hint(&crlf).unwrap(), hint);
        let one_line = PEM.replacen('\n', "", 2).replacen(
            "-----BEGIN PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\n",
            1,
        );
        assert_eq!(public_key_hint(&one_line).unwrap(), hint);
        assert_eq!(
            canonical_public_key_pem(&format!("\n\n{PEM}\n")).unwrap(),
            PEM
        );
    }

    #[test]
    fn malformed_public_keys_are_refused() {
        for bad in [
            "",
            "MFkwEwYH",
            "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nMFkw\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ] {
            assert!(
                matches!(public_key_hint(bad), Err(BundleError::PublicKeyPem(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bundle_wraps_the_signed_pae() {
        let digest = digest_of(&[("w", b"weights")]);
        let mut signed = Vec::new();
        let json = signature_bundle(&digest, "m", PEM, |pae| {
            signed = pae.to_vec();
            vec![0x30, 0x01, 0x02]
        })
        .unwrap();
        assert!(!json.ends_with('\n'));
        let payload = statement(&digest, "m").unwrap();
        assert_eq!(signed, dsse_pae(PAYLOAD_TYPE, &payload));
        let expected = format!(
            concat!(
                r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","#,
                r#""verificationMaterial":{{"publicKey":{{"hint":"{hint}"}},"tlogEntries":[]}},"#,
                r#""dsseEnvelope":{{"payload":"{payload}","#,
                r#""payloadType":"application/vnd.in-toto+json","#,
                r#""signatures":[{{"sig":"MAEC","keyid":""}}]}}}}"#
            ),
            hint = public_key_hint(PEM).unwrap(),
            payload = Base64::encode_string(&payload),
        );
        assert_eq!(json, expected);
    }

    #[test]
    fn empty_signatures_are_refused() {
        let digest = digest_of(&[("w", b"weights")]);
        assert_eq!(
            signature_bundle(&digest, "m", PEM, |_| Vec::new()),
            Err(BundleError::EmptySignature)
        );
        assert!(matches!(
            signature_bundle(&digest, "m", "not a key", |_| vec![1]),
            Err(BundleError::PublicKeyPem(_))
        ));
    }
}
