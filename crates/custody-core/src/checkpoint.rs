//! C2SP tlog checkpoints (c2sp.org/tlog-checkpoint): the signed statement "this log, at this
//! size, has this Merkle root", which clients, witnesses and monitors compare to detect a log
//! that shows different histories to different people.
//!
//! The body is the note text `<origin>\n<size>\n<base64 root>\n` plus optional extension lines;
//! custody emits none, but parsing keeps them so that any conforming checkpoint round-trips.
//! Custody signs checkpoints as Ed25519 signed notes whose key name is the origin.

use base64ct::{Base64, Encoding};

use crate::merkle::Hash;
use crate::note::{self, NoteError, NoteSigner, NoteVerifier};

/// Why a checkpoint body or signed checkpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The body does not follow tlog-checkpoint §"Note text".
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The origin line and the signing key's name differ; custody requires them equal so a
    /// key can only vouch for its own log (tlog-checkpoint §"Signatures").
    #[error("checkpoint origin {origin:?} does not match key name {key_name:?}")]
    OriginMismatch {
        /// The checkpoint's origin line.
        origin: String,
        /// The signing or verifying key's name.
        key_name: String,
    },
    /// The signed note could not be produced or did not verify (c2sp.org/signed-note).
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// C2SP tlog-checkpoint body (§"Note text"): origin line, tree size in decimal without leading
/// zeros, standard base64 RFC 6962 root hash, then optional extension lines (custody emits
/// none; parsing accepts and keeps them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Unique identifier of the log, such as `example.com/log42`.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 Merkle tree hash of the first `size` leaves.
    pub root: Hash,
    /// Opaque, non-empty extension lines, without their newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Formats the note text: `origin\nsize\nbase64(root)\n` followed by each extension line
    /// and a newline (tlog-checkpoint §"Note text").
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            Base64::encode_string(&self.root.0)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint body (tlog-checkpoint §"Note text"): at least three newline-terminated
    /// lines, a non-empty origin, a canonical decimal size that fits in 64 bits, a canonical
    /// standard base64 hash of exactly 32 bytes, and non-empty extension lines. Control
    /// characters are refused since a signed note cannot carry them (signed-note §"Format").
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(CheckpointError::Malformed(
                "contains a control character other than newline",
            ));
        }
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("text does not end in a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::Malformed(
                "fewer than three lines (origin, size, root hash)",
            ));
        };
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin line"));
        }
        let size = parse_decimal(size).ok_or(CheckpointError::Malformed(
            "tree size is not a decimal number without sign or leading zeros that fits in 64 bits",
        ))?;
        let root = decode_hash(root).ok_or(CheckpointError::Malformed(
            "root hash is not 32 bytes of standard base64",
        ))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::Malformed("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

/// Parses an ASCII decimal with no sign and no leading zeros ("0" alone for zero), the form
/// both tlog-checkpoint (tree size) and tlog-proof (index) require.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// Decodes a standard, padded, canonical base64 SHA-256 hash (RFC 4648 §4) of exactly 32 bytes.
pub(crate) fn decode_hash(s: &str) -> Option<Hash> {
    let mut buf = [0u8; 32];
    let len = Base64::decode(s, &mut buf).ok()?.len();
    (len == 32).then_some(Hash(buf))
}

/// A checkpoint together with the signed note that carries it, kept verbatim so it can be
/// served and embedded in tlog-proofs byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed checkpoint body.
    pub checkpoint: Checkpoint,
    /// The full signed note: the body, a blank line and the signature lines.
    pub note: String,
}

impl SignedCheckpoint {
    /// Signs a checkpoint as a signed note. The signer's key name must equal the origin
    /// (tlog-checkpoint §"Signatures": the key name SHOULD match the origin; custody makes it a
    /// rule), and the checkpoint must format to text that parses back to itself, so that what
    /// is signed is exactly what clients will read.
    pub fn sign(cp: Checkpoint, signer: &NoteSigner) -> Result<Self, CheckpointError> {
        if cp.origin != signer.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: cp.origin,
                key_name: signer.name().to_owned(),
            });
        }
        let text = cp.to_text();
        if Checkpoint::parse(&text)? != cp {
            return Err(CheckpointError::Malformed(
                "fields contain newlines or empty extension lines",
            ));
        }
        let note = signer.sign(&text)?;
        Ok(Self {
            checkpoint: cp,
            note,
        })
    }

    /// Opens a signed checkpoint: the note must carry a valid signature by `verifier`
    /// (signed-note §"Signatures"; other signatures, such as witness cosignatures, are
    /// ignored), and only then is the body parsed and its origin required to equal the
    /// verifier's name (tlog-checkpoint §"Signatures").
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Self, CheckpointError> {
        let opened = note::open(note, std::slice::from_ref(verifier))?;
        let checkpoint = Checkpoint::parse(&opened.text)?;
        if checkpoint.origin != verifier.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin,
                key_name: verifier.name().to_owned(),
            });
        }
        Ok(Self {
            checkpoint,
            note: note.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(origin: &str) -> Checkpoint {
        Checkpoint {
            origin: origin.to_owned(),
            size: 20852163,
            root: decode_hash("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=").unwrap(),
            extensions: Vec::new(),
        }
    }

    #[test]
    fn spec_example_body() {
        let text =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let cp = Checkpoint::parse(text).unwrap();
        assert_eq!(cp, sample("example.com/behind-the-sofa"));
        assert_eq!(cp.to_text(), text);
    }

    #[test]
    fn extensions_round_trip() {
        let text = "o\n0\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\next one\n— ext two\n";
        let cp = Checkpoint::parse(text).unwrap();
        assert_eq!(cp.size, 0);
        assert_eq!(cp.extensions, ["ext one", "— ext two"]);
        assert_eq!(cp.to_text(), text);
    }

    #[test]
    fn rejections() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let cases = [
            String::new(),
            "\n".to_owned(),
            format!("o\n1\n{root}"),
            "o\n1\n".to_owned(),
            "o\n1\n\n".to_owned(),
            format!("\n1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n00\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n 1\n{root}\n"),
            format!("o\n1 \n{root}\n"),
            format!("o\n0x1\n{root}\n"),
            format!("o\n1_000\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            "o\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n".to_owned(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_owned(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_owned(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n".to_owned(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2IA\n".to_owned(),
            format!("o\n1\n {root}\n"),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\nmore\n"),
            format!("o\r\n1\n{root}\n"),
            format!("o\n1\n{root}\r\n"),
        ];
        for case in &cases {
            assert!(Checkpoint::parse(case).is_err(), "{case:?}");
        }
        assert_eq!(
            Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n"))
                .unwrap()
                .size,
            u64::MAX
        );
    }

    #[test]
    fn sign_and_open() {
        let signer = NoteSigner::from_seed("example.com/log", [1; 32]).unwrap();
        let signed = SignedCheckpoint::sign(sample("example.com/log"), &signer).unwrap();
        assert!(signed.note.starts_with(&signed.checkpoint.to_text()));
        let opened = SignedCheckpoint::open(&signed.note, &signer.verifier()).unwrap();
        assert_eq!(opened, signed);
    }

    #[test]
    fn sign_refuses_mismatch_and_bad_fields() {
        let signer = NoteSigner::from_seed("example.com/log", [1; 32]).unwrap();
        assert!(matches!(
            SignedCheckpoint::sign(sample("example.com/other"), &signer),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        let mut cp = sample("example.com/log");
        cp.extensions = vec![String::new()];
        assert!(SignedCheckpoint::sign(cp.clone(), &signer).is_err());
        cp.extensions = vec!["a\nb".to_owned()];
        assert!(SignedCheckpoint::sign(cp, &signer).is_err());
    }

    #[test]
    fn open_refuses_other_key_and_origin_mismatch() {
        let signer = NoteSigner::from_seed("example.com/log", [1; 32]).unwrap();
        let signed = SignedCheckpoint::sign(sample("example.com/log"), &signer).unwrap();
        let other = NoteSigner::from_seed("example.com/log", [2; 32]).unwrap();
        assert!(matches!(
            SignedCheckpoint::open(&signed.note, &other.verifier()),
            Err(CheckpointError::Note(NoteError::Unverified))
        ));
        let liar = NoteSigner::from_seed("example.com/liar", [3; 32]).unwrap();
        let body = sample("example.com/log").to_text();
        let note = liar.sign(&body).unwrap();
        assert!(matches!(
            SignedCheckpoint::open(&note, &liar.verifier()),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        let garbage = liar.sign("example.com/liar\nnot a size\n").unwrap();
        assert!(matches!(
            SignedCheckpoint::open(&garbage, &liar.verifier()),
            Err(CheckpointError::Malformed(_))
        ));
        let tampered = signed.note.replacen("20852163", "20852164", 1);
        assert!(matches!(
            SignedCheckpoint::open(&tampered, &signer.verifier()),
            Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
        ));
    }

    #[test]
    fn cosignatures_are_ignored() {
        let log = NoteSigner::from_seed("example.com/log", [1; 32]).unwrap();
        let witness = NoteSigner::from_seed("witness.example", [4; 32]).unwrap();
        let signed = SignedCheckpoint::sign(sample("example.com/log"), &log).unwrap();
        let text = signed.checkpoint.to_text();
        let cosig = &witness.sign(&text).unwrap()[text.len() + 1..];
        let note = format!("{}{cosig}", signed.note);
        let opened = SignedCheckpoint::open(&note, &log.verifier()).unwrap();
        assert_eq!(opened.checkpoint, signed.checkpoint);
        assert_eq!(opened.note, note);
    }

    proptest! {
        #[test]
        fn sign_open_round_trip(
            origin in "[a-z0-9.-]{1,20}(/[A-Za-z0-9._~-]{1,20}){0,3}",
            size in any::<u64>(),
            root in any::<[u8; 32]>(),
            seed in any::<[u8; 32]>(),
        ) {
            let signer = NoteSigner::from_seed(&origin, seed).unwrap();
            let cp = Checkpoint { origin: origin.clone(), size, root: Hash(root), extensions: Vec::new() };
            prop_assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp.clone());
            let signed = SignedCheckpoint::sign(cp.clone(), &signer).unwrap();
            let verifier = NoteVerifier::parse(&signer.verifier().to_string()).unwrap();
            let opened = SignedCheckpoint::open(&signed.note, &verifier).unwrap();
            prop_assert_eq!(opened.checkpoint, cp);
            prop_assert_eq!(opened.note, signed.note);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = Checkpoint::parse(&text);
        }
    }
}
