//! in-toto Statements (in-toto attestation framework, Statement v1) and custody's approval
//! predicate: what a signed approval says (SPEC §7).
//!
//! An approval is a DSSE envelope of type [`INTOTO_PAYLOAD_TYPE`] whose payload is a Statement
//! about one model version: the subject names the model and carries the version hash as its
//! `sha256` digest, and the predicate ([`APPROVAL_PREDICATE_TYPE`]) records the decision, the
//! stage or environment it applies to, the criteria checked with their evidence digests, the
//! policy applied and a comment. Using the public formats means any in-toto or Sigstore tool
//! can read and verify an approval without custody.
//!
//! Statements are parsed strictly ([`crate::jcs::parse_strict`]: no duplicate keys, bounded
//! depth), because what a verifier reads must be what the signer meant. Unknown fields of the
//! Statement and its subjects are ignored, as the framework's parsing rules require; the
//! approval predicate is custody's own and refuses unknown fields, so a signed approval never
//! carries a condition that a verifier would silently drop.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::dsse::DsseEnvelope;
use crate::envelope::ValidationError;
use crate::jcs;

/// DSSE payload type of in-toto Statements.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// `predicateType` of custody approvals.
pub const APPROVAL_PREDICATE_TYPE: &str = "https://custody.dev/attestation/approval/v1";

/// Longest `target`, criterion `name` or `policy` accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Longest approval `comment` accepted, in bytes.
pub const MAX_COMMENT_BYTES: usize = 4096;

/// Most criteria one approval may list.
pub const MAX_CRITERIA: usize = 256;

/// The approval predicate's fields.
const APPROVAL_FIELDS: &[&str] = &["decision", "target", "criteria", "policy", "comment"];
/// The fields of one criterion.
const CRITERION_FIELDS: &[&str] = &["name", "passed", "evidence"];

type Errors = crate::envelope::FieldErrors;

/// Readers of this module's fields on top of the shared error collector.
trait StatementFields {
    fn text(&mut self, obj: &Map<String, Value>, key: &str, prefix: &str, max: usize) -> String;

    fn optional_text(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        prefix: &str,
        max: usize,
    ) -> Option<String>;
}

impl StatementFields for Errors {
    fn text(&mut self, obj: &Map<String, Value>, key: &str, prefix: &str, max: usize) -> String {
        let field = format!("{prefix}.{key}");
        match obj.get(key) {
            None => {
                self.push(field, "is required");
                String::new()
            }
            Some(Value::String(s)) => {
                if let Err(m) = check_text(s, max) {
                    self.push(field, m);
                }
                s.clone()
            }
            Some(_) => {
                self.push(field, "must be a string");
                String::new()
            }
        }
    }

    fn optional_text(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        prefix: &str,
        max: usize,
    ) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(_) => Some(self.text(obj, key, prefix, max)),
        }
    }
}

/// Checks free text: non-empty, at most `max` bytes, no control characters.
fn check_text(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else if s.len() > max {
        Err(format!("is {} bytes; the limit is {max}", s.len()))
    } else if s.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// Whether `s` is exactly 64 lowercase hex digits, the spelling of a SHA-256 digest.
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Hex lengths of the digest algorithms whose spelling is checked.
fn digest_hex_len(alg: &str) -> Option<usize> {
    match alg {
        "sha1" => Some(40),
        "sha256" => Some(64),
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    }
}

/// One artifact a Statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The artifact's name; for approvals, the model name.
    pub name: String,
    /// Digests by algorithm (`sha256` to lowercase hex); never empty.
    pub digest: BTreeMap<String, String>,
}

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// What the statement is about; never empty.
    pub subject: Vec<Subject>,
    /// URI naming the predicate's schema.
    pub predicate_type: String,
    /// The claim itself; its schema is given by `predicate_type`.
    pub predicate: Value,
}

impl Statement {
    /// Parses a Statement from DSSE payload bytes with the strict parser, reporting every
    /// problem by its path (`_type`, `subject[0].digest.sha256`, `predicateType`).
    pub fn from_payload(bytes: &[u8]) -> Result<Self, ValidationError> {
        let value = jcs::parse_strict(bytes)
            .map_err(|e| ValidationError::one("", format!("the payload is not JSON: {e}")))?;
        Self::from_json(&value)
    }

    /// Reads a Statement from a DSSE envelope after checking its payload type is
    /// [`INTOTO_PAYLOAD_TYPE`]. The envelope's signatures are not checked here.
    pub fn from_envelope(envelope: &DsseEnvelope) -> Result<Self, ValidationError> {
        if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
            return Err(ValidationError::one(
                "payloadType",
                format!(
                    "is {:?}; an in-toto statement has payloadType {INTOTO_PAYLOAD_TYPE}",
                    envelope.payload_type
                ),
            ));
        }
        Self::from_payload(&envelope.payload)
    }

    /// Reads a Statement from a parsed JSON value.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let Some(obj) = value.as_object() else {
            return Err(ValidationError::one(
                "",
                "an in-toto statement must be a JSON object",
            ));
        };
        let mut errors = Errors::default();

        match obj.get("_type") {
            Some(Value::String(t)) if t == STATEMENT_TYPE => {}
            Some(Value::String(t)) => errors.push(
                "_type",
                format!("is {t:?}; only in-toto Statement v1 ({STATEMENT_TYPE}) is accepted"),
            ),
            Some(_) => errors.push("_type", "must be a string"),
            None => errors.push("_type", format!("is required: use {STATEMENT_TYPE}")),
        }

        let mut subject = Vec::new();
        match obj.get("subject") {
            None => errors.push("subject", "is required"),
            Some(Value::Array(items)) if items.is_empty() => {
                errors.push("subject", "must name at least one subject");
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = read_subject(item, &format!("subject[{i}]"), &mut errors) {
                        subject.push(s);
                    }
                }
            }
            Some(_) => errors.push("subject", "must be an array"),
        }

        let predicate_type = match obj.get("predicateType") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            Some(Value::String(_)) => {
                errors.push("predicateType", "must not be empty");
                String::new()
            }
            Some(_) => {
                errors.push("predicateType", "must be a string");
                String::new()
            }
            None => {
                errors.push("predicateType", "is required");
                String::new()
            }
        };

        let predicate = match obj.get("predicate") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                errors.push("predicate", "must be a JSON object");
                Value::Null
            }
        };

        errors.finish(Self {
            subject,
            predicate_type,
            predicate,
        })
    }

    /// The Statement's JSON form.
    pub fn to_json(&self) -> Value {
        let subject: Vec<Value> = self
            .subject
            .iter()
            .map(|s| json!({"name": s.name, "digest": s.digest}))
            .collect();
        json!({
            "_type": STATEMENT_TYPE,
            "subject": subject,
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        })
    }
}

/// Reads one subject, recording its problems under `prefix`.
fn read_subject(item: &Value, prefix: &str, errors: &mut Errors) -> Option<Subject> {
    let Some(obj) = item.as_object() else {
        errors.push(prefix, "must be an object with name and digest");
        return None;
    };
    let before = errors.len();
    let name = errors.text(obj, "name", prefix, usize::MAX);
    let mut digest = BTreeMap::new();
    match obj.get("digest") {
        None => errors.push(format!("{prefix}.digest"), "is required"),
        Some(Value::Object(d)) if d.is_empty() => errors.push(
            format!("{prefix}.digest"),
            "must hold at least one digest, e.g. {\"sha256\": \"<64 hex>\"}",
        ),
        Some(Value::Object(d)) => {
            for (alg, v) in d {
                let field = format!("{prefix}.digest.{alg}");
                match v {
                    Value::String(hex) => {
                        let ok = match digest_hex_len(alg) {
                            Some(n) => {
                                hex.len() == n
                                    && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                            }
                            None => !hex.is_empty(),
                        };
                        if ok {
                            digest.insert(alg.clone(), hex.clone());
                        } else {
                            let message = match digest_hex_len(alg) {
                                Some(n) => format!("must be {n} lowercase hex digits"),
                                None => "must not be empty".into(),
                            };
                            errors.push(field, message);
                        }
                    }
                    _ => errors.push(field, "must be a hex string"),
                }
            }
        }
        Some(_) => errors.push(format!("{prefix}.digest"), "must be an object"),
    }
    (errors.len() == before).then_some(Subject { name, digest })
}

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The model version may go to the target.
    Approve,
    /// The model version must not go to the target.
    Reject,
}

impl Decision {
    /// The JSON spelling: `approve` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// One acceptance criterion the approver checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    /// What was checked, e.g. `auc>=0.9` or `bias-review`.
    pub name: String,
    /// Whether it was met.
    pub passed: bool,
    /// SHA-256 (64 lowercase hex) of the evidence behind the check, e.g. an evaluation report.
    pub evidence_sha256: Option<String>,
}

/// The predicate of an approval statement ([`APPROVAL_PREDICATE_TYPE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPredicate {
    /// Approve or reject.
    pub decision: Decision,
    /// The stage or environment the decision applies to, e.g. `production`.
    pub target: String,
    /// The criteria checked; may be empty.
    pub criteria: Vec<Criterion>,
    /// The policy the decision was made under, e.g. its name or digest.
    pub policy: Option<String>,
    /// Free-text justification. It is signed and public to every proof holder: no personal
    /// data.
    pub comment: Option<String>,
}

impl ApprovalPredicate {
    /// Reads the predicate of an approval statement, reporting every problem by its path
    /// (`predicate.decision`, `predicate.criteria[1].passed`). Unknown fields are refused.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        const P: &str = "predicate";
        let Some(obj) = value.as_object() else {
            return Err(ValidationError::one(P, "must be a JSON object"));
        };
        let mut errors = Errors::default();
        errors.unknown(obj, APPROVAL_FIELDS, P);

        let decision = match obj.get("decision") {
            Some(Value::String(d)) if d == "approve" => Some(Decision::Approve),
            Some(Value::String(d)) if d == "reject" => Some(Decision::Reject),
            Some(_) => {
                errors.push("predicate.decision", "must be \"approve\" or \"reject\"");
                None
            }
            None => {
                errors.push(
                    "predicate.decision",
                    "is required: \"approve\" or \"reject\"",
                );
                None
            }
        };
        let target = errors.text(obj, "target", P, MAX_NAME_BYTES);

        let mut criteria = Vec::new();
        match obj.get("criteria") {
            None => errors.push("predicate.criteria", "is required (it may be empty)"),
            Some(Value::Array(items)) if items.len() > MAX_CRITERIA => errors.push(
                "predicate.criteria",
                format!(
                    "lists {} criteria; the limit is {MAX_CRITERIA}",
                    items.len()
                ),
            ),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let prefix = format!("predicate.criteria[{i}]");
                    if let Some(c) = read_criterion(item, &prefix, &mut errors) {
                        criteria.push(c);
                    }
                }
            }
            Some(_) => errors.push("predicate.criteria", "must be an array"),
        }

        let policy = errors.optional_text(obj, "policy", P, MAX_NAME_BYTES);
        let comment = errors.optional_text(obj, "comment", P, MAX_COMMENT_BYTES);

        match decision {
            Some(decision) => errors.finish(Self {
                decision,
                target,
                criteria,
                policy,
                comment,
            }),
            None => Err(errors.finish(()).err().unwrap_or_else(|| {
                ValidationError::one("predicate.decision", "must be approve or reject")
            })),
        }
    }

    /// Reads the approval carried by `statement`, after checking its predicate type is
    /// [`APPROVAL_PREDICATE_TYPE`].
    pub fn from_statement(statement: &Statement) -> Result<Self, ValidationError> {
        if statement.predicate_type != APPROVAL_PREDICATE_TYPE {
            return Err(ValidationError::one(
                "predicateType",
                format!(
                    "is {:?}; an approval has predicateType {APPROVAL_PREDICATE_TYPE}",
                    statement.predicate_type
                ),
            ));
        }
        Self::from_json(&statement.predicate)
    }

    /// The predicate's JSON form; absent optional fields are left out.
    pub fn to_json(&self) -> Value {
        let criteria: Vec<Value> = self
            .criteria
            .iter()
            .map(|c| {
                let mut obj = Map::new();
                obj.insert("name".into(), Value::String(c.name.clone()));
                obj.insert("passed".into(), Value::Bool(c.passed));
                if let Some(d) = &c.evidence_sha256 {
                    obj.insert("evidence".into(), json!({"sha256": d}));
                }
                Value::Object(obj)
            })
            .collect();
        let mut obj = Map::new();
        obj.insert("decision".into(), json!(self.decision.as_str()));
        obj.insert("target".into(), json!(self.target));
        obj.insert("criteria".into(), Value::Array(criteria));
        if let Some(p) = &self.policy {
            obj.insert("policy".into(), json!(p));
        }
        if let Some(c) = &self.comment {
            obj.insert("comment".into(), json!(c));
        }
        Value::Object(obj)
    }
}

/// Reads one criterion, recording its problems under `prefix`.
fn read_criterion(item: &Value, prefix: &str, errors: &mut Errors) -> Option<Criterion> {
    let Some(obj) = item.as_object() else {
        errors.push(prefix, "must be an object with name, passed and evidence");
        return None;
    };
    let before = errors.len();
    errors.unknown(obj, CRITERION_FIELDS, prefix);
    let name = errors.text(obj, "name", prefix, MAX_NAME_BYTES);
    let passed = match obj.get("passed") {
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(format!("{prefix}.passed"), "must be true or false");
            false
        }
        None => {
            errors.push(format!("{prefix}.passed"), "is required: true or false");
            false
        }
    };
    let evidence_sha256 = match obj.get("evidence") {
        None | Some(Value::Null) => None,
        Some(Value::Object(e)) => {
            let field = format!("{prefix}.evidence");
            for key in e.keys().filter(|k| *k != "sha256") {
                errors.push(
                    format!("{field}.{key}"),
                    "unknown field: evidence is {\"sha256\": \"<64 hex>\"}",
                );
            }
            match e.get("sha256") {
                Some(Value::String(d)) if is_sha256_hex(d) => Some(d.clone()),
                Some(_) => {
                    errors.push(format!("{field}.sha256"), "must be 64 lowercase hex digits");
                    None
                }
                None => {
                    errors.push(format!("{field}.sha256"), "is required");
                    None
                }
            }
        }
        Some(_) => {
            errors.push(
                format!("{prefix}.evidence"),
                "must be an object {\"sha256\": \"<64 hex>\"}",
            );
            None
        }
    };
    (errors.len() == before).then_some(Criterion {
        name,
        passed,
        evidence_sha256,
    })
}

/// Builds the payload of an approval: the RFC 8785 canonical bytes of an in-toto Statement
/// whose subject is `model_name` with `sha256` digest `version_hash_hex` (64 lowercase hex) and
/// whose predicate is `approval`. Sign it with [`crate::dsse::sign`] as
/// [`INTOTO_PAYLOAD_TYPE`]. Inputs that [`Statement::from_payload`] or
/// [`ApprovalPredicate::from_json`] would refuse are refused here, with the same paths.
pub fn approval_statement(
    model_name: &str,
    version_hash_hex: &str,
    approval: &ApprovalPredicate,
) -> Result<Vec<u8>, ValidationError> {
    let statement = Statement {
        subject: vec![Subject {
            name: model_name.to_owned(),
            digest: BTreeMap::from([("sha256".to_owned(), version_hash_hex.to_owned())]),
        }],
        predicate_type: APPROVAL_PREDICATE_TYPE.to_owned(),
        predicate: approval.to_json(),
    };
    let value = statement.to_json();
    let parsed = Statement::from_json(&value)?;
    ApprovalPredicate::from_statement(&parsed)?;
    jcs::canonicalize(&value).map_err(|e| ValidationError::one("", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsse;
    use crate::signing::SigningKey;

    const HASH: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

    fn approval() -> ApprovalPredicate {
        ApprovalPredicate {
            decision: Decision::Approve,
            target: "production".into(),
            criteria: vec![
                Criterion {
                    name: "auc>=0.9".into(),
                    passed: true,
                    evidence_sha256: Some(HASH.into()),
                },
                Criterion {
                    name: "manual-review".into(),
                    passed: true,
                    evidence_sha256: None,
                },
            ],
            policy: Some("release-policy-v3".into()),
            comment: Some("meets the bar".into()),
        }
    }

    fn fields(err: &ValidationError) -> Vec<&str> {
        err.errors.iter().map(|e| e.field.as_str()).collect()
    }

    fn good_predicate() -> Value {
        json!({
            "decision": "reject",
            "target": "staging",
            "criteria": [{"name": "bias", "passed": false, "evidence": {"sha256": HASH}}],
            "policy": "p",
            "comment": "c"
        })
    }

    #[test]
    fn approval_statement_round_trips_and_is_canonical() {
        let bytes = approval_statement("fraud-detector", HASH, &approval()).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.starts_with(r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"#),
            "{text}"
        );
        let statement = Statement::from_payload(&bytes).unwrap();
        assert_eq!(statement.subject[0].name, "fraud-detector");
        assert_eq!(statement.subject[0].digest["sha256"], HASH);
        assert_eq!(statement.predicate_type, APPROVAL_PREDICATE_TYPE);
        assert_eq!(
            ApprovalPredicate::from_statement(&statement).unwrap(),
            approval()
        );
        assert_eq!(jcs::canonicalize(&statement.to_json()).unwrap(), bytes);
    }

    #[test]
    fn a_signed_approval_reads_back_from_its_envelope() {
        let key = SigningKey::ed25519_from_seed(&[1u8; 32]);
        let payload = approval_statement("m", HASH, &approval()).unwrap();
        let env = dsse::sign(&key, INTOTO_PAYLOAD_TYPE, &payload, "");
        let env = dsse::DsseEnvelope::from_json(&env.to_json()).unwrap();
        env.verify_with(&key.public_key()).unwrap();
        let statement = Statement::from_envelope(&env).unwrap();
        assert_eq!(
            ApprovalPredicate::from_statement(&statement).unwrap(),
            approval()
        );

        let mut other = env.clone();
        other.payload_type = "text/plain".into();
        let err = Statement::from_envelope(&other).unwrap_err();
        assert_eq!(fields(&err), ["payloadType"]);
    }

    #[test]
    fn approval_statement_refuses_what_the_parser_would() {
        let err = approval_statement("", "ABC", &approval()).unwrap_err();
        assert_eq!(
            fields(&err),
            ["subject[0].name", "subject[0].digest.sha256"]
        );
        let mut bad = approval();
        bad.target = String::new();
        bad.criteria[0].evidence_sha256 = Some("xyz".into());
        let err = approval_statement("m", HASH, &bad).unwrap_err();
        assert_eq!(
            fields(&err),
            ["predicate.target", "predicate.criteria[0].evidence.sha256"]
        );
    }

    #[test]
    fn minimal_predicate_reads() {
        let p = ApprovalPredicate::from_json(&json!({
            "decision": "approve", "target": "prod", "criteria": [], "policy": null
        }))
        .unwrap();
        assert_eq!(p.decision, Decision::Approve);
        assert!(p.criteria.is_empty() && p.policy.is_none() && p.comment.is_none());
        let p = ApprovalPredicate::from_json(&good_predicate()).unwrap();
        assert_eq!(p.decision, Decision::Reject);
        assert!(!p.criteria[0].passed);
        assert_eq!(p.to_json(), good_predicate());
    }

    #[test]
    fn every_predicate_error_has_its_path() {
        let bad = json!({
            "decision": "maybe",
            "target": "prod\n",
            "criteria": [
                {"name": "ok", "passed": true},
                {"name": "", "passed": "yes", "evidence": {"sha256": HASH.to_uppercase(), "md5": "x"}},
                "x",
                {"passed": true, "evidence": "abc", "extra": 1},
                {"name": "n", "evidence": {}}
            ],
            "policy": 3,
            "comment": "a".repeat(MAX_COMMENT_BYTES + 1),
            "conditions": ["only on weekdays"]
        });
        let err = ApprovalPredicate::from_json(&bad).unwrap_err();
        let f = fields(&err);
        for want in [
            "predicate.conditions",
            "predicate.decision",
            "predicate.target",
            "predicate.criteria[1].name",
            "predicate.criteria[1].passed",
            "predicate.criteria[1].evidence.md5",
            "predicate.criteria[1].evidence.sha256",
            "predicate.criteria[2]",
            "predicate.criteria[3].extra",
            "predicate.criteria[3].name",
            "predicate.criteria[3].evidence",
            "predicate.criteria[4].passed",
            "predicate.criteria[4].evidence.sha256",
            "predicate.policy",
            "predicate.comment",
        ] {
            assert!(f.contains(&want), "missing {want} in {f:?}");
        }
        assert!(!f.contains(&"predicate.criteria[0]"), "{f:?}");
        let text = err.to_string();
        assert!(
            text.contains("predicate.target: must not contain control"),
            "{text}"
        );
        assert!(text.contains("predicate.comment: is 4097 bytes"), "{text}");
    }

    #[test]
    fn missing_predicate_fields_are_required() {
        let err = ApprovalPredicate::from_json(&json!({})).unwrap_err();
        assert_eq!(
            fields(&err),
            [
                "predicate.decision",
                "predicate.target",
                "predicate.criteria"
            ]
        );
        let err = ApprovalPredicate::from_json(&json!([])).unwrap_err();
        assert_eq!(fields(&err), ["predicate"]);
        let mut many = good_predicate();
        many["criteria"] = Value::Array(vec![json!({"name": "x", "passed": true}); 257]);
        let err = ApprovalPredicate::from_json(&many).unwrap_err();
        assert_eq!(fields(&err), ["predicate.criteria"]);
        let mut not_array = good_predicate();
        not_array["criteria"] = json!({});
        let err = ApprovalPredicate::from_json(&not_array).unwrap_err();
        assert_eq!(fields(&err), ["predicate.criteria"]);
    }

    #[test]
    fn from_statement_checks_the_predicate_type() {
        let statement = Statement {
            subject: vec![],
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            predicate: good_predicate(),
        };
        let err = ApprovalPredicate::from_statement(&statement).unwrap_err();
        assert_eq!(fields(&err), ["predicateType"]);
    }

    #[test]
    fn every_statement_error_has_its_path() {
        let bad = json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "subject": [
                {"name": "m", "digest": {"sha256": "ABC", "sha512": "00", "gitCommit": ""}},
                {"digest": "x"},
                {"name": 1, "digest": {"sha256": 5}},
                {"name": "m", "digest": {}},
                7
            ],
            "predicateType": "",
            "predicate": [1]
        });
        let err = Statement::from_json(&bad).unwrap_err();
        let f = fields(&err);
        for want in [
            "_type",
            "subject[0].digest.sha256",
            "subject[0].digest.sha512",
            "subject[0].digest.gitCommit",
            "subject[1].name",
            "subject[1].digest",
            "subject[2].name",
            "subject[2].digest.sha256",
            "subject[3].digest",
            "subject[4]",
            "predicateType",
            "predicate",
        ] {
            assert!(f.contains(&want), "missing {want} in {f:?}");
        }

        let err = Statement::from_json(&json!({})).unwrap_err();
        assert_eq!(fields(&err), ["_type", "subject", "predicateType"]);
        let err = Statement::from_json(&json!({"_type": 1, "subject": [], "predicateType": 2}))
            .unwrap_err();
        assert_eq!(fields(&err), ["_type", "subject", "predicateType"]);
        let err =
            Statement::from_json(&json!({"_type": STATEMENT_TYPE, "subject": {}})).unwrap_err();
        assert_eq!(fields(&err), ["subject", "predicateType"]);
        assert_eq!(
            fields(&Statement::from_json(&json!("s")).unwrap_err()),
            [""]
        );
    }

    #[test]
    fn statements_ignore_unknown_fields_but_not_bad_json() {
        let ok = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{"name": "m", "digest": {"sha256": HASH}, "uri": "s3://x"}],
            "predicateType": APPROVAL_PREDICATE_TYPE,
            "predicate": good_predicate(),
            "extension": true
        });
        let s = Statement::from_json(&ok).unwrap();
        assert_eq!(s.subject.len(), 1);

        let dup = format!(
            r#"{{"_type":"{STATEMENT_TYPE}","_type":"x","subject":[],"predicateType":"p"}}"#
        );
        let err = Statement::from_payload(dup.as_bytes()).unwrap_err();
        assert_eq!(fields(&err), [""]);
        assert!(err.to_string().contains("not JSON"), "{err}");
        assert!(Statement::from_payload(b"{").is_err());
    }
}
