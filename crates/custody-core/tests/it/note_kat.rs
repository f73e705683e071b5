//! Known-answer tests for C2SP signed notes and checkpoints against
//! `testdata/vectors/signed-note/signed_note_kat.json` (Go's `sumdb/note` and `sumdb/tlog` tests
//! and the C2SP signed-note example), so custody stays byte-compatible with Go tooling.

use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::merkle::Hash;
use custody_core::note::{self, Note, NoteError, NoteSigner, NoteVerifier};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn kat() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/signed-note/signed_note_kat.json"
    );
    let text = std::fs::read_to_string(path).expect("read signed-note KAT");
    serde_json::from_str(&text).expect("parse signed-note KAT")
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array"))
}

fn string<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

fn verifiers(case: &Value) -> Vec<NoteVerifier> {
    array(case, "verifier_keys")
        .iter()
        .map(|k| NoteVerifier::parse(k.as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn vkeys_parse_and_round_trip() {
    let kat = kat();
    let vkeys = array(&kat, "vkeys");
    assert_eq!(vkeys.len(), 4);
    for case in vkeys {
        let vkey = string(case, "vkey");
        let verifier = NoteVerifier::parse(vkey).unwrap();
        assert_eq!(hex::encode(verifier.key_id()), string(case, "key_id_hex"));
        assert_eq!(verifier.to_string(), vkey);
        assert_eq!(vkey.parse::<NoteVerifier>().unwrap(), verifier);
        assert_eq!(
            NoteVerifier::new(verifier.name(), verifier.public_key()).unwrap(),
            verifier
        );
        assert_eq!(vkey.split('+').next(), Some(verifier.name()));
    }
}

#[test]
fn bad_vkeys_are_rejected() {
    let kat = kat();
    let bad = array(&kat, "bad_vkeys");
    assert_eq!(bad.len(), 2);
    for case in bad {
        let vkey = string(case, "vkey");
        assert!(
            NoteVerifier::parse(vkey).is_err(),
            "{}",
            string(case, "why")
        );
    }
    assert!(matches!(
        NoteVerifier::parse(string(&bad[1], "vkey")),
        Err(NoteError::UnsupportedAlgorithm(0x65))
    ));
}

#[test]
fn notes_open_with_expected_verifiers() {
    let kat = kat();
    let notes = array(&kat, "notes");
    assert_eq!(notes.len(), 4);
    for case in notes {
        let id = string(case, "id");
        let signed = string(case, "note");
        let opened = note::open(signed, &verifiers(case)).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(opened.text, string(case, "text"), "{id}");
        let expected: Vec<&str> = array(case, "expect_verified")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(opened.verified_by, expected, "{id}");
        let parsed = Note::parse(signed).unwrap();
        assert_eq!(parsed.text, opened.text, "{id}");
        assert!(parsed.signatures.iter().all(|s| s.signature.len() == 64));
        assert_eq!(
            note::open_bytes(signed.as_bytes(), &verifiers(case)).unwrap(),
            opened
        );
    }
}

#[test]
fn must_reject_notes_are_rejected() {
    let kat = kat();
    let cases = array(&kat, "must_reject");
    assert_eq!(cases.len(), 8);
    for case in cases {
        let id = string(case, "id");
        let result = note::open(string(case, "note"), &verifiers(case));
        assert!(result.is_err(), "{id} was accepted");
    }
    let space = cases
        .iter()
        .find(|c| string(c, "id") == "space in key name")
        .unwrap();
    let terminated = format!("{}\n", string(space, "note"));
    assert!(matches!(
        note::open(&terminated, &verifiers(space)),
        Err(NoteError::MalformedNote(_))
    ));
    assert!(matches!(
        note::open(string(&cases[0], "note"), &[]),
        Err(NoteError::Unverified)
    ));
    assert!(matches!(
        note::open(string(&cases[1], "note"), &verifiers(&cases[1])),
        Err(NoteError::InvalidSignature { ref name, ref key_id })
            if name == "PeterNeumann" && key_id == "c74f20a3"
    ));
}

#[test]
fn must_reject_note_bytes_are_rejected() {
    let kat = kat();
    let cases = array(&kat, "must_reject_note_bytes_hex");
    assert_eq!(cases.len(), 1);
    for case in cases {
        let bytes = hex::decode(string(case, "note_hex")).unwrap();
        assert!(
            matches!(
                note::open_bytes(&bytes, &verifiers(case)),
                Err(NoteError::InvalidUtf8)
            ),
            "{}",
            string(case, "id")
        );
        assert!(std::str::from_utf8(&bytes).is_err());
    }
}

#[test]
fn signers_reproduce_go_output() {
    let kat = kat();
    let signers = array(&kat, "signers");
    assert_eq!(signers.len(), 1);
    for case in signers {
        let skey = string(case, "skey");
        let signer = NoteSigner::from_private_key_string(skey).unwrap();
        assert_eq!(signer.verifier().to_string(), string(case, "expected_vkey"));
        assert_eq!(signer.to_private_key_string(), skey);
        let signed = signer.sign(string(case, "text")).unwrap();
        assert_eq!(signed, string(case, "expected_note"));
        let opened = note::open(&signed, &[signer.verifier()]).unwrap();
        assert_eq!(opened.text, string(case, "text"));
    }
}

#[test]
fn go_sumdb_tree_note_body() {
    let kat = kat();
    let case = &kat["go_sumdb_tlog_tree_note"];
    let text = string(case, "text");
    let cp = Checkpoint::parse(text).unwrap();
    let expected_root: [u8; 32] = Sha256::new()
        .chain_update([0u8])
        .chain_update(b"hello world")
        .finalize()
        .into();
    assert_eq!(
        cp,
        Checkpoint {
            origin: "go.sum database tree".to_owned(),
            size: 123456789012,
            root: Hash(expected_root),
            extensions: Vec::new(),
        }
    );
    assert_eq!(cp.to_text(), text);
}

#[test]
fn go_sumdb_origin_cannot_be_a_key_name() {
    let kat = kat();
    let cp = Checkpoint::parse(string(&kat["go_sumdb_tlog_tree_note"], "text")).unwrap();
    assert!(matches!(
        NoteSigner::from_seed(&cp.origin, [0; 32]),
        Err(NoteError::InvalidKeyName)
    ));
}

#[test]
fn checkpoint_signed_by_go_key_round_trips() {
    let kat = kat();
    let signer =
        NoteSigner::from_private_key_string(string(&array(&kat, "signers")[0], "skey")).unwrap();
    let cp = Checkpoint {
        origin: "PeterNeumann".to_owned(),
        size: 123456789012,
        root: Hash([0x42; 32]),
        extensions: Vec::new(),
    };
    let signed = SignedCheckpoint::sign(cp.clone(), &signer).unwrap();
    let verifier = NoteVerifier::parse(string(&array(&kat, "vkeys")[0], "vkey")).unwrap();
    let opened = SignedCheckpoint::open(&signed.note, &verifier).unwrap();
    assert_eq!(opened.checkpoint, cp);
    assert_eq!(opened.note, signed.note);
    let enoch = NoteVerifier::parse(string(&array(&kat, "vkeys")[1], "vkey")).unwrap();
    assert!(SignedCheckpoint::open(&signed.note, &enoch).is_err());
}
