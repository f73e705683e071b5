//! Fuzzes C2SP signed notes and checkpoints: `Note::parse`, `NoteVerifier::parse`,
//! `NoteSigner::from_private_key_string`, `note::open` / `open_bytes` and `Checkpoint::parse` /
//! `SignedCheckpoint::open` on arbitrary text, with fixed trusted keys. Accepted keys and
//! checkpoints must round-trip through their text form, and any text the fixed signer agrees
//! to sign must open again to exactly that text.
#![no_main]

use std::sync::LazyLock;

use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::note::{self, Note, NoteSigner, NoteVerifier};
use libfuzzer_sys::fuzz_target;

/// The key the seeds are signed with: name `example.com/log`, seed `[5; 32]`.
static SIGNER: LazyLock<NoteSigner> =
    LazyLock::new(|| NoteSigner::from_seed("example.com/log", [5; 32]).expect("signer"));

/// Trusted keys: the fixed signer and the Go test key PeterNeumann.
static VERIFIERS: LazyLock<Vec<NoteVerifier>> = LazyLock::new(|| {
    vec![
        SIGNER.verifier(),
        NoteVerifier::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .expect("vkey"),
    ]
});

fuzz_target!(|data: &[u8]| {
    let verifiers = &*VERIFIERS;
    let _ = note::open_bytes(data, verifiers);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(v) = NoteVerifier::parse(text) {
        let again = NoteVerifier::parse(&v.to_string()).expect("vkey must re-parse");
        assert_eq!(again, v);
    }
    if let Ok(s) = NoteSigner::from_private_key_string(text) {
        let again = NoteSigner::from_private_key_string(&s.to_private_key_string())
            .expect("private key must re-parse");
        assert_eq!(again.verifier(), s.verifier());
    }

    if let Ok(n) = Note::parse(text) {
        assert!(n.text.ends_with('\n') && !n.signatures.is_empty());
    }
    if let Ok(opened) = note::open(text, verifiers) {
        assert!(!opened.verified_by.is_empty());
    }
    let _ = SignedCheckpoint::open(text, &verifiers[0]);

    if let Ok(cp) = Checkpoint::parse(text) {
        assert_eq!(cp.to_text(), text, "checkpoint text does not round-trip");
        // Re-sign the body as the fixed log, which must then open to the same checkpoint.
        let cp = Checkpoint {
            origin: SIGNER.name().to_owned(),
            ..cp
        };
        if let Ok(signed) = SignedCheckpoint::sign(cp.clone(), &SIGNER) {
            let opened = SignedCheckpoint::open(&signed.note, &verifiers[0])
                .unwrap_or_else(|e| panic!("own checkpoint does not open: {e}"));
            assert_eq!(opened.checkpoint, cp);
        }
    }

    // Any text the signer accepts must open to exactly that text.
    if let Ok(signed) = SIGNER.sign(text) {
        let opened = note::open(&signed, verifiers)
            .unwrap_or_else(|e| panic!("own note does not open: {e}: {signed:?}"));
        assert_eq!(opened.text, text);
        assert_eq!(opened.verified_by, [SIGNER.name()]);
    }
});
