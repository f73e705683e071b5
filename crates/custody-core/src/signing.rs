//! Approver keys and their signatures: Ed25519 and ECDSA P-256, the two algorithms custody
//! accepts on signed approvals (SPEC §7).
//!
//! An approver registers a public key as a PEM `PUBLIC KEY` block (X.509 SubjectPublicKeyInfo,
//! RFC 5280 §4.1.2.7, as `openssl pkey -pubout` and every crypto library write it); the key is
//! then known by its [`PublicKey::fingerprint`], the SHA-256 of its SPKI DER. Private keys are
//! read from PKCS#8 `PRIVATE KEY` (RFC 5958) or, for P-256, the SEC1 `EC PRIVATE KEY`
//! (RFC 5915) that `openssl ecparam -genkey` writes.
//!
//! Signatures are what the rest of the ecosystem (Sigstore, in-toto, pyca/cryptography) produce:
//! Ed25519 is RFC 8032 (64 bytes); ECDSA P-256 signs the SHA-256 of the message and is encoded
//! as ASN.1 DER (RFC 3279 §2.2.3), with nonces derived per RFC 6979 so the same key and message
//! always give the same signature. Verification also accepts the 64-byte `r || s` form that the
//! DSSE specification's own test vector uses.
//!
//! Keys are stored and re-encoded in one canonical DER form (uncompressed P-256 points), so a
//! key has one fingerprint however it was first written. Private key material is zeroised when
//! dropped and never appears in `Debug` output.

use std::fmt;
use std::str::FromStr;

use base64ct::{Base64, Encoding};
use ed25519_dalek::{Signer as _, Verifier as _};
use p256::pkcs8::der::Decode as _;
use p256::pkcs8::der::pem;
use p256::pkcs8::{DecodePrivateKey as _, ObjectIdentifier, PrivateKeyInfoRef};
use p256::pkcs8::{SubjectPublicKeyInfoRef, spki::AlgorithmIdentifierRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// PEM label of an X.509 SubjectPublicKeyInfo (RFC 7468 §13).
const LABEL_PUBLIC: &str = "PUBLIC KEY";
/// PEM label of a PKCS#8 private key (RFC 7468 §10).
const LABEL_PRIVATE: &str = "PRIVATE KEY";
/// PEM label of a SEC1 elliptic-curve private key (RFC 5915 §4).
const LABEL_EC_PRIVATE: &str = "EC PRIVATE KEY";
/// PEM label of an encrypted PKCS#8 private key (RFC 7468 §11).
const LABEL_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";

/// id-Ed25519 (RFC 8410 §3).
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// id-ecPublicKey (RFC 5480 §2.1.1).
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1, a.k.a. prime256v1 and NIST P-256 (RFC 5480 §2.1.1.1).
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Algorithms custody does not accept, by OID, so a refusal names what was sent.
const KNOWN_UNSUPPORTED: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.1", "RSA"),
    ("1.2.840.113549.1.1.10", "RSA-PSS"),
    ("1.2.840.10040.4.1", "DSA"),
    ("1.3.101.110", "X25519"),
    ("1.3.101.111", "X448"),
    ("1.3.101.113", "Ed448"),
];

/// Elliptic curves custody does not accept, by OID.
const KNOWN_UNSUPPORTED_CURVES: &[(&str, &str)] = &[
    ("1.3.132.0.34", "ECDSA P-384"),
    ("1.3.132.0.35", "ECDSA P-521"),
    ("1.3.132.0.10", "ECDSA secp256k1"),
    ("1.3.36.3.3.2.8.1.1.7", "ECDSA brainpoolP256r1"),
];

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32-byte key follows (RFC 8410 §4).
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte uncompressed point follows
/// (RFC 5480 §2).
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 PKCS#8 v1 private key; the 32-byte seed follows (RFC 8410 §7).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER prefix of a P-256 PKCS#8 v1 private key wrapping a SEC1 `ECPrivateKey` (RFC 5915 §3),
/// as OpenSSL writes it; the 32-byte scalar follows.
const PKCS8_P256_PREFIX: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02,
    0x01, 0x01, 0x04, 0x20,
];
/// DER between the P-256 scalar and the uncompressed public point in [`PKCS8_P256_PREFIX`]'s
/// structure: the `[1] publicKey BIT STRING` header.
const PKCS8_P256_PUBLIC_TAG: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];

/// Length of an Ed25519 signature (RFC 8032 §5.1.6).
const ED25519_SIGNATURE_LEN: usize = 64;
/// Length of a raw P-256 `r || s` signature.
const P256_RAW_SIGNATURE_LEN: usize = 64;
/// Longest DER-encoded P-256 signature: two 33-byte INTEGERs in a SEQUENCE.
const P256_MAX_DER_SIGNATURE_LEN: usize = 72;

/// A signature algorithm custody accepts for approver keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8032).
    #[serde(rename = "ed25519")]
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256 (FIPS 186-5, RFC 6979 nonces when custody signs).
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
}

impl KeyAlgorithm {
    /// Both algorithms, in the order they are listed to users.
    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256];

    /// The name used in JSON and on the command line: `ed25519` or `ecdsa-p256`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| KeyError::UnsupportedAlgorithm(format!("{s:?}")))
    }
}

/// Why a key could not be read, made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not one PEM document (RFC 7468).
    #[error("not a PEM document: {0}")]
    NotPem(String),
    /// The PEM document holds something other than the kind of key asked for.
    #[error("expected a PEM \"{expected}\" block, found \"{found}\"{}", label_hint(.found))]
    UnexpectedLabel {
        /// The label (or labels) accepted here.
        expected: &'static str,
        /// The label found.
        found: String,
    },
    /// The DER inside the PEM is not a well-formed key structure.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// The structure that failed to parse, e.g. `SubjectPublicKeyInfo`.
        what: &'static str,
        /// What the parser reported.
        detail: String,
    },
    /// The key is of an algorithm custody does not accept.
    #[error("unsupported key algorithm {0}: custody accepts Ed25519 and ECDSA P-256 keys")]
    UnsupportedAlgorithm(String),
    /// The public key bytes do not encode a valid point for the algorithm.
    #[error("invalid {algorithm} public key: {detail}")]
    InvalidPublicKey {
        /// The key's algorithm.
        algorithm: KeyAlgorithm,
        /// What is wrong with it.
        detail: &'static str,
    },
    /// The private key is not a valid key for the algorithm.
    #[error("invalid {algorithm} private key: {detail}")]
    InvalidPrivateKey {
        /// The key's algorithm.
        algorithm: KeyAlgorithm,
        /// What is wrong with it (never the key itself).
        detail: String,
    },
    /// The private key is password-protected.
    #[error(
        "encrypted private keys are not supported: decrypt it first, e.g. `openssl pkey -in key.pem -out plain.pem`"
    )]
    Encrypted,
    /// The operating system could not provide randomness for a new key.
    #[error("operating system randomness unavailable: {0}")]
    Randomness(getrandom::Error),
}

/// A hint appended to [`KeyError::UnexpectedLabel`] for the common mix-ups.
fn label_hint(found: &str) -> &'static str {
    match found {
        LABEL_PRIVATE | LABEL_EC_PRIVATE | LABEL_ENCRYPTED => {
            ": this is a private key; register its public key instead (`openssl pkey -in key.pem -pubout`)"
        }
        LABEL_PUBLIC => ": this is a public key; signing needs the private key",
        "CERTIFICATE" => {
            ": extract the certificate's public key (`openssl x509 -in cert.pem -pubkey -noout`)"
        }
        _ => "",
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The bytes cannot be a signature of this algorithm (wrong length, bad DER, zero scalars).
    #[error("malformed {algorithm} signature: {detail}")]
    Malformed {
        /// The verifying key's algorithm.
        algorithm: KeyAlgorithm,
        /// What is wrong with the bytes.
        detail: &'static str,
    },
    /// The signature is well formed but was not made by this key over this message.
    #[error("{0} signature does not verify with this key")]
    Invalid(KeyAlgorithm),
    /// None of a DSSE envelope's signatures verifies with the key.
    #[error("none of the envelope's {count} signature(s) verifies with key {fingerprint}")]
    NoneVerified {
        /// How many signatures the envelope carries.
        count: usize,
        /// [`PublicKey::fingerprint`] of the key tried.
        fingerprint: String,
    },
}

/// An approver's public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// An Ed25519 key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// An ECDSA P-256 key.
    EcdsaP256(p256::ecdsa::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm())
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo). Refuses anything else with an
    /// error that names it: another PEM label, RSA or another curve, an invalid point.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let (label, der) = decode_pem(pem_text)?;
        if label != LABEL_PUBLIC {
            if label == "RSA PUBLIC KEY" {
                return Err(KeyError::UnsupportedAlgorithm("RSA".into()));
            }
            return Err(KeyError::UnexpectedLabel {
                expected: LABEL_PUBLIC,
                found: label,
            });
        }
        Self::from_spki_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| KeyError::Malformed {
            what: "SubjectPublicKeyInfo",
            detail: e.to_string(),
        })?;
        let algorithm = algorithm_of(&spki.algorithm)?;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or(KeyError::InvalidPublicKey {
                algorithm,
                detail: "the key's BIT STRING has unused bits",
            })?;
        match algorithm {
            KeyAlgorithm::Ed25519 => {
                let bytes: &[u8; 32] = bits.try_into().map_err(|_| KeyError::InvalidPublicKey {
                    algorithm,
                    detail: "an Ed25519 public key is 32 bytes",
                })?;
                Self::ed25519_from_bytes(bytes)
            }
            KeyAlgorithm::EcdsaP256 => Self::p256_from_sec1(bits),
        }
    }

    /// An Ed25519 key from its 32 RFC 8032 bytes. Points of small order are refused: no
    /// honestly generated key is one, and they make forgeries possible.
    pub fn ed25519_from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| {
            KeyError::InvalidPublicKey {
                algorithm: KeyAlgorithm::Ed25519,
                detail: "the bytes do not decode to a curve point",
            }
        })?;
        if key.is_weak() {
            return Err(KeyError::InvalidPublicKey {
                algorithm: KeyAlgorithm::Ed25519,
                detail: "the point has small order",
            });
        }
        Ok(PublicKey::Ed25519(key))
    }

    /// A P-256 key from a SEC1 encoded point (SEC 1 v2 §2.3.3, compressed or uncompressed).
    pub fn p256_from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .map(PublicKey::EcdsaP256)
            .map_err(|_| KeyError::InvalidPublicKey {
                algorithm: KeyAlgorithm::EcdsaP256,
                detail: "the bytes are not a point on the curve",
            })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
            PublicKey::EcdsaP256(_) => KeyAlgorithm::EcdsaP256,
        }
    }

    /// The canonical DER SubjectPublicKeyInfo: RFC 8410 for Ed25519, RFC 5480 with an
    /// uncompressed point for P-256.
    pub fn to_spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => [&SPKI_ED25519_PREFIX[..], k.as_bytes()].concat(),
            PublicKey::EcdsaP256(k) => {
                let point = k.to_sec1_point(false);
                [&SPKI_P256_PREFIX[..], point.as_bytes()].concat()
            }
        }
    }

    /// The key as a PEM `PUBLIC KEY` block with 64-character lines and a final newline.
    pub fn to_pem(&self) -> String {
        let pem = pem_encode(LABEL_PUBLIC, &self.to_spki_der());
        pem.as_str().to_owned()
    }

    /// The key's stable identifier: `sha256:` and the lowercase hex SHA-256 of
    /// [`PublicKey::to_spki_der`].
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.to_spki_der())))
    }

    /// Checks `signature` over `message`. Ed25519 is verified as RFC 8032 §5.1.7 without the
    /// cofactor and with a canonical S, like Go's `crypto/ed25519`; ECDSA P-256 accepts DER and
    /// the 64-byte `r || s` form, high or low S, over SHA-256 of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match self {
            PublicKey::Ed25519(key) => {
                let algorithm = KeyAlgorithm::Ed25519;
                if signature.len() != ED25519_SIGNATURE_LEN {
                    return Err(SignatureError::Malformed {
                        algorithm,
                        detail: "an Ed25519 signature is 64 bytes",
                    });
                }
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| {
                    SignatureError::Malformed {
                        algorithm,
                        detail: "not an Ed25519 signature",
                    }
                })?;
                key.verify(message, &sig)
                    .map_err(|_| SignatureError::Invalid(algorithm))
            }
            PublicKey::EcdsaP256(key) => verify_p256(key, message, signature),
        }
    }
}

/// ECDSA P-256 verification of a DER or raw signature.
fn verify_p256(
    key: &p256::ecdsa::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let algorithm = KeyAlgorithm::EcdsaP256;
    let der = p256::ecdsa::Signature::from_der(signature).ok();
    // A 64-byte string is almost surely `r || s`; it is tried as such even when it also happens
    // to parse as DER. Either reading names the same (r, s) pair, so accepting both forms never
    // lets one signature stand for another message.
    let raw = if signature.len() == P256_RAW_SIGNATURE_LEN {
        p256::ecdsa::Signature::from_slice(signature).ok()
    } else {
        None
    };
    if der.is_none() && raw.is_none() {
        let detail = if signature.len() == P256_RAW_SIGNATURE_LEN {
            "r or s is zero or not below the group order"
        } else if signature.len() > P256_MAX_DER_SIGNATURE_LEN {
            "too long for a P-256 signature"
        } else {
            "neither ASN.1 DER nor 64-byte r||s"
        };
        return Err(SignatureError::Malformed { algorithm, detail });
    }
    use p256::ecdsa::signature::Verifier as _;
    if [raw, der]
        .into_iter()
        .flatten()
        .any(|sig| key.verify(message, &sig).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Invalid(algorithm))
    }
}

/// An approver's private key. It is zeroised on drop and never printed by `Debug`.
#[derive(Clone)]
pub enum SigningKey {
    /// An Ed25519 key.
    Ed25519(ed25519_dalek::SigningKey),
    /// An ECDSA P-256 key.
    EcdsaP256(p256::ecdsa::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("public_key", &self.public_key().fingerprint())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PEM private key: PKCS#8 `PRIVATE KEY` (Ed25519 or P-256), or SEC1
    /// `EC PRIVATE KEY` (P-256). Encrypted keys and other algorithms are refused by name.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let (label, der) = decode_pem(pem_text)?;
        let der = Zeroizing::new(der);
        match label.as_str() {
            LABEL_PRIVATE => Self::from_pkcs8_der(&der),
            LABEL_EC_PRIVATE => Self::from_sec1_der(&der),
            LABEL_ENCRYPTED => Err(KeyError::Encrypted),
            "RSA PRIVATE KEY" => Err(KeyError::UnsupportedAlgorithm("RSA".into())),
            _ => Err(KeyError::UnexpectedLabel {
                expected: "PRIVATE KEY\" or \"EC PRIVATE KEY",
                found: label,
            }),
        }
    }

    /// Reads a DER PKCS#8 `PrivateKeyInfo` (RFC 5958 §2) holding an Ed25519 or P-256 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = PrivateKeyInfoRef::from_der(der).map_err(|e| KeyError::Malformed {
            what: "PKCS#8 PrivateKeyInfo",
            detail: e.to_string(),
        })?;
        let algorithm = algorithm_of(&info.algorithm)?;
        let invalid = |e: p256::pkcs8::Error| KeyError::InvalidPrivateKey {
            algorithm,
            detail: e.to_string(),
        };
        match algorithm {
            KeyAlgorithm::Ed25519 => ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(SigningKey::Ed25519)
                .map_err(invalid),
            KeyAlgorithm::EcdsaP256 => p256::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(SigningKey::EcdsaP256)
                .map_err(invalid),
        }
    }

    /// Reads a DER SEC1 `ECPrivateKey` (RFC 5915 §3); only P-256 is accepted.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, KeyError> {
        let parsed = sec1::EcPrivateKey::from_der(der).map_err(|e| KeyError::Malformed {
            what: "SEC1 ECPrivateKey",
            detail: e.to_string(),
        })?;
        match parsed.parameters.and_then(|p| p.named_curve()) {
            Some(curve) if curve != OID_P256 => {
                return Err(KeyError::UnsupportedAlgorithm(curve_name(curve)));
            }
            None if parsed.private_key.len() != 32 => {
                return Err(KeyError::UnsupportedAlgorithm(format!(
                    "an elliptic curve with {}-byte private keys",
                    parsed.private_key.len()
                )));
            }
            _ => {}
        }
        p256::SecretKey::from_sec1_der(der)
            .map(|secret| SigningKey::EcdsaP256(secret.into()))
            .map_err(|e| KeyError::InvalidPrivateKey {
                algorithm: KeyAlgorithm::EcdsaP256,
                detail: e.to_string(),
            })
    }

    /// An Ed25519 key from its 32-byte RFC 8032 §5.1.5 seed.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Self {
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// A P-256 key from its big-endian 32-byte scalar, which must lie in `[1, n - 1]`.
    pub fn p256_from_scalar(scalar: &[u8; 32]) -> Result<Self, KeyError> {
        p256::ecdsa::SigningKey::from_slice(scalar)
            .map(SigningKey::EcdsaP256)
            .map_err(|_| KeyError::InvalidPrivateKey {
                algorithm: KeyAlgorithm::EcdsaP256,
                detail: "the scalar is zero or not below the group order".into(),
            })
    }

    /// A fresh key of `algorithm` from the operating system's CSPRNG.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        match algorithm {
            KeyAlgorithm::Ed25519 => Self::generate_ed25519(),
            KeyAlgorithm::EcdsaP256 => Self::generate_p256(),
        }
    }

    /// A fresh Ed25519 key: 32 bytes from the operating system's CSPRNG as the seed.
    pub fn generate_ed25519() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(KeyError::Randomness)?;
        Ok(Self::ed25519_from_seed(&seed))
    }

    /// A fresh P-256 key: 32 bytes from the operating system's CSPRNG, drawn again in the
    /// (probability 2^-32) case that they are not a valid scalar.
    pub fn generate_p256() -> Result<Self, KeyError> {
        let mut scalar = Zeroizing::new([0u8; 32]);
        loop {
            getrandom::fill(scalar.as_mut_slice()).map_err(KeyError::Randomness)?;
            if let Ok(key) = Self::p256_from_scalar(&scalar) {
                return Ok(key);
            }
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            SigningKey::Ed25519(_) => KeyAlgorithm::Ed25519,
            SigningKey::EcdsaP256(_) => KeyAlgorithm::EcdsaP256,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SigningKey::EcdsaP256(k) => PublicKey::EcdsaP256(*k.verifying_key()),
        }
    }

    /// Signs `message`: a 64-byte Ed25519 signature, or an ASN.1 DER ECDSA P-256 signature over
    /// SHA-256 of `message` with an RFC 6979 nonce (the same inputs give the same bytes).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            SigningKey::EcdsaP256(k) => {
                use p256::ecdsa::signature::Signer as _;
                let sig: p256::ecdsa::DerSignature = k.sign(message);
                sig.as_bytes().to_vec()
            }
        }
    }

    /// The key as an unencrypted PKCS#8 `PRIVATE KEY` PEM block, in the form OpenSSL writes
    /// (v1; P-256 keys carry their public point). The caller must store it with mode 0600.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let der = self.to_pkcs8_der();
        pem_encode(LABEL_PRIVATE, &der)
    }

    /// The key as unencrypted DER PKCS#8, see [`SigningKey::to_pkcs8_pem`].
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        match self {
            SigningKey::Ed25519(k) => {
                let mut der = Zeroizing::new(Vec::with_capacity(PKCS8_ED25519_PREFIX.len() + 32));
                der.extend_from_slice(&PKCS8_ED25519_PREFIX);
                der.extend_from_slice(k.as_bytes());
                der
            }
            SigningKey::EcdsaP256(k) => {
                let point = k.verifying_key().to_sec1_point(false);
                let mut der = Zeroizing::new(Vec::with_capacity(
                    PKCS8_P256_PREFIX.len() + 32 + PKCS8_P256_PUBLIC_TAG.len() + 65,
                ));
                der.extend_from_slice(&PKCS8_P256_PREFIX);
                let mut scalar = k.to_bytes();
                der.extend_from_slice(&scalar);
                scalar.as_mut_slice().zeroize();
                der.extend_from_slice(&PKCS8_P256_PUBLIC_TAG);
                der.extend_from_slice(point.as_bytes());
                der
            }
        }
    }
}

/// Maps an AlgorithmIdentifier to the algorithm custody knows it as, or names the refused one.
fn algorithm_of(alg: &AlgorithmIdentifierRef<'_>) -> Result<KeyAlgorithm, KeyError> {
    if alg.oid == OID_ED25519 {
        if alg.parameters.is_some() {
            return Err(KeyError::Malformed {
                what: "Ed25519 AlgorithmIdentifier",
                detail: "parameters must be absent (RFC 8410 §3)".into(),
            });
        }
        return Ok(KeyAlgorithm::Ed25519);
    }
    if alg.oid == OID_EC_PUBLIC_KEY {
        let curve = alg.parameters_oid().map_err(|_| KeyError::Malformed {
            what: "EC AlgorithmIdentifier",
            detail: "the parameters must name a curve (RFC 5480 §2.1.1)".into(),
        })?;
        if curve == OID_P256 {
            return Ok(KeyAlgorithm::EcdsaP256);
        }
        return Err(KeyError::UnsupportedAlgorithm(curve_name(curve)));
    }
    let oid = alg.oid.to_string();
    let name = KNOWN_UNSUPPORTED
        .iter()
        .find(|(o, _)| *o == oid)
        .map_or_else(|| format!("with OID {oid}"), |(_, n)| (*n).to_owned());
    Err(KeyError::UnsupportedAlgorithm(name))
}

/// A readable name for an elliptic curve OID custody does not accept.
fn curve_name(curve: ObjectIdentifier) -> String {
    let oid = curve.to_string();
    KNOWN_UNSUPPORTED_CURVES
        .iter()
        .find(|(o, _)| *o == oid)
        .map_or_else(
            || format!("ECDSA on the curve {oid}"),
            |(_, n)| (*n).to_owned(),
        )
}

/// Decodes one PEM document (RFC 7468 strict: 64-character lines, no headers), ignoring
/// whitespace around it.
fn decode_pem(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let trimmed = text.trim();
    if !trimmed.starts_with("-----BEGIN ") {
        return Err(KeyError::NotPem(
            "expected text starting with \"-----BEGIN \"".into(),
        ));
    }
    pem::decode_vec(trimmed.as_bytes())
        .map(|(label, der)| (label.to_owned(), der))
        .map_err(|e| KeyError::NotPem(e.to_string()))
}

/// Encodes DER as a PEM block with 64-character lines and LF line endings, into a buffer that
/// is zeroised on drop (for private keys) and sized up front so it never reallocates.
fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let mut b64 = Zeroizing::new(vec![0u8; Base64::encoded_len(der)]);
    let encoded = Base64::encode(der, &mut b64).unwrap_or_default();
    let lines = encoded.len().div_ceil(64);
    let mut out = Zeroizing::new(String::with_capacity(
        2 * (label.len() + 17) + encoded.len() + lines,
    ));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7u8; 32];
    const SCALAR: [u8; 32] = [9u8; 32];

    fn ed() -> SigningKey {
        SigningKey::ed25519_from_seed(&SEED)
    }

    fn ec() -> SigningKey {
        SigningKey::p256_from_scalar(&SCALAR).unwrap()
    }

    fn pem_of(label: &str, der: &[u8]) -> String {
        pem_encode(label, der).as_str().to_owned()
    }

    #[test]
    fn sign_and_verify_round_trip_for_both_algorithms() {
        for key in [ed(), ec()] {
            let sig = key.sign(b"approve model");
            key.public_key().verify(b"approve model", &sig).unwrap();
            assert_eq!(
                key.public_key().verify(b"approve modem", &sig),
                Err(SignatureError::Invalid(key.algorithm()))
            );
        }
    }

    #[test]
    fn p256_signatures_are_der_and_deterministic() {
        let key = ec();
        let a = key.sign(b"m");
        assert_eq!(a, key.sign(b"m"), "RFC 6979 nonces are deterministic");
        assert_eq!(a[0], 0x30, "DER SEQUENCE");
        assert!(a.len() <= P256_MAX_DER_SIGNATURE_LEN);
    }

    #[test]
    fn p256_accepts_raw_and_der_forms() {
        let key = ec();
        let der = key.sign(b"m");
        let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        assert_eq!(raw.len(), 64);
        key.public_key().verify(b"m", &der).unwrap();
        key.public_key().verify(b"m", &raw).unwrap();
        assert!(key.public_key().verify(b"x", &raw).is_err());
    }

    #[test]
    fn p256_accepts_high_s() {
        let key = ec();
        let sig = p256::ecdsa::Signature::from_der(&key.sign(b"m")).unwrap();
        let (r, s) = sig.split_scalars();
        let flipped = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(flipped, sig);
        key.public_key().verify(b"m", &flipped.to_bytes()).unwrap();
        key.public_key()
            .verify(b"m", flipped.to_der().as_bytes())
            .unwrap();
    }

    #[test]
    fn a_flipped_bit_anywhere_fails() {
        for key in [ed(), ec()] {
            let msg = b"approval payload".to_vec();
            let sig = key.sign(&msg);
            for i in 0..sig.len() * 8 {
                let mut bad = sig.clone();
                bad[i / 8] ^= 1 << (i % 8);
                assert!(
                    key.public_key().verify(&msg, &bad).is_err(),
                    "{} bit {i}",
                    key.algorithm()
                );
            }
            for i in 0..msg.len() * 8 {
                let mut bad = msg.clone();
                bad[i / 8] ^= 1 << (i % 8);
                assert!(key.public_key().verify(&bad, &sig).is_err());
            }
        }
    }

    #[test]
    fn another_key_does_not_verify() {
        let other_ed = SigningKey::ed25519_from_seed(&[8u8; 32]).public_key();
        let other_ec = SigningKey::p256_from_scalar(&[10u8; 32])
            .unwrap()
            .public_key();
        assert!(other_ed.verify(b"m", &ed().sign(b"m")).is_err());
        assert!(other_ec.verify(b"m", &ec().sign(b"m")).is_err());
        // Cross-algorithm: an Ed25519 signature is not a P-256 one and vice versa.
        assert!(other_ec.verify(b"m", &ed().sign(b"m")).is_err());
        assert!(matches!(
            other_ed.verify(b"m", &ec().sign(b"m")),
            Err(SignatureError::Malformed { .. })
        ));
    }

    #[test]
    fn malformed_signatures_say_why() {
        let e = ed().public_key().verify(b"m", &[0u8; 63]).unwrap_err();
        assert!(e.to_string().contains("64 bytes"), "{e}");
        let e = ec().public_key().verify(b"m", &[0u8; 64]).unwrap_err();
        assert!(e.to_string().contains("zero"), "{e}");
        let e = ec().public_key().verify(b"m", &[0x30; 80]).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        let e = ec().public_key().verify(b"m", b"").unwrap_err();
        assert!(e.to_string().contains("neither"), "{e}");
    }

    #[test]
    fn public_pem_round_trips_with_a_stable_fingerprint() {
        for key in [ed(), ec()] {
            let public = key.public_key();
            let pem = public.to_pem();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
            assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
            let back = PublicKey::from_pem(&pem).unwrap();
            assert_eq!(back, public);
            assert_eq!(back.fingerprint(), public.fingerprint());
            assert!(public.fingerprint().starts_with("sha256:"));
            assert_eq!(public.fingerprint().len(), 7 + 64);
            // Surrounding whitespace and CRLF line endings are fine.
            let crlf = format!("\n\n{}\n", pem.replace('\n', "\r\n"));
            assert_eq!(PublicKey::from_pem(&crlf).unwrap(), public);
        }
        assert_ne!(
            ed().public_key().fingerprint(),
            ec().public_key().fingerprint()
        );
    }

    #[test]
    fn compressed_p256_points_get_the_uncompressed_fingerprint() {
        let public = ec().public_key();
        let PublicKey::EcdsaP256(k) = public else {
            panic!("not P-256")
        };
        let compressed = k.to_sec1_point(true);
        // SEQUENCE { AlgorithmIdentifier, BIT STRING (34 bytes) } with a 33-byte point.
        let mut der = vec![0x30, 0x39];
        der.extend_from_slice(&SPKI_P256_PREFIX[2..24]);
        der.extend_from_slice(&[0x22, 0x00]);
        der.extend_from_slice(compressed.as_bytes());
        let back = PublicKey::from_spki_der(&der).unwrap();
        assert_eq!(back, public);
        assert_eq!(back.fingerprint(), public.fingerprint());
    }

    #[test]
    fn fingerprint_is_sha256_of_spki_der() {
        let public = ed().public_key();
        let der = public.to_spki_der();
        assert_eq!(der.len(), 44);
        assert_eq!(
            public.fingerprint(),
            format!("sha256:{}", hex::encode(Sha256::digest(&der)))
        );
    }

    #[test]
    fn bad_public_pems_are_named() {
        let err = |s: &str| PublicKey::from_pem(s).unwrap_err().to_string();
        assert!(
            err("hello").contains("not a PEM document"),
            "{}",
            err("hello")
        );
        let e = err("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n");
        assert!(e.contains("not a PEM document"), "{e}");

        let private = ed().to_pkcs8_pem();
        let e = err(&private);
        assert!(e.contains("found \"PRIVATE KEY\""), "{e}");
        assert!(e.contains("register its public key"), "{e}");
        let cert = pem_of("CERTIFICATE", &[0x30, 0x00]);
        assert!(err(&cert).contains("openssl x509"), "{}", err(&cert));

        let e = err(&pem_of("PUBLIC KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]));
        assert!(e.contains("malformed SubjectPublicKeyInfo"), "{e}");
    }

    #[test]
    fn unsupported_algorithms_are_named() {
        // An RSA SubjectPublicKeyInfo (1024-bit modulus elided to a tiny INTEGER: the algorithm
        // is refused before the key is read).
        let rsa = hex::decode("301e300d06092a864886f70d0101010500030d00300a020300c0010203010001")
            .unwrap();
        let e = PublicKey::from_pem(&pem_of("PUBLIC KEY", &rsa))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported key algorithm RSA"), "{e}");
        assert!(
            PublicKey::from_pem(&pem_of("RSA PUBLIC KEY", &[0x30, 0x00]))
                .unwrap_err()
                .to_string()
                .contains("RSA")
        );

        // A P-384 SPKI header (secp384r1) with a dummy point.
        let mut p384 = hex::decode("3076301006072a8648ce3d020106052b81040022036200").unwrap();
        p384.extend_from_slice(&[4u8; 97]);
        let e = PublicKey::from_pem(&pem_of("PUBLIC KEY", &p384))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ECDSA P-384"), "{e}");

        // Ed448.
        let mut ed448 = hex::decode("3043300506032b6571033a00").unwrap();
        ed448.extend_from_slice(&[1u8; 57]);
        let e = PublicKey::from_spki_der(&ed448).unwrap_err().to_string();
        assert!(e.contains("Ed448"), "{e}");

        // An OID nobody lists.
        let odd = hex::decode("300f300806062a0304050607030300ffff").unwrap();
        let e = PublicKey::from_spki_der(&odd).unwrap_err().to_string();
        assert!(e.contains("OID 1.2.3.4.5.6.7"), "{e}");
    }

    #[test]
    fn bad_points_are_refused() {
        let mut der = SPKI_P256_PREFIX.to_vec();
        der.push(0x04);
        der.extend_from_slice(&[1u8; 64]);
        let e = PublicKey::from_spki_der(&der).unwrap_err().to_string();
        assert!(e.contains("invalid ecdsa-p256 public key"), "{e}");

        let mut short = vec![0x30, 0x29];
        short.extend_from_slice(&SPKI_ED25519_PREFIX[2..10]);
        short.extend_from_slice(&[0x20, 0x00]);
        short.extend_from_slice(&[1u8; 31]);
        let e = PublicKey::from_spki_der(&short).unwrap_err().to_string();
        assert!(e.contains("32 bytes"), "{e}");

        // The identity point has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let e = PublicKey::ed25519_from_bytes(&identity)
            .unwrap_err()
            .to_string();
        assert!(e.contains("small order"), "{e}");
    }

    #[test]
    fn private_pem_round_trips() {
        for key in [ed(), ec()] {
            let pem = key.to_pkcs8_pem();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let back = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            assert_eq!(back.sign(b"m").len(), key.sign(b"m").len());
        }
    }

    #[test]
    fn pkcs8_encoding_matches_the_library_encoder() {
        // The hand-written DER must be what a generic PKCS#8 parser reads back.
        let SigningKey::EcdsaP256(k) = ec() else {
            panic!("not P-256")
        };
        let der = ec().to_pkcs8_der();
        let parsed = p256::ecdsa::SigningKey::from_pkcs8_der(&der).unwrap();
        assert_eq!(parsed.to_bytes(), k.to_bytes());
        let der = ed().to_pkcs8_der();
        let parsed = ed25519_dalek::SigningKey::from_pkcs8_der(&der).unwrap();
        assert_eq!(parsed.to_bytes(), SEED);
    }

    #[test]
    fn sec1_ec_private_keys_are_read() {
        let SigningKey::EcdsaP256(k) = ec() else {
            panic!("not P-256")
        };
        let secret = p256::SecretKey::from(k.as_nonzero_scalar());
        let sec1 = secret.to_sec1_der().unwrap();
        let pem = pem_of("EC PRIVATE KEY", &sec1);
        let back = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(back.public_key(), ec().public_key());
    }

    #[test]
    fn bad_private_pems_are_named() {
        let err = |s: &str| SigningKey::from_pem(s).unwrap_err().to_string();
        let e = err(&ed().public_key().to_pem());
        assert!(e.contains("found \"PUBLIC KEY\""), "{e}");
        assert!(e.contains("signing needs the private key"), "{e}");
        let e = err(&pem_of("ENCRYPTED PRIVATE KEY", &[0x30, 0x00]));
        assert!(
            e.contains("encrypted private keys are not supported"),
            "{e}"
        );
        let e = err(&pem_of("RSA PRIVATE KEY", &[0x30, 0x00]));
        assert!(e.contains("RSA"), "{e}");
        let e = err(&pem_of("PRIVATE KEY", &[0x30, 0x00]));
        assert!(e.contains("malformed PKCS#8"), "{e}");
        let e = err(&pem_of("EC PRIVATE KEY", &[0x30, 0x00]));
        assert!(e.contains("malformed SEC1"), "{e}");
        assert!(err("").contains("not a PEM document"));

        // A SEC1 key on secp384r1: version 1, a 48-byte scalar, [0] namedCurve.
        let mut p384 = hex::decode("303e0201010430").unwrap();
        p384.extend_from_slice(&[5u8; 48]);
        p384.extend_from_slice(&hex::decode("a00706052b81040022").unwrap());
        let e = err(&pem_of("EC PRIVATE KEY", &p384));
        assert!(e.contains("ECDSA P-384"), "{e}");

        // A P-256 PKCS#8 whose embedded public point belongs to another key.
        let mut der = ec().to_pkcs8_der().to_vec();
        let other = SigningKey::p256_from_scalar(&[10u8; 32])
            .unwrap()
            .to_pkcs8_der();
        let n = der.len();
        der[n - 65..].copy_from_slice(&other[n - 65..]);
        let e = err(&pem_of("PRIVATE KEY", &der));
        assert!(e.contains("invalid ecdsa-p256 private key"), "{e}");
    }

    #[test]
    fn p256_scalar_must_be_in_range() {
        assert!(SigningKey::p256_from_scalar(&[0u8; 32]).is_err());
        assert!(SigningKey::p256_from_scalar(&[0xffu8; 32]).is_err());
    }

    #[test]
    fn generated_keys_work_and_differ() {
        for alg in KeyAlgorithm::ALL {
            let a = SigningKey::generate(alg).unwrap();
            let b = SigningKey::generate(alg).unwrap();
            assert_eq!(a.algorithm(), alg);
            assert_ne!(a.public_key(), b.public_key());
            a.public_key().verify(b"x", &a.sign(b"x")).unwrap();
        }
    }

    #[test]
    fn debug_never_prints_private_material() {
        for key in [ed(), ec()] {
            let debug = format!("{key:?}");
            assert!(debug.contains(&key.public_key().fingerprint()), "{debug}");
            let secret = match key {
                SigningKey::Ed25519(_) => SEED,
                SigningKey::EcdsaP256(_) => SCALAR,
            };
            for needle in [
                hex::encode(secret),
                hex::encode_upper(secret),
                format!("{secret:?}"),
                format!("{:?}", &secret[..4]),
                Base64::encode_string(&secret),
            ] {
                assert!(!debug.contains(&needle), "{debug} leaks {needle}");
            }
            assert!(
                !debug.contains("7, 7, 7") && !debug.contains("9, 9, 9"),
                "{debug}"
            );
        }
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(
            serde_json::to_string(&KeyAlgorithm::EcdsaP256).unwrap(),
            "\"ecdsa-p256\""
        );
        assert_eq!(
            serde_json::from_str::<KeyAlgorithm>("\"ed25519\"").unwrap(),
            KeyAlgorithm::Ed25519
        );
        assert_eq!(
            "ecdsa-p256".parse::<KeyAlgorithm>().unwrap(),
            KeyAlgorithm::EcdsaP256
        );
        assert!("rsa".parse::<KeyAlgorithm>().is_err());
    }
}
