//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, as produced and consumed by Go's
//! `golang.org/x/mod/sumdb/note`.
//!
//! A signed note is a text ending in a newline, a blank line, and one or more signature lines
//! `— <key name> base64(key ID || signature)`. Custody signs its checkpoints as notes so that any
//! tlog client (Go's sumdb tooling, siglog, witnesses) can check them without custody's code.
//!
//! Verification follows the spec's "Signatures" section and Go's `note.Open`: signatures from
//! keys the caller does not know (name *and* key ID) are ignored, every signature from a known
//! key must verify, and at least one must.
//!
//! All base64 here is RFC 4648 §4 standard base64 with padding, decoded in constant time and
//! canonically (non-zero trailing bits are refused) with `base64ct`.

use std::fmt;
use std::str::FromStr;

use base64ct::{Base64, Encoding};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte for Ed25519 (signed-note §"Signature types"); it prefixes the public key
/// in vkeys and the seed in Go private-key strings, and is hashed into the key ID.
pub const ALG_ED25519: u8 = 0x01;

/// Largest signed note accepted, in bytes. The spec ("Format") asks verifiers to bound the size
/// of a note while accepting at least 16 signatures of up to ~5 kB; 1 MiB leaves ample room
/// for that and for any checkpoint text while keeping hostile input cheap to refuse.
pub const MAX_NOTE_SIZE: usize = 1 << 20;

/// Most signature lines accepted in one note: Go's `note.Open` limit, well above the 16 the
/// spec ("Format") requires verifiers to accept.
pub const MAX_SIGNATURES: usize = 100;

/// Prefix of every signature line: U+2014 EM DASH then a space (signed-note §"Format").
const SIG_PREFIX: &str = "\u{2014} ";

/// Prefix of Go's private-key strings (`PRIVATE+KEY+<name>+<hex id>+<base64>`).
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Why a key, a note or a signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// The key name breaks signed-note §"Format": it must be non-empty and contain no '+',
    /// no Unicode space and no control character.
    #[error(
        "invalid key name: it must be non-empty and contain no '+', whitespace or control characters"
    )]
    InvalidKeyName,
    /// The verifier key string is not `<name>+<hex8 key ID>+<base64(0x01 || public key)>`
    /// (signed-note §"Verifier keys").
    #[error("malformed verifier key: {0}")]
    MalformedVerifierKey(&'static str),
    /// The private key string is not `PRIVATE+KEY+<name>+<hex8 key ID>+<base64(0x01 || seed)>`.
    #[error("malformed private key: {0}")]
    MalformedPrivateKey(&'static str),
    /// The key uses a signature type other than Ed25519 (0x01), the only one custody supports.
    #[error("unsupported signature algorithm 0x{0:02x}: only Ed25519 (0x01) is supported")]
    UnsupportedAlgorithm(u8),
    /// The key ID in the key string is not SHA-256(name || 0x0A || 0x01 || public key)[:4]
    /// (signed-note §"Ed25519 signatures").
    #[error("key ID does not match the key name and public key")]
    KeyIdMismatch,
    /// The 32 public key bytes do not decode to an Ed25519 point (RFC 8032 §5.1.3).
    #[error("public key is not a valid Ed25519 point")]
    InvalidPublicKey,
    /// The operating system could not provide randomness for a new key.
    #[error("operating system randomness unavailable: {0}")]
    Randomness(getrandom::Error),
    /// The text to sign is not a valid note text (signed-note §"Format").
    #[error("invalid note text: {0}")]
    InvalidText(&'static str),
    /// The signed note is not valid UTF-8 (signed-note §"Format").
    #[error("malformed note: not valid UTF-8")]
    InvalidUtf8,
    /// The signed note is larger than [`MAX_NOTE_SIZE`].
    #[error("note is {size} bytes, more than the {max} accepted")]
    NoteTooLarge {
        /// Size of the refused note in bytes.
        size: usize,
        /// The limit, [`MAX_NOTE_SIZE`].
        max: usize,
    },
    /// The signed note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {max} signatures")]
    TooManySignatures {
        /// The limit, [`MAX_SIGNATURES`].
        max: usize,
    },
    /// The signed note does not follow signed-note §"Format".
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// Two different trusted keys share a name and key ID, so a signature cannot be attributed.
    #[error("ambiguous key {name}+{key_id}: several trusted keys share this name and key ID")]
    AmbiguousVerifier {
        /// Key name shared by the trusted keys.
        name: String,
        /// Key ID shared by the trusted keys, in hex.
        key_id: String,
    },
    /// A signature by a trusted key does not verify; signed-note §"Signatures" says the whole
    /// note should then be rejected.
    #[error("invalid signature for key {name}+{key_id}")]
    InvalidSignature {
        /// Name of the trusted key.
        name: String,
        /// Key ID of the trusted key, in hex.
        key_id: String,
    },
    /// No signature is by a trusted key; signed-note §"Signatures" says the note must then be
    /// rejected and its text ignored.
    #[error("note has no verifiable signatures")]
    Unverified,
}

/// Reports whether `name` may be a key name (signed-note §"Format": non-empty, no Unicode
/// space, no '+'); control characters are refused too because a note may not contain them.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || u32::from(c) < 0x20)
}

/// Computes the key ID, SHA-256(name || 0x0A || 0x01 || public key)[:4]
/// (signed-note §"Ed25519 signatures").
fn key_id_for(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ALG_ED25519]);
    hasher.update(public_key);
    let digest: [u8; 32] = hasher.finalize().into();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Parses the 8-digit lowercase hex key ID of a key string (signed-note §"Conventions":
/// fixed-length lowercase base 16).
fn parse_key_id(hex8: &str) -> Option<[u8; 4]> {
    if hex8.len() != 8
        || !hex8
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut id = [0u8; 4];
    hex::decode_to_slice(hex8, &mut id).ok()?;
    Some(id)
}

/// Overwrites a buffer that held secret material; `black_box` keeps the writes from being
/// optimised away as dead stores (best effort, without an extra dependency).
fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(buf);
}

/// Ed25519 signer for C2SP signed notes; its key name is the log origin, so that the
/// signature line matches the checkpoint's first line (tlog-checkpoint §"Signatures").
/// The secret never appears in `Debug` output.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: [u8; 4],
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// Creates a signer with a fresh key: 32 bytes from the operating system's CSPRNG used as
    /// the RFC 8032 §5.1.5 seed.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(NoteError::Randomness)?;
        let signer = Self::from_seed(name, seed);
        wipe(&mut seed);
        signer
    }

    /// Rebuilds a signer from a persisted RFC 8032 §5.1.5 seed; the name must be a valid key
    /// name (signed-note §"Format").
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id_for(name, &key.verifying_key().to_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// The 32-byte seed, so the caller can persist the key (it must write it with mode 0600).
    pub fn seed(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Formats the key as Go's `note.GenerateKey` private key string
    /// `PRIVATE+KEY+<name>+<hex8 id>+<base64(0x01 || seed)>`, so keys move between custody,
    /// Go tooling and siglog.
    pub fn to_private_key_string(&self) -> String {
        let mut raw = [0u8; 33];
        raw[0] = ALG_ED25519;
        raw[1..].copy_from_slice(self.key.as_bytes());
        let encoded = Base64::encode_string(&raw);
        wipe(&mut raw);
        format!(
            "{PRIVATE_KEY_PREFIX}{}+{}+{encoded}",
            self.name,
            hex::encode(self.key_id)
        )
    }

    /// Parses Go's private key string (see [`NoteSigner::to_private_key_string`]), checking the
    /// key ID against the public key derived from the seed as Go's `note.NewSigner` does.
    pub fn from_private_key_string(s: &str) -> Result<Self, NoteError> {
        let rest = s
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(NoteError::MalformedPrivateKey(
                "missing PRIVATE+KEY+ prefix",
            ))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hex8), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedPrivateKey(
                "expected PRIVATE+KEY+<name>+<key ID>+<key>",
            ));
        };
        if !is_valid_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key_id = parse_key_id(hex8).ok_or(NoteError::MalformedPrivateKey(
            "key ID is not 8 lowercase hex digits",
        ))?;
        let mut raw = [0u8; 33];
        let decoded_len = Base64::decode(key64, &mut raw)
            .map(<[u8]>::len)
            .map_err(|_| NoteError::MalformedPrivateKey("key is not 33 bytes of standard base64"));
        let result = match decoded_len {
            Err(e) => Err(e),
            Ok(33) if raw[0] == ALG_ED25519 => {
                let mut seed = [0u8; 32];
                seed.copy_from_slice(&raw[1..]);
                let signer = Self::from_seed(name, seed);
                wipe(&mut seed);
                signer.and_then(|signer| {
                    if signer.key_id == key_id {
                        Ok(signer)
                    } else {
                        Err(NoteError::KeyIdMismatch)
                    }
                })
            }
            Ok(0) => Err(NoteError::MalformedPrivateKey("key is empty")),
            Ok(_) if raw[0] != ALG_ED25519 => Err(NoteError::UnsupportedAlgorithm(raw[0])),
            Ok(_) => Err(NoteError::MalformedPrivateKey(
                "Ed25519 seed must be 32 bytes",
            )),
        };
        wipe(&mut raw);
        result
    }

    /// The key name, which custody sets to the log origin (tlog-checkpoint §"Signatures").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID, SHA-256(name || 0x0A || 0x01 || public key)[:4]
    /// (signed-note §"Ed25519 signatures").
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The matching verifier key, to publish so that clients can check this signer's notes.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs a note text and returns the signed note: the text, a blank line and one signature
    /// line (signed-note §"Format"). The text must be non-empty, end in a newline and contain
    /// no control character other than newline. Ed25519 (RFC 8032) is deterministic, so the
    /// same key and text always give the same bytes.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes()).to_bytes();
        let mut raw = [0u8; 68];
        raw[..4].copy_from_slice(&self.key_id);
        raw[4..].copy_from_slice(&signature);
        let signed = format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            Base64::encode_string(&raw)
        );
        if signed.len() > MAX_NOTE_SIZE {
            return Err(NoteError::InvalidText(
                "signed note would exceed the maximum note size",
            ));
        }
        Ok(signed)
    }
}

/// Checks a text can be signed (signed-note §"Format"): non-empty, newline-terminated, no
/// control characters other than newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() {
        return Err(NoteError::InvalidText("text is empty"));
    }
    if !text.ends_with('\n') {
        return Err(NoteError::InvalidText("text must end with a newline"));
    }
    if text.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::InvalidText(
            "text contains a control character other than newline",
        ));
    }
    Ok(())
}

/// Verifier key: key name, key ID and Ed25519 public key. It displays as, and parses from, the
/// vkey string `<name>+<hex8 key ID>+<base64(0x01 || public key)>` (signed-note §"Verifier
/// keys"), the form in which clients are configured with a log's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Builds a verifier from a key name and a raw Ed25519 public key, deriving the key ID
    /// (signed-note §"Ed25519 signatures").
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key = VerifyingKey::from_bytes(&public_key).map_err(|_| NoteError::InvalidPublicKey)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id_for(name, &public_key),
            key,
        })
    }

    /// Parses a vkey string (signed-note §"Verifier keys"), checking that the key ID matches
    /// the name and key, that the algorithm is Ed25519 and that the key is a valid point.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hex8), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedVerifierKey(
                "expected <name>+<key ID>+<key>",
            ));
        };
        if !is_valid_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key_id = parse_key_id(hex8).ok_or(NoteError::MalformedVerifierKey(
            "key ID is not 8 lowercase hex digits",
        ))?;
        let mut raw = [0u8; 33];
        let decoded = Base64::decode(key64, &mut raw).map_err(|_| {
            NoteError::MalformedVerifierKey("key is not 33 bytes of standard base64")
        })?;
        let (&alg, public_key) = decoded
            .split_first()
            .ok_or(NoteError::MalformedVerifierKey("key is empty"))?;
        if alg != ALG_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm(alg));
        }
        let public_key: [u8; 32] = public_key
            .try_into()
            .map_err(|_| NoteError::MalformedVerifierKey("Ed25519 public key must be 32 bytes"))?;
        let verifier = Self::new(name, public_key)?;
        if verifier.key_id != key_id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(verifier)
    }

    /// The key name; signature lines naming it are checked with this key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID that, with the name, selects this key for a signature line
    /// (signed-note §"Signatures").
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The 32-byte RFC 8032 Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Checks one Ed25519 signature over the note text (RFC 8032 §5.1.7, cofactorless with a
    /// canonical S, like Go's `crypto/ed25519`).
    fn verifies(&self, text: &str, signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .is_ok_and(|sig| self.key.verify(text.as_bytes(), &sig).is_ok())
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; 33];
        raw[0] = ALG_ED25519;
        raw[1..].copy_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            Base64::encode_string(&raw)
        )
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A signed note split into its text and signature lines (signed-note §"Format"), before any
/// signature is checked: the text must not be trusted until [`open`] has verified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The note text, including its final newline but not the separating blank line.
    pub text: String,
    /// The signature lines, in order, exactly as they appear (duplicates included).
    pub signatures: Vec<NoteSignature>,
}

/// One signature line: `— <name> base64(key ID || signature)` (signed-note §"Signatures").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name of the signer.
    pub name: String,
    /// Key ID of the signer (big-endian uint32 as 4 bytes).
    pub key_id: [u8; 4],
    /// Signature bytes after the key ID (64 bytes for Ed25519, other lengths for other types).
    pub signature: Vec<u8>,
}

impl Note {
    /// Parses a signed note (signed-note §"Format"), with the checks of Go's `note.Open`: no
    /// control characters but newline, text separated from the signatures by the last blank
    /// line, at least one signature line, every line `— <valid name> <base64 of ≥ 5 bytes>`
    /// and newline-terminated, at most [`MAX_SIGNATURES`] lines and [`MAX_NOTE_SIZE`] bytes.
    pub fn parse(signed: &str) -> Result<Note, NoteError> {
        if signed.len() > MAX_NOTE_SIZE {
            return Err(NoteError::NoteTooLarge {
                size: signed.len(),
                max: MAX_NOTE_SIZE,
            });
        }
        if signed.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(NoteError::MalformedNote(
                "contains a control character other than newline",
            ));
        }
        let split = signed.rfind("\n\n").ok_or(NoteError::MalformedNote(
            "no blank line before the signatures",
        ))?;
        let (text, sigs) = (&signed[..=split], &signed[split + 2..]);
        if sigs.is_empty() {
            return Err(NoteError::MalformedNote("no signatures"));
        }
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(NoteError::MalformedNote(
                "last signature line does not end in a newline",
            ));
        };
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURES,
                });
            }
            signatures.push(parse_signature_line(line)?);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }
}

/// Parses one signature line (signed-note §"Signatures"), splitting name and base64 at the
/// first space as Go does.
fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(NoteError::MalformedNote(
            "signature line does not start with an em dash and a space",
        ))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(NoteError::MalformedNote("signature line has no signature"))?;
    if !is_valid_name(name) {
        return Err(NoteError::MalformedNote(
            "invalid key name in signature line",
        ));
    }
    let raw = Base64::decode_vec(b64)
        .map_err(|_| NoteError::MalformedNote("signature is not standard base64"))?;
    match raw.split_first_chunk::<4>() {
        Some((key_id, signature)) if !signature.is_empty() => Ok(NoteSignature {
            name: name.to_owned(),
            key_id: *key_id,
            signature: signature.to_vec(),
        }),
        _ => Err(NoteError::MalformedNote(
            "signature is shorter than a key ID and one byte",
        )),
    }
}

/// A note whose signatures have been checked: its text may now be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedNote {
    /// The verified note text, including its final newline.
    pub text: String,
    /// Names of the trusted keys whose signatures verified, in signature order, one entry per
    /// distinct (name, key ID).
    pub verified_by: Vec<String>,
}

/// Opens a signed note with Go's `note.Open` semantics (signed-note §"Signatures"): parses it,
/// ignores signatures from unknown keys (a key is known only if both name and key ID match),
/// verifies every signature from a known key and fails if any does not verify, and fails if
/// none verified. Repeated lines from one key are verified but reported once.
pub fn open(signed: &str, verifiers: &[NoteVerifier]) -> Result<OpenedNote, NoteError> {
    let note = Note::parse(signed)?;
    let mut verified: Vec<(&str, [u8; 4])> = Vec::new();
    for sig in &note.signatures {
        let mut matching = verifiers
            .iter()
            .filter(|v| v.name == sig.name && v.key_id == sig.key_id);
        let Some(verifier) = matching.next() else {
            continue;
        };
        if matching.any(|other| other.key != verifier.key) {
            return Err(NoteError::AmbiguousVerifier {
                name: sig.name.clone(),
                key_id: hex::encode(sig.key_id),
            });
        }
        if !verifier.verifies(&note.text, &sig.signature) {
            return Err(NoteError::InvalidSignature {
                name: sig.name.clone(),
                key_id: hex::encode(sig.key_id),
            });
        }
        if !verified.contains(&(verifier.name.as_str(), verifier.key_id)) {
            verified.push((verifier.name.as_str(), verifier.key_id));
        }
    }
    if verified.is_empty() {
        return Err(NoteError::Unverified);
    }
    let verified_by = verified
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    Ok(OpenedNote {
        text: note.text,
        verified_by,
    })
}

/// Opens a signed note given as raw bytes, as read from a file or the network: refuses invalid
/// UTF-8 (signed-note §"Format") and otherwise behaves like [`open`].
pub fn open_bytes(signed: &[u8], verifiers: &[NoteVerifier]) -> Result<OpenedNote, NoteError> {
    if signed.len() > MAX_NOTE_SIZE {
        return Err(NoteError::NoteTooLarge {
            size: signed.len(),
            max: MAX_NOTE_SIZE,
        });
    }
    let signed = std::str::from_utf8(signed).map_err(|_| NoteError::InvalidUtf8)?;
    open(signed, verifiers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";

    fn peter() -> NoteSigner {
        NoteSigner::from_private_key_string(PETER_SKEY).unwrap()
    }

    #[test]
    fn key_names() {
        for good in ["a", "example.com/log42", "PeterNeumann", "ünïcode"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "a+b",
            "a b",
            "a\tb",
            "a\nb",
            "a\u{a0}b",
            "a\u{3000}b",
            "a\u{2028}",
            "a\u{1}",
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
            assert!(matches!(
                NoteSigner::from_seed(bad, [7; 32]),
                Err(NoteError::InvalidKeyName)
            ));
        }
    }

    #[test]
    fn debug_hides_secret() {
        let signer = peter();
        let debug = format!("{signer:?}");
        assert!(debug.contains("PeterNeumann"));
        assert!(debug.contains("c74f20a3"));
        assert!(!debug.contains(&hex::encode(signer.seed())));
        assert!(!debug.contains("AYEKFALV"));
    }

    #[test]
    fn private_key_round_trip() {
        let signer = peter();
        assert_eq!(signer.to_private_key_string(), PETER_SKEY);
        assert_eq!(signer.verifier().to_string(), PETER_VKEY);
        let again = NoteSigner::from_seed("PeterNeumann", *signer.seed()).unwrap();
        assert_eq!(again.to_private_key_string(), PETER_SKEY);
        let fresh = NoteSigner::generate("example.com/log").unwrap();
        let parsed = NoteSigner::from_private_key_string(&fresh.to_private_key_string()).unwrap();
        assert_eq!(parsed.seed(), fresh.seed());
        assert_eq!(parsed.verifier(), fresh.verifier());
        assert_ne!(fresh.seed(), signer.seed());
    }

    #[test]
    fn private_key_rejections() {
        let cases = [
            "",
            "PRIVATE+KEY",
            "PRIVATE+KEY+PeterNeumann",
            "PRIVATE+KEY+PeterNeumann+c74f20a3",
            "PUBLIC+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeumann+C74F20A3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeuman+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKD",
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr-Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFzAA==",
            "PRIVATE+KEY+Peter Neumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeumann+c74f20a3+",
        ];
        for case in cases {
            assert!(NoteSigner::from_private_key_string(case).is_err(), "{case}");
        }
    }

    #[test]
    fn verifier_new_matches_parse() {
        let parsed = NoteVerifier::parse(PETER_VKEY).unwrap();
        let built = NoteVerifier::new("PeterNeumann", parsed.public_key()).unwrap();
        assert_eq!(parsed, built);
        assert_eq!(hex::encode(built.key_id()), "c74f20a3");
        assert_eq!(PETER_VKEY.parse::<NoteVerifier>().unwrap(), built);
    }

    #[test]
    fn verifier_rejections() {
        let cases = [
            "",
            "PeterNeumann",
            "PeterNeumann+c74f20a3",
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            "PeterNeumann+c74f20a3+",
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ];
        for case in cases {
            assert!(NoteVerifier::parse(case).is_err(), "{case}");
        }
    }

    #[test]
    fn sign_rejects_bad_text() {
        let signer = peter();
        for text in ["", "no newline", "tab\there\n", "cr\r\n", "nul\0\n"] {
            assert!(
                matches!(signer.sign(text), Err(NoteError::InvalidText(_))),
                "{text:?}"
            );
        }
        let huge = "a".repeat(MAX_NOTE_SIZE) + "\n";
        assert!(signer.sign(&huge).is_err());
    }

    #[test]
    fn sign_open_with_blank_lines_in_text() {
        let signer = peter();
        let text = "first\n\nthird\n\n";
        let signed = signer.sign(text).unwrap();
        let opened = open(&signed, &[signer.verifier()]).unwrap();
        assert_eq!(opened.text, text);
        assert_eq!(opened.verified_by, ["PeterNeumann"]);
        let minimal = signer.sign("\n").unwrap();
        assert_eq!(open(&minimal, &[signer.verifier()]).unwrap().text, "\n");
    }

    #[test]
    fn note_parse_fields() {
        let signed = peter().sign(TEXT).unwrap();
        let note = Note::parse(&signed).unwrap();
        assert_eq!(note.text, TEXT);
        assert_eq!(note.signatures.len(), 1);
        assert_eq!(note.signatures[0].name, "PeterNeumann");
        assert_eq!(hex::encode(note.signatures[0].key_id), "c74f20a3");
        assert_eq!(note.signatures[0].signature.len(), 64);
    }

    #[test]
    fn duplicate_and_unknown_signatures() {
        let peter = peter();
        let other = NoteSigner::from_seed("PeterNeumann", [9; 32]).unwrap();
        let signed = peter.sign(TEXT).unwrap();
        let line = &signed[TEXT.len() + 1..];
        let other_line = &other.sign(TEXT).unwrap()[TEXT.len() + 1..];
        let twice = format!("{signed}{line}{other_line}");
        let opened = open(&twice, &[peter.verifier()]).unwrap();
        assert_eq!(opened.verified_by, ["PeterNeumann"]);
        let both = open(&twice, &[peter.verifier(), other.verifier()]).unwrap();
        assert_eq!(both.verified_by, ["PeterNeumann", "PeterNeumann"]);
        assert!(matches!(
            open(&twice, &[other.verifier()]),
            Ok(OpenedNote { verified_by, .. }) if verified_by == ["PeterNeumann"]
        ));
    }

    #[test]
    fn repeated_known_signature_must_all_verify() {
        let peter = peter();
        let signed = peter.sign(TEXT).unwrap();
        let forged = format!(
            "{signed}{SIG_PREFIX}PeterNeumann {}\n",
            Base64::encode_string(&[[0xc7, 0x4f, 0x20, 0xa3].as_slice(), &[0u8; 64]].concat())
        );
        assert!(matches!(
            open(&forged, &[peter.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn wrong_length_signature_from_known_key_is_invalid() {
        let peter = peter();
        let note = format!(
            "{TEXT}\n{SIG_PREFIX}PeterNeumann {}\n",
            Base64::encode_string(&[0xc7, 0x4f, 0x20, 0xa3, 1, 2, 3])
        );
        assert!(matches!(
            open(&note, &[peter.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn ambiguous_verifiers() {
        let peter = peter();
        let signed = peter.sign(TEXT).unwrap();
        let v = peter.verifier();
        assert!(open(&signed, &[v.clone(), v.clone()]).is_ok());
        let mut impostor = NoteSigner::from_seed("PeterNeumann", [3; 32])
            .unwrap()
            .verifier();
        impostor.key_id = v.key_id;
        assert!(matches!(
            open(&signed, &[v, impostor]),
            Err(NoteError::AmbiguousVerifier { .. })
        ));
    }

    #[test]
    fn malformed_notes() {
        let peter = peter();
        let signed = peter.sign(TEXT).unwrap();
        let sig_b64 = signed.rsplit(' ').next().unwrap().trim_end();
        let cases = [
            String::new(),
            "\n\n".to_owned(),
            format!("{TEXT}\n{SIG_PREFIX}PeterNeumann\n"),
            format!("{TEXT}\n{SIG_PREFIX}PeterNeumann \n"),
            format!("{TEXT}\n{SIG_PREFIX} {sig_b64}\n"),
            format!("{TEXT}\n\u{2014}PeterNeumann {sig_b64}\n"),
            format!("{TEXT}\n- PeterNeumann {sig_b64}\n"),
            format!("{TEXT}\n{SIG_PREFIX}Peter+Neumann {sig_b64}\n"),
            format!("{TEXT}\n{SIG_PREFIX}PeterNeumann {sig_b64} \n"),
            format!("{TEXT}\n{SIG_PREFIX}PeterNeumann {sig_b64}\n\n"),
            format!("{TEXT}\n{SIG_PREFIX}PeterNeumann {sig_b64}\r\n"),
            format!("{TEXT}\n{SIG_PREFIX}PeterNeumann AQIDBA==\n"),
            format!(
                "{TEXT}\n{SIG_PREFIX}PeterNeumann {}\n",
                sig_b64.replace('/', "_")
            ),
        ];
        for case in &cases {
            assert!(Note::parse(case).is_err(), "{case:?}");
            assert!(open(case, &[peter.verifier()]).is_err(), "{case:?}");
        }
    }

    #[test]
    fn signature_count_limit() {
        let peter = peter();
        let signed = peter.sign(TEXT).unwrap();
        let line = &signed[TEXT.len() + 1..];
        let at_limit = format!("{TEXT}\n{}", line.repeat(MAX_SIGNATURES));
        assert!(open(&at_limit, &[peter.verifier()]).is_ok());
        let over = format!("{TEXT}\n{}", line.repeat(MAX_SIGNATURES + 1));
        assert!(matches!(
            Note::parse(&over),
            Err(NoteError::TooManySignatures { .. })
        ));
    }

    #[test]
    fn size_limit_and_bytes() {
        let big = "a".repeat(MAX_NOTE_SIZE + 1);
        assert!(matches!(
            Note::parse(&big),
            Err(NoteError::NoteTooLarge { .. })
        ));
        assert!(matches!(
            open_bytes(big.as_bytes(), &[]),
            Err(NoteError::NoteTooLarge { .. })
        ));
        let peter = peter();
        let signed = peter.sign(TEXT).unwrap();
        assert!(open_bytes(signed.as_bytes(), &[peter.verifier()]).is_ok());
        let mut bad = signed.into_bytes();
        bad[0] = 0xff;
        assert!(matches!(
            open_bytes(&bad, &[peter.verifier()]),
            Err(NoteError::InvalidUtf8)
        ));
    }

    #[test]
    fn tampered_text_fails() {
        let peter = peter();
        let signed = peter.sign(TEXT).unwrap().replacen("If", "if", 1);
        assert!(matches!(
            open(&signed, &[peter.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }
}
