//! C2SP tlog proofs (c2sp.org/tlog-proof@v1): the self-contained, offline evidence that one
//! entry is in the log, made of the entry's index, its Merkle inclusion path and the signed
//! checkpoint the path leads to.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional)
//! index <decimal>
//! <base64 hash>             (zero or more, leaf sibling first)
//!
//! <signed checkpoint, verbatim>
//! ```
//!
//! The embedded checkpoint itself contains a blank line (between its body and its signatures),
//! so the separator is the first empty line after the proof lines, not the last one.

use base64ct::{Base64, Encoding};

use crate::checkpoint::{self, Checkpoint, CheckpointError, SignedCheckpoint};
use crate::merkle::{self, Hash, MerkleError};
use crate::note::{self, NoteError, NoteVerifier};

/// First line of every proof (tlog-proof §"Format").
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most inclusion path hashes accepted: a tree of at most 2^64 leaves has paths of at most 64
/// hashes (RFC 6962 §2.1.1), so longer paths can only be hostile.
pub const MAX_PATH_LEN: usize = 64;

/// Why a tlog proof was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlogProofError {
    /// The proof text does not follow tlog-proof §"Format".
    #[error("malformed tlog proof: {0}")]
    Malformed(&'static str),
    /// The embedded signed note is malformed (c2sp.org/signed-note).
    #[error("malformed checkpoint note in tlog proof: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint is not signed by the expected log key, or its body is malformed
    /// (tlog-proof §"Verifying a tlog proof", step 2).
    #[error("checkpoint rejected: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The index is not inside the checkpointed tree.
    #[error("index {index} is outside the checkpointed tree of size {size}")]
    IndexOutOfRange {
        /// The proof's index.
        index: u64,
        /// The checkpoint's tree size.
        size: u64,
    },
    /// The inclusion path does not lead from the leaf to the checkpoint's root
    /// (tlog-proof §"Verifying a tlog proof", step 4).
    #[error("inclusion proof does not verify: {0}")]
    Inclusion(#[source] MerkleError),
}

/// C2SP tlog-proof@v1 (§"Format"): optional unauthenticated extra data, the entry's index, its
/// RFC 6962 inclusion path and the signed checkpoint verbatim, so one file proves inclusion
/// offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque application data; not authenticated, so it must not be trusted implicitly.
    pub extra: Option<Vec<u8>>,
    /// Zero-based index of the entry in the log.
    pub index: u64,
    /// Inclusion path from the leaf's sibling up to the root's child (RFC 6962 §2.1.1).
    pub path: Vec<Hash>,
    /// The signed checkpoint note, verbatim (body, blank line, signature lines).
    pub checkpoint: String,
}

impl TlogProof {
    /// Formats the proof text (tlog-proof §"Format"); the checkpoint is appended unchanged.
    pub fn to_text(&self) -> String {
        let mut text = String::from(HEADER);
        text.push('\n');
        if let Some(extra) = &self.extra {
            text.push_str("extra ");
            text.push_str(&Base64::encode_string(extra));
            text.push('\n');
        }
        text.push_str(&format!("index {}\n", self.index));
        for hash in &self.path {
            text.push_str(&Base64::encode_string(&hash.0));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    /// Parses a proof (tlog-proof §"Format"): the header line, an optional `extra` line, the
    /// `index` line (decimal without leading zeros), up to [`MAX_PATH_LEN`] base64 hashes, an
    /// empty line, then the checkpoint, which must be a well-formed signed note (its
    /// signatures are only checked by [`TlogProof::verify`]).
    pub fn parse(text: &str) -> Result<Self, TlogProofError> {
        let mut rest = text;
        let mut next_line = || -> Result<&str, TlogProofError> {
            let (line, after) = rest.split_once('\n').ok_or(TlogProofError::Malformed(
                "missing empty line before the checkpoint",
            ))?;
            rest = after;
            Ok(line)
        };
        if next_line()? != HEADER {
            return Err(TlogProofError::Malformed(
                "first line is not c2sp.org/tlog-proof@v1",
            ));
        }
        let mut line = next_line()?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(
                Base64::decode_vec(b64)
                    .map_err(|_| TlogProofError::Malformed("extra data is not standard base64"))?,
            );
            line = next_line()?;
        }
        let index = line
            .strip_prefix("index ")
            .ok_or(TlogProofError::Malformed("missing index line"))?;
        let index = checkpoint::parse_decimal(index).ok_or(TlogProofError::Malformed(
            "index is not a decimal number without sign or leading zeros that fits in 64 bits",
        ))?;
        let mut path = Vec::new();
        loop {
            let line = next_line()?;
            if line.is_empty() {
                break;
            }
            if path.len() == MAX_PATH_LEN {
                return Err(TlogProofError::Malformed(
                    "inclusion path is longer than 64 hashes",
                ));
            }
            path.push(
                checkpoint::decode_hash(line).ok_or(TlogProofError::Malformed(
                    "inclusion path hash is not 32 bytes of standard base64",
                ))?,
            );
        }
        note::Note::parse(rest)?;
        Ok(Self {
            extra,
            index,
            path,
            checkpoint: rest.to_owned(),
        })
    }

    /// Full verification (tlog-proof §"Verifying a tlog proof"): the checkpoint must be signed
    /// by `verifier` with an origin equal to the verifier's name (step 2; other signatures,
    /// such as witness cosignatures, are ignored here), then `leaf`, the RFC 6962 leaf hash the
    /// caller computed from the entry (step 1), must be included at `index` in the
    /// checkpointed tree (step 4). Returns the verified checkpoint.
    pub fn verify(
        &self,
        leaf: &Hash,
        verifier: &NoteVerifier,
    ) -> Result<Checkpoint, TlogProofError> {
        let signed = SignedCheckpoint::open(&self.checkpoint, verifier)?;
        let cp = signed.checkpoint;
        if self.index >= cp.size {
            return Err(TlogProofError::IndexOutOfRange {
                index: self.index,
                size: cp.size,
            });
        }
        merkle::verify_inclusion(self.index, cp.size, leaf, &self.path, &cp.root)
            .map_err(TlogProofError::Inclusion)?;
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;
    use sha2::{Digest, Sha256};

    fn leaf_hash(data: &[u8]) -> Hash {
        Hash(
            Sha256::new()
                .chain_update([0u8])
                .chain_update(data)
                .finalize()
                .into(),
        )
    }

    fn node_hash(left: &Hash, right: &Hash) -> Hash {
        Hash(
            Sha256::new()
                .chain_update([1u8])
                .chain_update(left.0)
                .chain_update(right.0)
                .finalize()
                .into(),
        )
    }

    /// RFC 6962 §2.1 MTH, written independently of the merkle module.
    fn root(leaves: &[Hash]) -> Hash {
        match leaves {
            [] => Hash(Sha256::digest([]).into()),
            [one] => Hash(one.0),
            _ => {
                let k = leaves.len().next_power_of_two() / 2;
                node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
            }
        }
    }

    /// RFC 6962 §2.1.1 PATH(m, D[n]).
    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if leaves.len() <= 1 {
            return Vec::new();
        }
        let k = leaves.len().next_power_of_two() / 2;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(root(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(root(&leaves[..k]));
            p
        }
    }

    struct Fixture {
        signer: NoteSigner,
        leaves: Vec<Hash>,
        proof: TlogProof,
    }

    fn fixture(index: usize) -> Fixture {
        let signer = NoteSigner::from_seed("example.com/log", [5; 32]).unwrap();
        let leaves: Vec<Hash> = (0..7u8).map(|i| leaf_hash(&[i])).collect();
        let cp = Checkpoint {
            origin: "example.com/log".to_owned(),
            size: leaves.len() as u64,
            root: root(&leaves),
            extensions: Vec::new(),
        };
        let signed = SignedCheckpoint::sign(cp, &signer).unwrap();
        let proof = TlogProof {
            extra: Some(b"context".to_vec()),
            index: index as u64,
            path: path(index, &leaves),
            checkpoint: signed.note,
        };
        Fixture {
            signer,
            leaves,
            proof,
        }
    }

    #[test]
    fn round_trip_and_verify_every_index() {
        for index in 0..7 {
            let f = fixture(index);
            let text = f.proof.to_text();
            let parsed = TlogProof::parse(&text).unwrap();
            assert_eq!(parsed, f.proof);
            assert_eq!(parsed.to_text(), text);
            let cp = parsed
                .verify(&f.leaves[index], &f.signer.verifier())
                .unwrap();
            assert_eq!(cp.size, 7);
            assert_eq!(cp.origin, "example.com/log");
        }
    }

    #[test]
    fn layout_matches_spec() {
        let f = fixture(3);
        let text = f.proof.to_text();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(HEADER));
        assert_eq!(lines.next(), Some("extra Y29udGV4dA=="));
        assert_eq!(lines.next(), Some("index 3"));
        let no_extra = TlogProof {
            extra: None,
            ..f.proof.clone()
        };
        assert!(
            no_extra
                .to_text()
                .starts_with("c2sp.org/tlog-proof@v1\nindex 3\n")
        );
        assert_eq!(TlogProof::parse(&no_extra.to_text()).unwrap(), no_extra);
        let empty_extra = TlogProof {
            extra: Some(Vec::new()),
            ..f.proof
        };
        assert_eq!(
            TlogProof::parse(&empty_extra.to_text()).unwrap(),
            empty_extra
        );
    }

    #[test]
    fn single_leaf_tree_has_empty_path() {
        let signer = NoteSigner::from_seed("example.com/one", [6; 32]).unwrap();
        let leaf = leaf_hash(b"only");
        let cp = Checkpoint {
            origin: "example.com/one".to_owned(),
            size: 1,
            root: Hash(leaf.0),
            extensions: Vec::new(),
        };
        let proof = TlogProof {
            extra: None,
            index: 0,
            path: Vec::new(),
            checkpoint: SignedCheckpoint::sign(cp, &signer).unwrap().note,
        };
        let text = proof.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 0\n\nexample.com/one\n"));
        let parsed = TlogProof::parse(&text).unwrap();
        assert_eq!(parsed, proof);
        parsed.verify(&leaf, &signer.verifier()).unwrap();
    }

    #[test]
    fn tampering_is_detected() {
        let f = fixture(2);
        let verifier = f.signer.verifier();
        let leaf = &f.leaves[2];

        let mut p = f.proof.clone();
        p.path[1].0[0] ^= 1;
        assert!(matches!(
            p.verify(leaf, &verifier),
            Err(TlogProofError::Inclusion(_))
        ));

        let mut p = f.proof.clone();
        p.path.pop();
        assert!(p.verify(leaf, &verifier).is_err());

        let mut p = f.proof.clone();
        p.index = 3;
        assert!(matches!(
            p.verify(leaf, &verifier),
            Err(TlogProofError::Inclusion(_))
        ));

        let mut p = f.proof.clone();
        p.index = 7;
        assert!(matches!(
            p.verify(leaf, &verifier),
            Err(TlogProofError::IndexOutOfRange { index: 7, size: 7 })
        ));

        assert!(f.proof.verify(&f.leaves[3], &verifier).is_err());

        let mut p = f.proof.clone();
        p.checkpoint = p.checkpoint.replacen("\n7\n", "\n8\n", 1);
        assert!(matches!(
            p.verify(leaf, &verifier),
            Err(TlogProofError::Checkpoint(_))
        ));

        let other = NoteSigner::from_seed("example.com/log", [8; 32]).unwrap();
        assert!(matches!(
            f.proof.verify(leaf, &other.verifier()),
            Err(TlogProofError::Checkpoint(_))
        ));

        let renamed = NoteSigner::from_seed("example.com/other", [5; 32]).unwrap();
        assert!(f.proof.verify(leaf, &renamed.verifier()).is_err());
    }

    #[test]
    fn malformed_proofs() {
        let f = fixture(4);
        let good = f.proof.to_text();
        let hash_line = Base64::encode_string(&f.proof.path[0].0);
        let cp = &f.proof.checkpoint;
        let cases = [
            String::new(),
            HEADER.to_owned(),
            good.replacen(HEADER, "c2sp.org/tlog-proof@v2", 1),
            good.replacen("index 4", "index 04", 1),
            good.replacen("index 4", "index +4", 1),
            good.replacen("index 4", "index -4", 1),
            good.replacen("index 4", "index  4", 1),
            good.replacen("index 4", "index", 1),
            good.replacen("index 4", "idx 4", 1),
            good.replacen("index 4", "index 18446744073709551616", 1),
            good.replacen("extra Y29udGV4dA==", "extra Y29udGV4dA", 1),
            good.replacen("extra Y29udGV4dA==", "extra Y29udGV4dA==\nextra AA==", 1),
            good.replacen(
                "extra Y29udGV4dA==\nindex 4",
                "index 4\nextra Y29udGV4dA==",
                1,
            ),
            good.replacen(&hash_line, &hash_line.replace('=', ""), 1),
            good.replacen(&hash_line, &format!("{hash_line} "), 1),
            good.replacen(
                &hash_line,
                "CsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=",
                1,
            ),
            good.replacen(&hash_line, "AAAA", 1),
            format!("{HEADER}\nindex 4\n"),
            format!("{HEADER}\nindex 4\n\n"),
            format!("{HEADER}\nindex 4\n\nnot a note\n"),
            format!("{HEADER}\nindex 4\n{cp}"),
            format!("{HEADER}\r\nindex 4\n\n{cp}"),
            format!(
                "{HEADER}\nindex 4\n{}\n{cp}",
                format!("{hash_line}\n").repeat(65)
            ),
        ];
        for case in &cases {
            assert!(TlogProof::parse(case).is_err(), "{case:?}");
        }
        let at_limit = format!(
            "{HEADER}\nindex 4\n{}\n{cp}",
            format!("{hash_line}\n").repeat(64)
        );
        assert_eq!(TlogProof::parse(&at_limit).unwrap().path.len(), 64);
    }
}
