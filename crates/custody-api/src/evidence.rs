//! Answers to audit questions (trace, served, history, admit) and evidence packs. Every answer
//! carries the entries it rests on, each with an RFC 9162 inclusion proof against one signed
//! checkpoint per log, so a caller can check it without trusting the server.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One entry an answer rests on, with its proof.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ProvenEntry {
    /// `governance` or `inference`.
    pub log: String,
    /// Index in that log.
    pub index: u64,
    /// Its role in the answer, e.g. `inference`, `deployment`, `model_version`, `approval`.
    pub role: String,
    /// The envelope; its RFC 8785 bytes are the leaf data.
    pub envelope: Value,
    /// `SHA-256(0x00 || jcs(envelope))`, lowercase hex.
    pub leaf_hash: String,
    /// Inclusion proof (standard base64, leaf's sibling first) in the tree of the answer's
    /// checkpoint for this log.
    pub proof: Vec<String>,
    /// Payload and salt, in evidence packs only, when present and not erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Standard base64 of the 32-byte salt that opens `payload_commitment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// The signed checkpoint every proof of one log in an answer is against.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LogCheckpoint {
    /// `governance` or `inference`.
    pub log: String,
    /// Tree size.
    pub size: u64,
    /// The C2SP signed note, byte-exact.
    pub checkpoint: String,
    /// The log's verifier key (pin your own copy; this one is for convenience).
    pub verifier_key: String,
}

/// A link the answer followed between two of its entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct EvidenceLink {
    /// Entry id the link starts at.
    pub from: String,
    /// Entry id it points to.
    pub to: String,
    /// Relation, e.g. `served_by`, `computed_by`, `produced_by`, `trained_on`, `about`.
    pub rel: String,
}

/// One thing a gate found missing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct GateGap {
    /// Machine-readable reason, e.g. `approvals`, `criterion`, `rejected`,
    /// `separation_of_duties`, `retired`, `not_serving`.
    pub code: String,
    /// What is missing.
    pub detail: String,
    /// Ids of the entries the reason is about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<String>,
}

/// The rule a gate applied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct GateRuleView {
    /// Distinct approvers required.
    pub min_approvals: u32,
    /// Criteria that must have passed.
    pub required_criteria: Vec<String>,
    /// Whether the trainer may not approve.
    pub separation_of_duties: bool,
}

/// Entries with proofs, shared by every answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Proven {
    /// The entries.
    pub entries: Vec<ProvenEntry>,
    /// One checkpoint per log the entries come from.
    pub checkpoints: Vec<LogCheckpoint>,
}

/// `GET /v1/tenants/{tenant}/trace`: the chain behind (or ahead of) one entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TraceAnswer {
    /// Entry id the trace started at.
    pub start: String,
    /// `backward` (what it rests on) or `forward` (what rests on it).
    pub direction: String,
    /// Links followed.
    pub links: Vec<EvidenceLink>,
    /// True when the walk stopped at its limit before finding everything.
    pub truncated: bool,
    /// Entries and checkpoints.
    #[serde(flatten)]
    pub proven: Proven,
}

/// `GET /v1/tenants/{tenant}/served`: what served in an environment at a time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ServedAnswer {
    /// Environment.
    pub environment: String,
    /// The time asked about (RFC 3339).
    pub at: String,
    /// Version hash serving then; absent when nothing was admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_hash: Option<String>,
    /// Model name of that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Id of the promotion, rollback or retirement in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// Entries (the change, the model version, its deployments in the environment).
    #[serde(flatten)]
    pub proven: Proven,
}

/// One change of what serves where.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ServingChangeView {
    /// Environment.
    pub environment: String,
    /// `promotion`, `rollback` or `retirement`.
    pub kind: String,
    /// Version before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Version after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// When custody recorded it (RFC 3339).
    pub time: String,
    /// Its entry id.
    pub entry: String,
}

/// `GET /v1/tenants/{tenant}/models/{version_hash}/history`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct HistoryAnswer {
    /// The model version.
    pub version_hash: String,
    /// Its model name.
    pub model_name: String,
    /// Promotions, rollbacks and retirements involving it, oldest first.
    pub changes: Vec<ServingChangeView>,
    /// Environments where it serves now.
    pub serving_in: Vec<String>,
    /// Whether it is retired.
    pub retired: bool,
    /// Every governance entry about it, with proofs.
    #[serde(flatten)]
    pub proven: Proven,
}

/// `GET /v1/tenants/{tenant}/admit`: may these weights serve in this environment now?
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AdmitAnswer {
    /// The weights asked about.
    pub version_hash: String,
    /// The environment.
    pub environment: String,
    /// True when they may serve.
    pub admitted: bool,
    /// The rule in force.
    pub rule: GateRuleView,
    /// Distinct approvers whose approvals count.
    pub approvers: Vec<String>,
    /// Why not, when not admitted.
    pub missing: Vec<GateGap>,
    /// The entries the answer rests on: model version, counted approvals, the serving change,
    /// the policy.
    #[serde(flatten)]
    pub proven: Proven,
}

/// A serving mismatch custody recorded while ingesting inferences.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SecurityNotice {
    /// The request id of the inference.
    pub request_id: String,
    /// What the inference claims served it.
    pub claimed: String,
    /// What the ledger says served in that environment then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Index of the `security.serving_mismatch` entry in the governance log.
    pub security_index: u64,
    /// Its entry id.
    pub security_id: String,
}

/// An evidence pack: self-contained, verifiable offline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EvidencePack {
    /// Pack format version (1).
    pub format: u32,
    /// Tenant.
    pub tenant: String,
    /// What the pack is about, e.g. `model sha256:...`.
    pub scope: String,
    /// Links between the entries.
    pub links: Vec<EvidenceLink>,
    /// Approver public keys (SPKI PEM) by fingerprint, for checking approval envelopes.
    pub approver_keys: Vec<ApproverKeyView>,
    /// True when the pack hit its size limit.
    pub truncated: bool,
    /// Entries (with payloads where present) and checkpoints.
    #[serde(flatten)]
    pub proven: Proven,
}

/// A registered approver key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ApproverKeyView {
    /// Approver principal id.
    pub approver: String,
    /// `sha256:` of the SPKI DER.
    pub fingerprint: String,
    /// SPKI PEM.
    pub public_key: String,
    /// Entry id of its registration.
    pub entry: String,
}
