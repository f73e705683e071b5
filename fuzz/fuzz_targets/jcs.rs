//! Fuzzes RFC 8785 canonical JSON: `jcs::parse_strict` on arbitrary bytes, then, for every
//! document it accepts, `jcs::canonicalize` must either refuse it cleanly or produce bytes that
//! parse back to the same value and canonicalise to themselves (idempotence).
#![no_main]

use custody_core::jcs;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Equality of JSON values up to number spelling: canonical form writes `1.0` as `1` and `-0`
/// as `0`, which serde_json then reads as an integer, so numbers are compared as the doubles
/// JCS defines them to be (every accepted number is within ±(2^53-1), hence exact).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = jcs::parse_strict(data) else {
        return;
    };
    // Refusing (an unsafe number) is a clean outcome; only a panic or a wrong result is a bug.
    let Ok(canonical) = jcs::canonicalize(&value) else {
        return;
    };
    let reparsed = jcs::parse_strict(&canonical).unwrap_or_else(|e| {
        panic!(
            "canonical output does not parse: {e}: {:?}",
            String::from_utf8_lossy(&canonical)
        )
    });
    assert!(
        same(&value, &reparsed),
        "round trip changed the value: {value:?} -> {reparsed:?}"
    );
    let again = jcs::canonicalize(&reparsed).expect("canonical output must canonicalise");
    assert_eq!(canonical, again, "canonicalize is not idempotent");
});
