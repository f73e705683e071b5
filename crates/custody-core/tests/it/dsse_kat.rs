//! Known-answer test for DSSE against `testdata/vectors/dsse/dsse_kat.json`, the test vector
//! of the DSSE specification (protocol.md, "Test Vectors"): the PAE bytes, the envelope and an
//! ECDSA P-256 signature that custody must verify and, signing with the same key and RFC 6979
//! nonces, reproduce bit for bit.

use custody_core::dsse::{self, DsseEnvelope};
use custody_core::signing::{KeyAlgorithm, PublicKey, SignatureError, SigningKey};
use serde_json::Value;

fn kat() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/dsse/dsse_kat.json"
    );
    let text = std::fs::read_to_string(path).expect("read DSSE KAT");
    serde_json::from_str(&text).expect("parse DSSE KAT")
}

fn string<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

/// A non-negative decimal integer below 2^256 as 32 big-endian bytes.
fn decimal_to_be32(decimal: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for digit in decimal.bytes() {
        assert!(digit.is_ascii_digit(), "not a decimal digit in {decimal}");
        let mut carry = u32::from(digit - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "{decimal} does not fit in 32 bytes");
    }
    out
}

fn vector_public_key(v: &Value) -> PublicKey {
    let key = &v["key"];
    let mut point = vec![0x04];
    point.extend_from_slice(&decimal_to_be32(string(key, "x_decimal")));
    point.extend_from_slice(&decimal_to_be32(string(key, "y_decimal")));
    PublicKey::p256_from_sec1(&point).expect("vector point is on P-256")
}

fn vector_signing_key(v: &Value) -> SigningKey {
    SigningKey::p256_from_scalar(&decimal_to_be32(string(&v["key"], "d_decimal")))
        .expect("vector scalar is valid")
}

#[test]
fn decimal_conversion_is_right() {
    let mut one = [0u8; 32];
    one[31] = 1;
    assert_eq!(decimal_to_be32("1"), one);
    let mut big = [0u8; 32];
    big[30] = 0x01;
    big[31] = 0x00;
    assert_eq!(decimal_to_be32("256"), big);
    assert_eq!(
        decimal_to_be32(
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        ),
        [0xff; 32]
    );
}

#[test]
fn pae_is_byte_exact() {
    let v = kat();
    let pae = dsse::pae(
        string(&v, "payload_type"),
        string(&v, "serialized_body").as_bytes(),
    );
    assert_eq!(pae, string(&v, "pae").as_bytes());
}

#[test]
fn the_vector_envelope_parses_and_verifies() {
    let v = kat();
    let env = DsseEnvelope::from_json(&v["envelope"]).expect("vector envelope parses");
    assert_eq!(env.payload_type, string(&v, "payload_type"));
    assert_eq!(env.payload, string(&v, "serialized_body").as_bytes());
    assert_eq!(env.signatures.len(), 1);
    assert_eq!(env.signatures[0].keyid, "");
    assert_eq!(env.signatures[0].sig.len(), 64, "raw r||s");
    assert_eq!(env.pae(), string(&v, "pae").as_bytes());

    let public = vector_public_key(&v);
    assert_eq!(public.algorithm(), KeyAlgorithm::EcdsaP256);
    assert_eq!(env.verify_with(&public), Ok(0));

    // Our JSON form of the envelope is the vector's.
    assert_eq!(env.to_json(), v["envelope"]);
}

#[test]
fn the_vector_key_reproduces_the_signature() {
    let v = kat();
    let signing = vector_signing_key(&v);
    let public = vector_public_key(&v);
    assert_eq!(signing.public_key(), public, "d matches (x, y)");

    let env = dsse::sign(
        &signing,
        string(&v, "payload_type"),
        string(&v, "serialized_body").as_bytes(),
        "",
    );
    let der = &env.signatures[0].sig;
    assert_eq!(der[0], 0x30, "custody writes DER");
    let raw = p256::ecdsa::Signature::from_der(der)
        .expect("custody's DER parses")
        .to_bytes();
    let expected = DsseEnvelope::from_json(&v["envelope"]).unwrap().signatures[0]
        .sig
        .clone();
    assert_eq!(
        raw.as_slice(),
        expected.as_slice(),
        "RFC 6979 signing reproduces the vector's signature"
    );
    env.verify_with(&public).unwrap();
}

#[test]
fn a_tampered_vector_fails() {
    let v = kat();
    let public = vector_public_key(&v);
    let good = DsseEnvelope::from_json(&v["envelope"]).unwrap();

    let mut payload = good.clone();
    payload.payload = b"hello World".to_vec();
    assert!(matches!(
        payload.verify_with(&public),
        Err(SignatureError::NoneVerified { count: 1, .. })
    ));

    let mut retyped = good.clone();
    retyped.payload_type = "http://example.com/HelloWorlds".into();
    assert!(retyped.verify_with(&public).is_err());

    let mut sig = good.clone();
    sig.signatures[0].sig[10] ^= 0x40;
    assert!(sig.verify_with(&public).is_err());

    let other = SigningKey::p256_from_scalar(&[1u8; 32])
        .unwrap()
        .public_key();
    assert!(good.verify_with(&other).is_err());
}
