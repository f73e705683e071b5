//! The JSON that custody's HTTP API speaks, shared by the server and the client so the two
//! cannot drift. Every type documents itself into the OpenAPI document served at
//! `GET /v1/openapi.json`.
//!
//! Hash encodings follow SPEC §5: leaf hashes in append results and entries are lowercase hex;
//! proof hashes are standard base64, as RFC 9162 tooling expects.

pub mod evidence;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Media type of RFC 9457 error responses.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// Media type of newline-delimited JSON bulk appends.
pub const NDJSON: &str = "application/x-ndjson";
/// Media type of checkpoints, tlog-proofs and verifier keys.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// An RFC 9457 problem: every error custody returns.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Problem {
    /// URI naming the kind of problem, e.g. `https://custody.dev/problems/validation`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this request and how to fix it.
    pub detail: String,
    /// For validation problems: each invalid field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
    /// For gate refusals: exactly what the promotion, rollback or deployment lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<evidence::GateGap>,
    /// For gate refusals: where custody recorded the refusal in the governance log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RecordedRefusal>,
}

/// The ledger entry that records a refused write.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RecordedRefusal {
    /// Index in the governance log.
    pub index: u64,
    /// Entry id.
    pub id: String,
    /// Leaf hash, lowercase hex.
    pub leaf_hash: String,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ProblemField {
    /// Path of the field, e.g. `actor.kind` or `[3].body.rows`.
    pub field: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

/// Body of `POST /v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateTenant {
    /// Tenant name: `[a-z0-9][a-z0-9-]{0,62}`.
    pub name: String,
}

/// A tenant and its logs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// Tenant name.
    pub name: String,
    /// Its logs.
    pub logs: Vec<LogDescription>,
}

/// A log: where it is, what key signs it, how big it is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LogDescription {
    /// `governance`, `inference` or `access`.
    pub name: String,
    /// `<server-name>/<tenant>/<log>`: first line of its checkpoints.
    pub origin: String,
    /// Entries covered by the latest checkpoint.
    pub size: u64,
    /// Root hash of the latest checkpoint, standard base64.
    pub root: String,
    /// The C2SP verifier key to pin: `<origin>+<key id>+<base64 key>`.
    pub verifier_key: String,
}

/// Listing of a tenant's logs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogList {
    /// The logs.
    pub logs: Vec<LogDescription>,
}

/// Listing of tenants.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantList {
    /// Tenant names.
    pub tenants: Vec<String>,
}

/// An entry as submitted. The server adds `v`, `tenant`, `log`, `time`, a missing `id` and the
/// payload commitment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntrySubmission {
    /// UUIDv7 for idempotent retries; assigned by the server when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Dotted type: a custody type such as `model_version.registered` or `x.<your>.<type>`.
    #[serde(rename = "type")]
    pub entry_type: String,
    /// RFC 3339 time reported by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_time: Option<String>,
    /// `{kind: user|service|system, id}`: the caller, the only actor accepted; custody fills it
    /// in when it is absent.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Option<Object>)]
    pub actor: Value,
    /// `{kind, id}` of what the entry is about.
    #[schema(value_type = Object)]
    pub subject: Value,
    /// `[{kind, id, rel}]` links to other evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub related: Option<Value>,
    /// `{purpose, auth_method, request_id, session_id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
    /// Type-specific, non-personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    /// Personal or sensitive data: stored beside the leaf, committed to with a fresh salt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
}

/// Where one submitted entry landed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AppendResult {
    /// Index in the log.
    pub index: u64,
    /// Leaf hash, lowercase hex.
    pub leaf_hash: String,
    /// Entry id.
    pub id: String,
    /// Size of the signed checkpoint that already covers this entry: its inclusion proof is
    /// available at once.
    pub checkpoint_size: u64,
    /// True when this id was already logged with the same content (an idempotent retry).
    #[serde(default)]
    pub existing: bool,
    /// For an inference whose weights were not the ones serving in its environment at its
    /// request time: the security event custody recorded about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<evidence::SecurityNotice>,
}

/// Result of appending a JSON array or an NDJSON stream.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppendResults {
    /// One result per submitted entry, in order.
    pub results: Vec<AppendResult>,
    /// Size of the signed checkpoint that covers them all.
    pub checkpoint_size: u64,
}

/// Payload state of an entry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PayloadStatus {
    /// The entry has no payload.
    None,
    /// The payload and salt are returned.
    Present,
    /// The payload was committed to but is no longer stored.
    Erased,
    /// The payload is stored but was not returned: payload reads need a purpose
    /// (`Custody-Purpose` header or `purpose` parameter).
    Withheld,
}

/// One entry as read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryRecord {
    /// Index in the log.
    pub index: u64,
    /// Leaf hash, lowercase hex: `SHA-256(0x00 || JCS(envelope))`.
    pub leaf_hash: String,
    /// The envelope.
    #[schema(value_type = Object)]
    pub envelope: Value,
    /// Whether a payload exists.
    pub payload_status: PayloadStatus,
    /// The payload, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// The payload's salt, lowercase hex, so anyone can re-check the commitment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// A page of entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryList {
    /// Matching entries in index order.
    pub entries: Vec<EntryRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The checkpoint size this listing is consistent with.
    pub checkpoint_size: u64,
}

/// RFC 9162 inclusion proof.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct InclusionProof {
    /// Leaf index.
    pub index: u64,
    /// Tree size.
    pub size: u64,
    /// Leaf hash, lowercase hex.
    pub leaf_hash: String,
    /// Audit path, standard base64, the leaf's sibling first.
    pub hashes: Vec<String>,
}

/// RFC 9162 consistency proof.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Older tree size.
    pub from: u64,
    /// Newer tree size.
    pub to: u64,
    /// Proof hashes, standard base64.
    pub hashes: Vec<String>,
}

/// Liveness answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when served.
    pub status: String,
}

/// One line of `GET .../export` (NDJSON): an entry's leaf exactly as stored, so a verifier
/// re-hashes the stored bytes rather than a re-serialisation of them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ExportedLeaf {
    /// Index in the log.
    pub index: u64,
    /// The leaf hash recorded when the entry was written, lowercase hex. Authenticated only
    /// if all recorded hashes together give a signed root; used to point at a bad entry.
    pub recorded_leaf_hash: String,
    /// The leaf data (the canonical envelope bytes), standard base64.
    pub leaf_data: String,
}

/// Body of `POST /v1/tenants/{tenant}/principals`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipal {
    /// `user` or `service`.
    pub kind: String,
    /// Display name. Personal data: kept in the principal table, never in a log.
    pub name: String,
    /// Any of `admin`, `writer`, `approver`, `auditor`.
    pub roles: Vec<String>,
    /// Lifetime of the first token, 1-3650 days (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// Body of `POST .../principals/{principal}/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    /// Lifetime, 1-3650 days (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// A principal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PrincipalInfo {
    /// Opaque id: the `actor.id` of everything it writes.
    pub id: String,
    /// Its tenant; absent for a server administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `user` or `service`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Creation time, RFC 3339.
    pub created: String,
}

/// A token, never with its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// Whose token.
    pub principal: String,
    /// Issue time, RFC 3339.
    pub created: String,
    /// Expiry, RFC 3339.
    pub expires: String,
    /// Revocation time, RFC 3339, if revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// A newly issued token: the only response that carries its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct IssuedToken {
    /// The bearer token, `cst_<id>_<secret>`: shown once, store it now.
    pub token: String,
    /// The token as it will be listed.
    pub info: TokenInfo,
}

/// Answer to creating a principal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CreatedPrincipal {
    /// The principal.
    pub principal: PrincipalInfo,
    /// Its first token.
    pub token: IssuedToken,
}

/// A tenant's principals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PrincipalList {
    /// By id.
    pub principals: Vec<PrincipalInfo>,
}

/// A principal's tokens.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenInfo>,
}

/// Who the presented token belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct WhoAmI {
    /// Principal id.
    pub principal: String,
    /// `user` or `service`.
    pub kind: String,
    /// Its tenant; absent for a server administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// The token's public id.
    pub token: String,
}

/// Body of `POST /v1/tenants/{tenant}/erasures`: a data-subject request. Its `Debug` never
/// shows the data subject.
#[derive(Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// The data subject's identifier as payloads hold it (an e-mail, a customer number):
    /// every payload with this exact string value anywhere in it is erased. It is matched,
    /// never recorded.
    pub data_subject: String,
    /// Why the erasure is lawful, recorded with each erasure, e.g. `GDPR Art. 17(1)(a)`.
    pub legal_basis: String,
    /// The request's reference (a ticket number), recorded with each erasure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// List what would be erased without erasing it.
    #[serde(default)]
    pub dry_run: bool,
}

/// Body of `POST /v1/tenants/{tenant}/retention/apply`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionApply {
    /// Why the erasure is lawful, e.g. `GDPR Art. 5(1)(e) storage limitation`.
    pub legal_basis: String,
    /// List what would be erased without erasing it.
    #[serde(default)]
    pub dry_run: bool,
}

/// One erased payload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ErasedEntry {
    /// Log of the erased entry.
    pub log: String,
    /// Its index.
    pub index: u64,
    /// Its id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub entry_type: String,
    /// Index of its `entry.payload_erased` record in the same log (absent in a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_index: Option<u64>,
}

/// What an erasure did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ErasureReport {
    /// Whether this was only a listing.
    pub dry_run: bool,
    /// The payloads erased (or that would be).
    pub erased: Vec<ErasedEntry>,
}

/// Deep verification of one log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LogAuditReport {
    /// `governance`, `inference` or `access`.
    pub log: String,
    /// Entries whose leaf hash was recomputed from the stored envelope.
    pub entries: u64,
    /// Stored subtree hashes recomputed from the leaves.
    pub nodes: u64,
    /// Stored checkpoints checked (signature, and root equal to the tree at their size).
    pub checkpoints: u64,
    /// Payload commitments reopened.
    pub payloads: u64,
    /// Discrepancies found.
    pub problem_count: u64,
    /// The first 100 discrepancies, described.
    pub problems: Vec<String>,
}

/// Answer of `POST /v1/tenants/{tenant}/reconcile`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReconcileReport {
    /// True when every log verified without a discrepancy.
    pub ok: bool,
    /// One report per log.
    pub logs: Vec<LogAuditReport>,
}

/// Answer of `POST .../witness`: proof that the log still extends the checkpoint the caller
/// holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct WitnessAnswer {
    /// Size of the caller's checkpoint.
    pub old_size: u64,
    /// Size of the log's latest checkpoint.
    pub new_size: u64,
    /// RFC 9162 consistency proof from `old_size` to `new_size` (standard base64).
    pub consistency: Vec<String>,
    /// The latest signed checkpoint, byte-exact C2SP.
    pub checkpoint: String,
}

impl std::fmt::Debug for EraseRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EraseRequest")
            .field("data_subject", &"<redacted>")
            .field("legal_basis", &self.legal_basis)
            .field("reference", &self.reference)
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

/// Answer of `POST .../rotate-key`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct KeyRotation {
    /// The log.
    pub log: String,
    /// Index of the `key.rotated` entry announcing the change, signed with the old key.
    pub index: u64,
    /// The verifier key until then.
    pub old_verifier_key: String,
    /// The verifier key from the next checkpoint on: pin this one.
    pub new_verifier_key: String,
}
