//! Fuzzes C2SP tlog-proof: `TlogProof::parse` on arbitrary text (plus the hash decoders it
//! relies on), round trip through `to_text`, and `TlogProof::verify` against a fixed log key.
//! Random bytes rarely carry a valid signature, so each parsed proof is also verified once
//! more with its checkpoint body re-signed by the fixed key: that drives the index, tree size
//! and inclusion path of the input into the Merkle verification.
#![no_main]

use std::sync::LazyLock;

use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::merkle::{self, Hash};
use custody_core::note::{self, NoteSigner, NoteVerifier};
use custody_core::tlog_proof::TlogProof;
use libfuzzer_sys::fuzz_target;

/// The log key the seeds are signed with: name `example.com/log`, seed `[5; 32]`.
static SIGNER: LazyLock<NoteSigner> =
    LazyLock::new(|| NoteSigner::from_seed("example.com/log", [5; 32]).expect("signer"));
static VERIFIER: LazyLock<NoteVerifier> = LazyLock::new(|| SIGNER.verifier());

/// Verifies with the leaf the seeds prove (leaf 0..n is `leaf_hash([i])`) and, so that every
/// proof length is reachable, with the first path hash as a stand-in leaf.
fn verify_all(proof: &TlogProof) {
    let index_byte = u8::try_from(proof.index).unwrap_or(0);
    let _ = proof.verify(&merkle::leaf_hash(&[index_byte]), &VERIFIER);
    if let Some(first) = proof.path.first() {
        let _ = proof.verify(first, &VERIFIER);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = Hash::from_hex(text) {
        assert_eq!(h.to_hex(), text);
    }
    if let Ok(h) = Hash::from_base64(text) {
        assert_eq!(h.to_base64(), text);
    }

    let Ok(proof) = TlogProof::parse(text) else {
        return;
    };
    let again = TlogProof::parse(&proof.to_text()).expect("formatted proof must re-parse");
    assert_eq!(again, proof);
    verify_all(&proof);

    // Re-sign the embedded checkpoint body (if it is one) as the fixed log.
    let Ok(note) = note::Note::parse(&proof.checkpoint) else {
        return;
    };
    let Ok(cp) = Checkpoint::parse(&note.text) else {
        return;
    };
    let cp = Checkpoint {
        origin: SIGNER.name().to_owned(),
        ..cp
    };
    let Ok(signed) = SignedCheckpoint::sign(cp, &SIGNER) else {
        return;
    };
    let resigned = TlogProof {
        checkpoint: signed.note,
        ..proof
    };
    verify_all(&resigned);
});
