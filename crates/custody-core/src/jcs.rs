//! RFC 8785 (JCS) canonical JSON: the exact bytes custody hashes into its logs.
//!
//! Canonicalisation itself is delegated to `serde_json_canonicalizer`, which implements the
//! RFC's key ordering and ECMAScript number formatting. That crate, like every JCS crate that
//! goes through `f64`, silently rounds integers beyond 2^53-1; a ledger must never hash a value
//! that differs from what the client sent, so [`check_numbers`] rejects such numbers first,
//! naming the field.
//!
//! [`parse_strict`] is the only JSON parser for data that will be hashed: it refuses duplicate
//! object keys (RFC 8785 §3.1 requires I-JSON, RFC 7493, which forbids them), because two
//! parsers that pick different duplicates would see different entries behind one leaf hash.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The largest integer an IEEE 754 double represents exactly (RFC 8785 §3.2.2.3, I-JSON §2.2).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// How deep a JSON document may nest; deeper input is refused rather than risking the stack.
pub const MAX_DEPTH: usize = 64;

/// Why a JSON value cannot be canonicalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JcsError {
    /// A number outside the range JCS represents exactly.
    #[error(
        "{field}: number {number} is outside ±(2^53-1) and cannot be hashed exactly; send it as a string"
    )]
    UnsafeNumber {
        /// Dotted path of the offending value.
        field: String,
        /// The number as it was parsed.
        number: String,
    },
    /// The document is not valid JSON, repeats a key, or nests too deep.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// The canonicaliser refused the value.
    #[error("cannot canonicalise JSON: {0}")]
    Canonicalize(String),
}

/// Checks every number in `value` is exactly representable, reporting the first offender by its
/// path below `field` (`body.metrics.loss`, `related[2]`).
pub fn check_numbers(value: &Value, field: &str) -> Result<(), JcsError> {
    match value {
        Value::Number(n) => {
            let safe = if let Some(u) = n.as_u64() {
                u <= MAX_SAFE_INTEGER
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() <= MAX_SAFE_INTEGER
            } else {
                // A float: integers written beyond 2^64 land here already rounded, and any
                // magnitude past 2^53 no longer has unit precision, so neither can round-trip.
                n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.abs() <= MAX_SAFE_INTEGER as f64)
            };
            if safe {
                Ok(())
            } else {
                Err(JcsError::UnsafeNumber {
                    field: field.to_string(),
                    number: n.to_string(),
                })
            }
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_numbers(v, &format!("{field}[{i}]"))),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let path = if field.is_empty() {
                k.clone()
            } else {
                format!("{field}.{k}")
            };
            check_numbers(v, &path)
        }),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// The RFC 8785 canonical bytes of `value`, after [`check_numbers`].
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, JcsError> {
    check_numbers(value, "")?;
    serde_json_canonicalizer::to_vec(value).map_err(|e| JcsError::Canonicalize(e.to_string()))
}

/// Parses JSON text, refusing duplicate object keys and nesting deeper than [`MAX_DEPTH`].
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JcsError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| JcsError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JcsError::Syntax(e.to_string()))?;
    Ok(value)
}

/// Deserialises a `Value` the way serde_json does, but with duplicate-key and depth checks.
struct StrictSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor { depth: self.depth })
    }
}

struct StrictVisitor {
    depth: usize,
}

impl StrictVisitor {
    fn child<E: de::Error>(&self) -> Result<StrictSeed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(StrictSeed {
            depth: self.depth + 1,
        })
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self.child()?)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate object key {key:?}")));
            }
            let value = map.next_value_seed(self.child()?)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_formats_numbers_per_rfc8785() {
        // RFC 8785 §3.2.3 example, trimmed to the parts that exercise ordering and numbers.
        let v = json!({"numbers": [333_333_333.333_333_3, -0.0, 4.50, 2e-3, 0.000_000_000_000_000_000_000_000_001],
                       "string": "\u{20ac}$\u{000F}\u{000a}A'\u{0042}\u{0022}\u{005c}\\\"/",
                       "literals": [null, true, false]});
        let out = String::from_utf8(canonicalize(&v).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,0,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn rejects_integers_beyond_2_pow_53() {
        let v = parse_strict(br#"{"body": {"rows": 9007199254740993}}"#).unwrap();
        let err = canonicalize(&v).unwrap_err();
        assert_eq!(
            err,
            JcsError::UnsafeNumber {
                field: "body.rows".into(),
                number: "9007199254740993".into()
            }
        );
        let ok = parse_strict(br#"{"rows": 9007199254740991, "neg": -9007199254740991}"#).unwrap();
        assert!(canonicalize(&ok).is_ok());
        let huge = parse_strict(br#"{"a": [1, 123456789012345678901234567890]}"#).unwrap();
        assert!(
            matches!(canonicalize(&huge), Err(JcsError::UnsafeNumber { field, .. }) if field == "a[1]")
        );
    }

    #[test]
    fn refuses_duplicate_keys_and_deep_nesting() {
        let err = parse_strict(br#"{"a": 1, "b": {"c": 1, "c": 2}}"#).unwrap_err();
        assert!(
            err.to_string().contains("duplicate object key \"c\""),
            "{err}"
        );
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(parse_strict(deep.as_bytes()).is_err());
        assert!(parse_strict(b"{} trailing").is_err());
    }
}
