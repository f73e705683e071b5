//! What the server's integration tests share: the harness of `custody-testkit` (the real
//! server on an ephemeral port with the typed and a raw HTTP client), and small checks written
//! without custody code (hex, a JCS for the JSON the tests send, the RFC 9162 tree in
//! [`rfc9162`]), so a bug in custody's own encoders cannot hide from them.

pub mod rfc9162;

use base64ct::{Base64, Encoding};
use serde_json::Value;

pub use custody_testkit::server::*;

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes lowercase or uppercase hex; panics on anything else.
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// 32 bytes from lowercase hex, refusing any other spelling.
#[track_caller]
pub fn hash_hex(s: &str) -> rfc9162::H {
    assert!(
        s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "not 64 lowercase hex digits: {s}"
    );
    unhex(s).try_into().expect("32 bytes")
}

/// 32 bytes from standard base64.
pub fn hash_b64(s: &str) -> rfc9162::H {
    Base64::decode_vec(s)
        .expect("standard base64")
        .try_into()
        .expect("32 bytes")
}

/// RFC 8785 for the JSON these tests send: integers, booleans, null, printable-ASCII strings,
/// arrays and objects (whose keys, being ASCII, sort by UTF-16 code units as bytes). Panics on
/// anything outside that subset rather than guess.
pub fn jcs(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            assert!(n.is_i64() || n.is_u64(), "only integers in test JSON: {n}");
            n.to_string()
        }
        Value::String(s) => jcs_string(s),
        Value::Array(items) => format!("[{}]", items.iter().map(jcs).collect::<Vec<_>>().join(",")),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", jcs_string(k), jcs(&map[k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
    }
}

fn jcs_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        assert!(
            (' '..='~').contains(&c),
            "only printable ASCII in test JSON: {s:?}"
        );
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
