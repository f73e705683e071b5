//! Fuzzes approvals: PEM and DER public/private key parsing on arbitrary input, and, after
//! `jcs::parse_strict`, `DsseEnvelope::from_json` with `verify_with` against fixed Ed25519 and
//! P-256 keys, `intoto::Statement::from_json` and `intoto::ApprovalPredicate::from_json`.
//! Accepted values must round-trip through their JSON form, and an accepted approval must
//! build a statement that parses back.
#![no_main]

use std::sync::LazyLock;

use custody_core::dsse::{self, DsseEnvelope};
use custody_core::intoto::{self, ApprovalPredicate, Statement};
use custody_core::jcs;
use custody_core::signing::{PublicKey, SigningKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// An Ed25519 key from a constant seed, and the P-256 key of the DSSE specification's test
/// vector (`d` of testdata/vectors/dsse/dsse_kat.json), so seeds can carry valid signatures.
static KEYS: LazyLock<[SigningKey; 2]> = LazyLock::new(|| {
    let d = "d73ec437fd6346e3619c5ebfdfff0f6916804955ad32ac9ac492b0ede1f6ffb7";
    let mut scalar = [0u8; 32];
    for (i, byte) in scalar.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&d[2 * i..2 * i + 2], 16).expect("hex");
    }
    [
        SigningKey::ed25519_from_seed(&[3; 32]),
        SigningKey::p256_from_scalar(&scalar).expect("P-256 scalar"),
    ]
});
static PUBLIC: LazyLock<[PublicKey; 2]> =
    LazyLock::new(|| [KEYS[0].public_key(), KEYS[1].public_key()]);

const VERSION_HASH: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn keys(data: &[u8]) {
    let _ = PublicKey::from_spki_der(data);
    let _ = SigningKey::from_pkcs8_der(data);
    let _ = SigningKey::from_sec1_der(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = PublicKey::from_pem(text) {
        let again = PublicKey::from_pem(&key.to_pem()).expect("own PEM must parse");
        assert_eq!(again.fingerprint(), key.fingerprint());
    }
    if let Ok(key) = SigningKey::from_pem(text) {
        let public = key.public_key();
        public
            .verify(b"message", &key.sign(b"message"))
            .expect("own signature must verify");
    }
}

fn envelope(value: &Value) {
    let Ok(env) = DsseEnvelope::from_json(value) else {
        return;
    };
    let again = DsseEnvelope::from_json(&env.to_json()).expect("own JSON must parse");
    assert_eq!(again, env);
    for key in PUBLIC.iter() {
        if let Ok(i) = env.verify_with(key) {
            assert!(i < env.signatures.len());
        }
    }
    let resigned = dsse::sign(&KEYS[0], &env.payload_type, &env.payload, "fuzz");
    assert_eq!(resigned.verify_with(&PUBLIC[0]).ok(), Some(0));
    if let Ok(statement) = Statement::from_envelope(&env) {
        statement_and_approval(&statement);
    }
}

fn statement_and_approval(statement: &Statement) {
    let again = Statement::from_json(&statement.to_json()).expect("own statement must parse");
    assert_eq!(&again, statement);
    if let Ok(approval) = ApprovalPredicate::from_statement(statement) {
        approval_round_trip(&approval);
    }
}

fn approval_round_trip(approval: &ApprovalPredicate) {
    let again =
        ApprovalPredicate::from_json(&approval.to_json()).expect("own predicate must parse");
    assert_eq!(&again, approval);
    let payload = intoto::approval_statement("fraud-model", VERSION_HASH, approval)
        .unwrap_or_else(|e| panic!("valid approval refused: {e}"));
    let statement = Statement::from_payload(&payload).expect("own payload must parse");
    assert_eq!(
        ApprovalPredicate::from_statement(&statement).ok().as_ref(),
        Some(approval)
    );
}

fuzz_target!(|data: &[u8]| {
    keys(data);
    let Ok(value) = jcs::parse_strict(data) else {
        return;
    };
    envelope(&value);
    if let Ok(statement) = Statement::from_json(&value) {
        statement_and_approval(&statement);
    }
    if let Ok(approval) = ApprovalPredicate::from_json(&value) {
        approval_round_trip(&approval);
    }
});
