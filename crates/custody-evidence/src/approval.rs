//! Approvals as they arrive: a DSSE envelope over an in-toto Statement (SPEC §7) in the entry's
//! payload. custody verifies the signature against the tenant's registered approver keys, ties
//! the statement's subject to the model version's hash, and derives the entry's body from what
//! was signed, so the public envelope states the decision even after the payload (which may
//! hold a personal comment) is erased.

use custody_core::dsse::DsseEnvelope;
use custody_core::envelope::{FieldError, SubjectRef, ValidationError};
use custody_core::intoto::{
    APPROVAL_PREDICATE_TYPE, ApprovalPredicate, Decision, INTOTO_PAYLOAD_TYPE, Statement,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::events::kinds;
use crate::state::GovernanceState;

fn under(prefix: &str, e: ValidationError) -> ValidationError {
    ValidationError {
        errors: e
            .errors
            .into_iter()
            .map(|f| FieldError {
                field: if f.field.is_empty() {
                    prefix.to_owned()
                } else {
                    format!("{prefix}.{}", f.field)
                },
                message: f.message,
            })
            .collect(),
    }
}

/// Verifies an approval's DSSE envelope (the entry's payload) and returns the body custody
/// records for it. Refuses: a body the client filled in (it is derived), an envelope or
/// statement that does not parse, a statement about other weights than the subject, and a
/// signature no registered, unrevoked approver key verifies.
pub fn derive_body(
    state: &GovernanceState,
    subject: &SubjectRef,
    body: &Map<String, Value>,
    payload: Option<&Value>,
) -> Result<Map<String, Value>, ValidationError> {
    if !body.is_empty() {
        return Err(ValidationError::one(
            "body",
            "send {} for an approval: custody derives the body from the signed statement",
        ));
    }
    if subject.kind != kinds::MODEL_VERSION {
        return Err(ValidationError::one(
            "subject.kind",
            "an approval is about a model_version: use subject.kind \"model_version\"",
        ));
    }
    let Some(payload) = payload else {
        return Err(ValidationError::one(
            "payload",
            "put the approval's DSSE envelope ({payloadType, payload, signatures}) in the payload; `custody approve` makes one",
        ));
    };
    let envelope = DsseEnvelope::from_json(payload).map_err(|e| under("payload", e))?;
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(ValidationError::one(
            "payload.payloadType",
            format!("must be {INTOTO_PAYLOAD_TYPE}"),
        ));
    }
    let statement =
        Statement::from_payload(&envelope.payload).map_err(|e| under("payload.payload", e))?;
    if statement.predicate_type != APPROVAL_PREDICATE_TYPE {
        return Err(ValidationError::one(
            "payload.payload.predicateType",
            format!("an approval's predicateType is {APPROVAL_PREDICATE_TYPE}"),
        ));
    }
    let [signed_subject] = statement.subject.as_slice() else {
        return Err(ValidationError::one(
            "payload.payload.subject",
            "an approval names exactly one model version",
        ));
    };
    let signed_digest = signed_subject
        .digest
        .get("sha256")
        .map(|h| format!("sha256:{h}"))
        .unwrap_or_default();
    if signed_digest != subject.id {
        return Err(ValidationError::one(
            "payload.payload.subject[0].digest.sha256",
            format!(
                "the signed statement approves {}, not the model version {} named in subject.id",
                if signed_digest.is_empty() {
                    "no sha256 digest"
                } else {
                    &signed_digest
                },
                subject.id
            ),
        ));
    }
    if state.model(&subject.id).is_none() {
        return Err(ValidationError::one(
            "subject.id",
            format!("{} is not a registered model version", subject.id),
        ));
    }
    let predicate = ApprovalPredicate::from_json(&statement.predicate)
        .map_err(|e| under("payload.payload", e))?;

    let mut signer = None;
    let hinted = envelope
        .signatures
        .iter()
        .map(|s| s.keyid.as_str())
        .collect::<Vec<_>>();
    let mut candidates: Vec<_> = state.approver_keys().collect();
    candidates.sort_by_key(|(fp, _, _)| !hinted.contains(fp));
    for (fp, approver, key) in candidates {
        if envelope.verify_with(key).is_ok() {
            signer = Some((fp.to_owned(), approver.to_owned()));
            break;
        }
    }
    let Some((fingerprint, approver)) = signer else {
        return Err(ValidationError::one(
            "payload.signatures",
            "no signature verifies with a registered, unrevoked approver key: register the key (approver_key.registered) or sign with a registered one",
        ));
    };

    let criteria: Vec<Value> = predicate
        .criteria
        .iter()
        .map(|c| {
            let mut o = json!({"name": c.name, "passed": c.passed});
            if let Some(e) = &c.evidence_sha256 {
                o["evidence"] = json!(format!("sha256:{e}"));
            }
            o
        })
        .collect();
    let mut out = Map::new();
    out.insert("model_name".into(), json!(signed_subject.name));
    out.insert("approver".into(), json!(approver));
    out.insert("key_fingerprint".into(), json!(fingerprint));
    out.insert(
        "decision".into(),
        json!(match predicate.decision {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }),
    );
    out.insert("target".into(), json!(predicate.target));
    out.insert("criteria".into(), Value::Array(criteria));
    if let Some(p) = &predicate.policy {
        out.insert("policy".into(), json!(p));
    }
    out.insert(
        "statement_digest".into(),
        json!(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(&envelope.payload))
        )),
    );
    Ok(out)
}
