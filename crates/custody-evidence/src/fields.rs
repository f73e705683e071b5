//! A small field reader for type-specific bodies. Typed events are checked field by field,
//! collecting every problem with its full path (`body.environment.image_digest`), because a
//! pipeline author fixes all of them in one round instead of one per request.

use serde_json::{Map, Value};

/// The shared field-error collector.
pub(crate) type Errors = custody_core::envelope::FieldErrors;

/// Reads the members of one JSON object at a known path.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

/// `sha256:` followed by 64 lowercase hex digits: the digest form `sha256sum` prints.
pub(crate) fn is_sha256_digest(s: &str) -> bool {
    custody_core::commitment::parse_sha256(s).is_some()
}

/// Printable ASCII without spaces, as ids and references are.
pub(crate) fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|c| c.is_ascii_graphic())
}

/// One line of human text.
pub(crate) fn is_text(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

const DIGEST_HINT: &str = "use sha256: followed by 64 lowercase hex digits, as sha256sum prints";

impl<'a> Obj<'a> {
    /// The object at `path`.
    pub(crate) fn new(map: &'a Map<String, Value>, path: impl Into<String>) -> Self {
        Self {
            map,
            path: path.into(),
        }
    }

    pub(crate) fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Refuses members outside `allowed`, naming the ones that are.
    pub(crate) fn only(&self, allowed: &[&str], errors: &mut Errors) {
        errors.unknown(self.map, allowed, &self.path);
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    fn get(&self, key: &str, required: bool, errors: &mut Errors) -> Option<&'a Value> {
        match self.map.get(key) {
            Some(Value::Null) | None => {
                if required {
                    errors.push(self.at(key), "is required");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A string of at most `max` bytes; text (spaces allowed) when `text`, else a token.
    pub(crate) fn string(
        &self,
        key: &str,
        required: bool,
        max: usize,
        text: bool,
        errors: &mut Errors,
    ) -> Option<String> {
        match self.get(key, required, errors)? {
            Value::String(s) => {
                let ok = if text {
                    is_text(s, max)
                } else {
                    is_token(s, max)
                };
                if ok {
                    Some(s.clone())
                } else if text {
                    errors.push(
                        self.at(key),
                        format!("use one line of 1-{max} bytes without control characters"),
                    );
                    None
                } else {
                    errors.push(
                        self.at(key),
                        format!("use 1-{max} printable ASCII characters without spaces"),
                    );
                    None
                }
            }
            _ => {
                errors.push(self.at(key), "must be a string");
                None
            }
        }
    }

    pub(crate) fn token(&self, key: &str, errors: &mut Errors) -> Option<String> {
        self.string(key, true, 256, false, errors)
    }

    pub(crate) fn opt_token(&self, key: &str, errors: &mut Errors) -> Option<String> {
        self.string(key, false, 256, false, errors)
    }

    pub(crate) fn text(&self, key: &str, max: usize, errors: &mut Errors) -> Option<String> {
        self.string(key, true, max, true, errors)
    }

    pub(crate) fn opt_text(&self, key: &str, max: usize, errors: &mut Errors) -> Option<String> {
        self.string(key, false, max, true, errors)
    }

    /// A `sha256:<hex>` digest.
    pub(crate) fn digest(&self, key: &str, required: bool, errors: &mut Errors) -> Option<String> {
        match self.get(key, required, errors)? {
            Value::String(s) if is_sha256_digest(s) => Some(s.clone()),
            _ => {
                errors.push(self.at(key), DIGEST_HINT);
                None
            }
        }
    }

    pub(crate) fn u64(&self, key: &str, required: bool, errors: &mut Errors) -> Option<u64> {
        match self.get(key, required, errors)? {
            Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
            _ => {
                errors.push(self.at(key), "must be a non-negative integer");
                None
            }
        }
    }

    pub(crate) fn number(&self, key: &str, required: bool, errors: &mut Errors) -> Option<f64> {
        match self.get(key, required, errors)? {
            Value::Number(n) => n.as_f64(),
            _ => {
                errors.push(self.at(key), "must be a number");
                None
            }
        }
    }

    pub(crate) fn boolean(&self, key: &str, required: bool, errors: &mut Errors) -> Option<bool> {
        match self.get(key, required, errors)? {
            Value::Bool(b) => Some(*b),
            _ => {
                errors.push(self.at(key), "must be true or false");
                None
            }
        }
    }

    /// One of `choices`.
    pub(crate) fn choice(
        &self,
        key: &str,
        required: bool,
        choices: &[&str],
        errors: &mut Errors,
    ) -> Option<String> {
        match self.get(key, required, errors)? {
            Value::String(s) if choices.contains(&s.as_str()) => Some(s.clone()),
            _ => {
                errors.push(self.at(key), format!("use one of: {}", choices.join(", ")));
                None
            }
        }
    }

    pub(crate) fn object(&self, key: &str, required: bool, errors: &mut Errors) -> Option<Obj<'a>> {
        match self.get(key, required, errors)? {
            Value::Object(m) => Some(Obj::new(m, self.at(key))),
            _ => {
                errors.push(self.at(key), "must be a JSON object");
                None
            }
        }
    }

    /// A JSON array, with each item's path.
    pub(crate) fn array(
        &self,
        key: &str,
        required: bool,
        errors: &mut Errors,
    ) -> Option<Vec<(String, &'a Value)>> {
        match self.get(key, required, errors)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{}[{i}]", self.at(key)), v))
                    .collect(),
            ),
            _ => {
                errors.push(self.at(key), "must be a JSON array");
                None
            }
        }
    }

    /// An array of objects.
    pub(crate) fn objects(&self, key: &str, required: bool, errors: &mut Errors) -> Vec<Obj<'a>> {
        let mut out = Vec::new();
        for (path, v) in self.array(key, required, errors).unwrap_or_default() {
            match v {
                Value::Object(m) => out.push(Obj::new(m, path)),
                _ => errors.push(path, "must be a JSON object"),
            }
        }
        out
    }

    /// An array of `sha256:` digests.
    pub(crate) fn digests(&self, key: &str, required: bool, errors: &mut Errors) -> Vec<String> {
        let mut out = Vec::new();
        for (path, v) in self.array(key, required, errors).unwrap_or_default() {
            match v {
                Value::String(s) if is_sha256_digest(s) => out.push(s.clone()),
                _ => errors.push(path, DIGEST_HINT),
            }
        }
        out
    }

    /// An object whose members are all numbers (metrics) or all short strings (versions).
    pub(crate) fn flat_map(
        &self,
        key: &str,
        numbers: bool,
        errors: &mut Errors,
    ) -> Option<Map<String, Value>> {
        let obj = self.object(key, false, errors)?;
        for (k, v) in obj.map {
            let ok = if numbers {
                v.is_number()
            } else {
                v.as_str().is_some_and(|s| is_token(s, 128))
            };
            if !ok {
                let want = if numbers {
                    "must be a number"
                } else {
                    "must be a version string (printable ASCII, no spaces, at most 128)"
                };
                errors.push(obj.at(k), want);
            }
        }
        Some(obj.map.clone())
    }

    /// The member names, in document order.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    pub(crate) fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digests_must_be_lowercase_sha256() {
        assert!(is_sha256_digest(&format!("sha256:{}", "ab".repeat(32))));
        assert!(!is_sha256_digest(&format!("sha256:{}", "AB".repeat(32))));
        assert!(!is_sha256_digest(&format!("sha512:{}", "ab".repeat(32))));
        assert!(!is_sha256_digest("sha256:abc"));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let v = json!({"a": 1, "b": "x y", "c": {"d": "nope"}, "zz": true});
        let obj = Obj::new(v.as_object().unwrap(), "body");
        let mut e = Errors::default();
        obj.only(&["a", "b", "c"], &mut e);
        obj.token("a", &mut e);
        obj.token("b", &mut e);
        obj.object("c", true, &mut e)
            .unwrap()
            .digest("d", true, &mut e);
        obj.u64("missing", true, &mut e);
        let err = e.finish(()).unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["body.zz", "body.a", "body.b", "body.c.d", "body.missing"]
        );
    }
}
