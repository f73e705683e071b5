//! The typed evidence events: what each custody entry type must carry, checked field by field
//! on ingest, and the typed value the governance state is built from.
//!
//! Links between pieces of evidence live in one place, the envelope's `related` list, keyed by
//! each object's natural id: a dataset version's digest, a training run's id, a model
//! version's hash, a deployment's id. Bodies carry only facts about the entry itself, so every
//! link can be walked backwards (follow `related`) and forwards (find entries whose `related`
//! names an id) with the same index.

use custody_core::envelope::{Actor, LogName, Related, SubjectRef, Timestamp, ValidationError};
use serde_json::{Map, Value};

use crate::fields::{Errors, Obj, is_sha256_digest, is_token};
use crate::policy::Policy;

/// The entry types custody gives meaning to.
pub mod types {
    /// A dataset version was registered.
    pub const DATASET_VERSION: &str = "dataset_version.registered";
    /// A training run finished (successfully or not).
    pub const TRAINING_RUN: &str = "training_run.recorded";
    /// A model version (weights identified by their version hash) was registered.
    pub const MODEL_VERSION: &str = "model_version.registered";
    /// A new version of a model version's card.
    pub const MODEL_CARD: &str = "model_card.published";
    /// An approver's public key was registered.
    pub const APPROVER_KEY_REGISTERED: &str = "approver_key.registered";
    /// An approver's key may no longer sign approvals.
    pub const APPROVER_KEY_REVOKED: &str = "approver_key.revoked";
    /// A signed approval (or rejection) of a model version for a target.
    pub const APPROVAL: &str = "approval.submitted";
    /// The tenant's gate policy changed.
    pub const POLICY: &str = "policy.updated";
    /// The tenant's retention policy changed.
    pub const RETENTION: &str = "retention.updated";
    /// A payload was erased (retention or a data-subject request); written by custody.
    pub const PAYLOAD_ERASED: &str = "entry.payload_erased";
    /// A model version became the one approved to serve in an environment.
    pub const PROMOTION: &str = "promotion.recorded";
    /// A promotion the gate refused; written by custody.
    pub const PROMOTION_REFUSED: &str = "promotion.refused";
    /// An environment went back to a version that served there before.
    pub const ROLLBACK: &str = "rollback.recorded";
    /// A rollback custody refused; written by custody.
    pub const ROLLBACK_REFUSED: &str = "rollback.refused";
    /// Weights were rolled out to an endpoint.
    pub const DEPLOYMENT: &str = "deployment.recorded";
    /// A deployment of weights not admitted in its environment; written by custody.
    pub const DEPLOYMENT_REFUSED: &str = "deployment.refused";
    /// A model version may never serve again.
    pub const RETIREMENT: &str = "retirement.recorded";
    /// An incident was opened.
    pub const INCIDENT_OPENED: &str = "incident.opened";
    /// An incident changed.
    pub const INCIDENT_UPDATED: &str = "incident.updated";
    /// An incident was closed.
    pub const INCIDENT_CLOSED: &str = "incident.closed";
    /// One served prediction.
    pub const INFERENCE: &str = "inference.recorded";
    /// An inference claimed weights that were not serving in its environment; written by custody.
    pub const SERVING_MISMATCH: &str = "security.serving_mismatch";
}

/// Subject and link kinds, i.e. the kinds of objects evidence points at.
pub mod kinds {
    /// A dataset version, by digest.
    pub const DATASET_VERSION: &str = "dataset_version";
    /// A training run, by run id.
    pub const TRAINING_RUN: &str = "training_run";
    /// A model version, by version hash.
    pub const MODEL_VERSION: &str = "model_version";
    /// An approver, by principal id.
    pub const APPROVER: &str = "approver";
    /// The tenant's gate policy.
    pub const POLICY: &str = "policy";
    /// A deployment, by deployment id.
    pub const DEPLOYMENT: &str = "deployment";
    /// An incident, by incident id.
    pub const INCIDENT: &str = "incident";
    /// An inference, by request id.
    pub const INFERENCE: &str = "inference";
    /// An entry, by entry id.
    pub const ENTRY: &str = "entry";
}

/// The relation names custody writes and requires.
pub mod rels {
    /// training run -> dataset version it read.
    pub const TRAINED_ON: &str = "trained_on";
    /// model version -> training run that produced it.
    pub const PRODUCED_BY: &str = "produced_by";
    /// inference -> deployment that served it.
    pub const SERVED_BY: &str = "served_by";
    /// inference -> model version whose weights computed it (added by custody).
    pub const COMPUTED_BY: &str = "computed_by";
}

/// The only subject id of the tenant's gate policy.
pub const POLICY_SUBJECT_ID: &str = "gates";

/// Types only custody itself writes; clients may not forge them.
pub const SERVER_ONLY_TYPES: &[&str] = &[
    types::PROMOTION_REFUSED,
    types::ROLLBACK_REFUSED,
    types::DEPLOYMENT_REFUSED,
];

/// Namespaces only custody writes.
pub const SERVER_ONLY_NAMESPACES: &[&str] =
    &["security", "entry", "access", "principal", "token", "key"];

/// Namespaces whose every type custody defines, so an unknown verb there is an error.
const TYPED_NAMESPACES: &[&str] = &[
    "dataset_version",
    "training_run",
    "model_version",
    "model_card",
    "approver_key",
    "approval",
    "retention",
    "policy",
    "promotion",
    "rollback",
    "deployment",
    "retirement",
    "incident",
    "inference",
];

/// The entry fields a typed event is read from: the same for a client's input on ingest and for
/// a sealed envelope when state is rebuilt from the log.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    /// Dotted type.
    pub entry_type: &'a str,
    /// Who acted.
    pub actor: &'a Actor,
    /// What it is about.
    pub subject: &'a SubjectRef,
    /// Links.
    pub related: &'a [Related],
    /// Client time, as sent.
    pub client_time: Option<&'a str>,
    /// Type-specific body.
    pub body: &'a Map<String, Value>,
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// POSIX path relative to the root (`.` for a single-file artifact).
    pub path: String,
    /// `sha256:` digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// A registered dataset version.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetVersion {
    /// Content digest (also the subject id).
    pub digest: String,
    /// Dataset name.
    pub name: String,
    /// The dataset's own version label.
    pub version: String,
    /// Where it lives.
    pub uri: String,
    /// The lawful basis or consent reference it was collected under.
    pub legal_basis: String,
}

/// A finished training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRun {
    /// Run id (subject id).
    pub run_id: String,
    /// Digests of the dataset versions it read.
    pub datasets: Vec<String>,
    /// `succeeded` or `failed`.
    pub status: String,
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    /// Version hash (subject id).
    pub version_hash: String,
    /// Model name.
    pub name: String,
    /// The training run that produced it.
    pub run_id: String,
    /// Per-file manifest whose root is the version hash.
    pub files: Vec<ManifestFile>,
}

/// A model card version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    /// The model version it describes.
    pub version_hash: String,
    /// 1 for the first card, then +1 each time.
    pub card_version: u64,
    /// Dataset versions the card cites (training data and evaluations).
    pub datasets: Vec<String>,
}

/// A registered approver key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApproverKey {
    /// Approver principal id (subject id).
    pub approver: String,
    /// SPKI PEM text.
    pub public_key_pem: String,
}

/// An approval or rejection, as recorded after its signature was verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// Model version (subject id).
    pub version_hash: String,
    /// Approver whose registered key signed it.
    pub approver: String,
    /// Fingerprint of that key.
    pub key_fingerprint: String,
    /// True for `approve`, false for `reject`.
    pub approve: bool,
    /// Stage or environment.
    pub target: String,
    /// Criteria with their outcome.
    pub criteria: Vec<(String, bool)>,
    /// `sha256:` of the signed statement bytes.
    pub statement_digest: String,
}

/// A promotion or rollback: a forward transition of what serves in an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The version serving before (None when nothing served).
    pub from: Option<String>,
    /// The version serving after (the subject id).
    pub to: String,
    /// Target environment.
    pub environment: String,
    /// Principal who authorised it.
    pub authoriser: String,
}

/// A deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// Deployment id (subject id).
    pub deployment_id: String,
    /// Environment.
    pub environment: String,
    /// Endpoint served.
    pub endpoint: String,
    /// `sha256:` of the serving configuration.
    pub config_digest: String,
    /// Version hash rolled out.
    pub version_hash: String,
}

/// An incident state change.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Incident id (subject id).
    pub incident_id: String,
    /// `opened`, `updated` or `closed`.
    pub status: String,
    /// Severity.
    pub severity: Option<String>,
}

/// One served prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// Request id (subject id).
    pub request_id: String,
    /// Version hash stamped by the serving code at request time.
    pub version_hash: String,
    /// The deployment that served it.
    pub deployment_id: String,
    /// Request time (the entry's `client_time`), in microseconds.
    pub requested_micros: i64,
}

/// A typed event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `dataset_version.registered`
    DatasetVersion(DatasetVersion),
    /// `training_run.recorded`
    TrainingRun(TrainingRun),
    /// `model_version.registered`
    ModelVersion(ModelVersion),
    /// `model_card.published`
    ModelCard(ModelCard),
    /// `approver_key.registered`
    ApproverKeyRegistered(ApproverKey),
    /// `approver_key.revoked`
    ApproverKeyRevoked {
        /// Approver.
        approver: String,
        /// The revoked key's fingerprint.
        key_fingerprint: String,
    },
    /// `approval.submitted`
    Approval(Approval),
    /// `policy.updated`
    Policy(Policy),
    /// `retention.updated`
    Retention(crate::retention::Retention),
    /// `promotion.recorded`
    Promotion(Transition),
    /// `rollback.recorded`
    Rollback(Transition),
    /// `deployment.recorded`
    Deployment(Deployment),
    /// `retirement.recorded`
    Retirement {
        /// Retired version.
        version_hash: String,
    },
    /// `incident.*`
    Incident(Incident),
    /// `inference.recorded`
    Inference(Inference),
    /// Written by custody: refusals and security events. Carried for completeness; they do
    /// not change the state.
    Recorded,
}

/// Which log a type belongs in, or None for types any log may hold (user types).
pub fn home_log(entry_type: &str) -> Option<LogName> {
    let ns = entry_type.split('.').next().unwrap_or_default();
    match ns {
        "inference" => Some(LogName::Inference),
        "access" => Some(LogName::Access),
        "x" => None,
        _ => Some(LogName::Governance),
    }
}

/// Refuses types a client may not write: custody's own records, and unknown verbs in
/// namespaces custody defines.
pub fn check_client_type(entry_type: &str) -> Result<(), ValidationError> {
    let ns = entry_type.split('.').next().unwrap_or_default();
    if SERVER_ONLY_TYPES.contains(&entry_type) || SERVER_ONLY_NAMESPACES.contains(&ns) {
        return Err(ValidationError::one(
            "type",
            format!("{entry_type} is written only by custody itself"),
        ));
    }
    if TYPED_NAMESPACES.contains(&ns) && !KNOWN.iter().any(|(t, _)| *t == entry_type) {
        let known: Vec<&str> = KNOWN
            .iter()
            .filter(|(t, _)| t.starts_with(ns) && t.as_bytes().get(ns.len()) == Some(&b'.'))
            .map(|(t, _)| *t)
            .collect();
        return Err(ValidationError::one(
            "type",
            format!(
                "unknown {ns} type {entry_type:?}; use one of: {}",
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

type Reader = fn(&EventFields<'_>, &mut Errors) -> Option<Event>;

const KNOWN: &[(&str, Reader)] = &[
    (types::DATASET_VERSION, read_dataset_version),
    (types::TRAINING_RUN, read_training_run),
    (types::MODEL_VERSION, read_model_version),
    (types::MODEL_CARD, read_model_card),
    (types::APPROVER_KEY_REGISTERED, read_approver_key),
    (types::APPROVER_KEY_REVOKED, read_key_revocation),
    (types::APPROVAL, read_approval),
    (types::POLICY, read_policy),
    (types::RETENTION, read_retention),
    (types::PROMOTION, read_promotion),
    (types::ROLLBACK, read_rollback),
    (types::DEPLOYMENT, read_deployment),
    (types::RETIREMENT, read_retirement),
    (types::INCIDENT_OPENED, read_incident),
    (types::INCIDENT_UPDATED, read_incident),
    (types::INCIDENT_CLOSED, read_incident),
    (types::INFERENCE, read_inference),
    (types::PROMOTION_REFUSED, read_recorded),
    (types::ROLLBACK_REFUSED, read_recorded),
    (types::DEPLOYMENT_REFUSED, read_recorded),
    (types::SERVING_MISMATCH, read_recorded),
];

impl Event {
    /// Reads the typed event an entry carries; `Ok(None)` for types custody gives no meaning
    /// to (`x.` types and generic namespaces). Every problem is reported with its field path.
    pub fn read(fields: &EventFields<'_>) -> Result<Option<Event>, ValidationError> {
        let Some((_, reader)) = KNOWN.iter().find(|(t, _)| *t == fields.entry_type) else {
            return Ok(None);
        };
        let mut errors = Errors::default();
        let event = reader(fields, &mut errors);
        match event {
            Some(e) if errors.is_empty() => Ok(Some(e)),
            _ => {
                if errors.is_empty() {
                    errors.push("body", "is not valid for this type");
                }
                errors.finish(None)
            }
        }
    }
}

fn subject(fields: &EventFields<'_>, kind: &str, errors: &mut Errors) -> Option<String> {
    if fields.subject.kind != kind {
        errors.push(
            "subject.kind",
            format!(
                "a {} entry is about a {kind}: use subject.kind {kind:?}",
                fields.entry_type
            ),
        );
        return None;
    }
    Some(fields.subject.id.clone())
}

fn subject_digest(fields: &EventFields<'_>, kind: &str, errors: &mut Errors) -> Option<String> {
    let id = subject(fields, kind, errors)?;
    if is_sha256_digest(&id) {
        Some(id)
    } else {
        errors.push(
            "subject.id",
            format!("a {kind} is identified by its sha256: digest (64 lowercase hex digits)"),
        );
        None
    }
}

/// Links of one kind and relation, with their paths.
fn links<'a>(fields: &EventFields<'a>, kind: &str, rel: &str) -> Vec<(String, &'a str)> {
    fields
        .related
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == kind && r.rel == rel)
        .map(|(i, r)| (format!("related[{i}].id"), r.id.as_str()))
        .collect()
}

fn body<'a>(fields: &EventFields<'a>) -> Obj<'a> {
    Obj::new(fields.body, "body")
}

/// A body field that repeats the subject id must agree with it.
fn same_as_subject(
    obj: &Obj<'_>,
    key: &str,
    value: &Option<String>,
    subject: &Option<String>,
    errors: &mut Errors,
) {
    if let (Some(v), Some(s)) = (value, subject)
        && v != s
    {
        errors.push(obj.at(key), format!("must equal subject.id ({s})"));
    }
}

fn manifest(obj: &Obj<'_>, key: &str, required: bool, errors: &mut Errors) -> Vec<ManifestFile> {
    let mut files: Vec<ManifestFile> = Vec::new();
    for f in obj.objects(key, required, errors) {
        f.only(&["path", "digest", "size"], errors);
        let path = f.string("path", true, 4096, true, errors);
        if let Some(p) = &path
            && !valid_manifest_path(p)
        {
            errors.push(
                f.at("path"),
                "use a relative POSIX path without '.', '..' or empty segments (or \".\" for a single file)",
            );
        }
        let digest = f.digest("digest", true, errors);
        let size = f.u64("size", true, errors);
        if let (Some(path), Some(digest), Some(size)) = (path, digest, size) {
            files.push(ManifestFile { path, digest, size });
        }
    }
    if required && files.is_empty() && errors.is_empty() {
        errors.push(obj.at(key), "must list at least one file");
    }
    files
}

fn valid_manifest_path(p: &str) -> bool {
    p == "."
        || (!p.starts_with('/') && p.split('/').all(|s| !s.is_empty() && s != "." && s != ".."))
}

/// The root digest of a manifest: SHA-256 over the files' raw digests in the order
/// OpenSSF model-signing v1.0 sorts them (by path components), SPEC §6. Errors name what is
/// wrong with the manifest (duplicate or invalid paths).
pub fn manifest_root(files: &[ManifestFile]) -> Result<String, String> {
    let digests = files
        .iter()
        .map(|f| {
            let mut sha256 = [0u8; 32];
            hex::decode_to_slice(&f.digest["sha256:".len()..], &mut sha256)
                .map_err(|e| format!("{}: {e}", f.path))?;
            Ok(custody_model::hash::FileDigest {
                path: f.path.clone(),
                sha256,
                size: f.size,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    custody_model::hash::ModelDigest::from_files(digests)
        .map(|d| d.version_hash())
        .map_err(|e| e.to_string())
}

/// Checks a manifest's root against the digest it claims.
fn check_root(files: &[ManifestFile], claimed: &Option<String>, what: &str, errors: &mut Errors) {
    if files.is_empty() {
        return;
    }
    match (manifest_root(files), claimed) {
        (Err(e), _) => errors.push("body.files", e),
        (Ok(root), Some(c)) if &root != c => errors.push(
            "body.files",
            format!("the files' root digest is {root}, not {what} {c}; compute both with `custody model hash`"),
        ),
        _ => {}
    }
}

fn read_dataset_version(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let id = subject_digest(fields, kinds::DATASET_VERSION, errors);
    let b = body(fields);
    b.only(
        &[
            "name",
            "version",
            "uri",
            "digest",
            "files",
            "schema",
            "row_count",
            "source",
            "legal_basis",
            "description",
        ],
        errors,
    );
    let name = b.text("name", 256, errors);
    let version = b.token("version", errors);
    let uri = b.token("uri", errors);
    let digest = b.digest("digest", true, errors);
    same_as_subject(&b, "digest", &digest, &id, errors);
    if b.has("files") {
        let files = manifest(&b, "files", true, errors);
        check_root(&files, &digest, "body.digest", errors);
    }
    if let Some(schema) = b.object("schema", false, errors) {
        schema.only(&["format", "digest", "fields"], errors);
        schema.opt_token("format", errors);
        schema.digest("digest", false, errors);
        for f in schema.objects("fields", false, errors) {
            f.only(&["name", "type", "nullable"], errors);
            f.text("name", 256, errors);
            f.token("type", errors);
            f.boolean("nullable", false, errors);
        }
    }
    b.u64("row_count", false, errors);
    b.opt_text("source", 512, errors);
    b.opt_text("description", 2048, errors);
    let legal_basis = b.text("legal_basis", 256, errors);
    Some(Event::DatasetVersion(DatasetVersion {
        digest: digest?,
        name: name?,
        version: version?,
        uri: uri?,
        legal_basis: legal_basis?,
    }))
}

fn read_training_run(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let run_id = subject(fields, kinds::TRAINING_RUN, errors);
    let b = body(fields);
    b.only(
        &[
            "code_commit",
            "code_repo",
            "parameters",
            "metrics",
            "environment",
            "status",
            "started_at",
            "ended_at",
        ],
        errors,
    );
    match b.raw("code_commit") {
        Some(Value::String(s))
            if (7..=64).contains(&s.len())
                && s.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) => {}
        _ => errors.push(
            "body.code_commit",
            "use the commit's lowercase hex id (7-64 digits)",
        ),
    }
    b.opt_token("code_repo", errors);
    b.object("parameters", false, errors);
    b.flat_map("metrics", true, errors);
    if let Some(env) = b.object("environment", true, errors) {
        env.only(
            &[
                "lockfile_digest",
                "image_digest",
                "hardware",
                "libraries",
                "python",
                "os",
            ],
            errors,
        );
        let lock = env.digest("lockfile_digest", false, errors);
        let image = env.digest("image_digest", false, errors);
        if lock.is_none()
            && image.is_none()
            && !env.has("lockfile_digest")
            && !env.has("image_digest")
        {
            errors.push(
                "body.environment",
                "capture the environment: give lockfile_digest or image_digest (or both)",
            );
        }
        env.opt_text("hardware", 256, errors);
        env.flat_map("libraries", false, errors);
        env.opt_token("python", errors);
        env.opt_text("os", 128, errors);
    }
    let status = b.choice("status", true, &["succeeded", "failed"], errors);
    for key in ["started_at", "ended_at"] {
        if let Some(t) = b.opt_token(key, errors)
            && Timestamp::parse(&t).is_none()
        {
            errors.push(
                b.at(key),
                "must be an RFC 3339 time such as 2026-01-31T12:00:00Z",
            );
        }
    }
    let datasets: Vec<String> = links(fields, kinds::DATASET_VERSION, rels::TRAINED_ON)
        .into_iter()
        .map(|(_, id)| id.to_owned())
        .collect();
    if datasets.is_empty() {
        errors.push(
            "related",
            "name the input dataset versions: {\"kind\": \"dataset_version\", \"id\": \"sha256:...\", \"rel\": \"trained_on\"}",
        );
    }
    Some(Event::TrainingRun(TrainingRun {
        run_id: run_id?,
        datasets,
        status: status?,
    }))
}

fn read_model_version(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let id = subject_digest(fields, kinds::MODEL_VERSION, errors);
    let b = body(fields);
    b.only(
        &[
            "name",
            "version",
            "version_hash",
            "files",
            "framework",
            "format",
            "registry",
        ],
        errors,
    );
    let name = model_name(&b, errors);
    b.opt_token("version", errors);
    let hash = b.digest("version_hash", true, errors);
    same_as_subject(&b, "version_hash", &hash, &id, errors);
    let files = manifest(&b, "files", true, errors);
    check_root(&files, &hash, "the version hash", errors);
    b.opt_token("framework", errors);
    b.opt_token("format", errors);
    if let Some(reg) = b.object("registry", false, errors) {
        reg.only(&["kind", "uri", "name", "version"], errors);
        reg.choice(
            "kind",
            true,
            &[
                "mlflow",
                "sagemaker",
                "object_store",
                "huggingface",
                "other",
            ],
            errors,
        );
        reg.token("uri", errors);
        reg.opt_token("name", errors);
        reg.opt_token("version", errors);
    }
    let produced = links(fields, kinds::TRAINING_RUN, rels::PRODUCED_BY);
    if produced.len() != 1 {
        errors.push(
            "related",
            "name exactly one training run: {\"kind\": \"training_run\", \"id\": RUN_ID, \"rel\": \"produced_by\"}",
        );
    }
    Some(Event::ModelVersion(ModelVersion {
        version_hash: hash?,
        name: name?,
        run_id: produced.first()?.1.to_owned(),
        files,
    }))
}

fn model_name(b: &Obj<'_>, errors: &mut Errors) -> Option<String> {
    let name = b.token("name", errors)?;
    if name.len() > 128 {
        errors.push(b.at("name"), "use at most 128 characters");
        return None;
    }
    Some(name)
}

fn read_model_card(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let hash = subject_digest(fields, kinds::MODEL_VERSION, errors);
    let b = body(fields);
    b.only(
        &[
            "card_version",
            "training_data",
            "evaluation",
            "intended_use",
            "out_of_scope",
            "limitations",
            "ethical_considerations",
        ],
        errors,
    );
    let card_version = b.u64("card_version", true, errors);
    if card_version == Some(0) {
        errors.push("body.card_version", "starts at 1");
    }
    let mut datasets = Vec::new();
    if let Some(td) = b.object("training_data", true, errors) {
        td.only(&["summary", "datasets"], errors);
        td.text("summary", 4096, errors);
        datasets.extend(td.digests("datasets", true, errors));
    }
    let evals = b.objects("evaluation", true, errors);
    if evals.is_empty() && b.has("evaluation") {
        errors.push("body.evaluation", "list at least one evaluation result");
    }
    for e in evals {
        e.only(
            &["metric", "value", "dataset", "slice", "threshold", "passed"],
            errors,
        );
        e.token("metric", errors);
        e.number("value", true, errors);
        if let Some(d) = e.digest("dataset", true, errors) {
            datasets.push(d);
        }
        e.opt_text("slice", 256, errors);
        e.number("threshold", false, errors);
        e.boolean("passed", false, errors);
    }
    b.text("intended_use", 4096, errors);
    b.opt_text("out_of_scope", 4096, errors);
    let limitations = b.array("limitations", true, errors).unwrap_or_default();
    if limitations.is_empty() && b.has("limitations") {
        errors.push("body.limitations", "list at least one known limitation");
    }
    for (path, v) in limitations {
        if !v.as_str().is_some_and(|s| crate::fields::is_text(s, 1024)) {
            errors.push(path, "must be one line of text (at most 1024 bytes)");
        }
    }
    b.opt_text("ethical_considerations", 4096, errors);
    datasets.sort();
    datasets.dedup();
    Some(Event::ModelCard(ModelCard {
        version_hash: hash?,
        card_version: card_version?,
        datasets,
    }))
}

fn read_approver_key(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let approver = subject(fields, kinds::APPROVER, errors);
    let b = body(fields);
    b.only(&["public_key", "algorithm", "key_fingerprint"], errors);
    let pem = match b.raw("public_key") {
        Some(Value::String(s)) => match custody_core::signing::PublicKey::from_pem(s) {
            Ok(key) => {
                if let Some(fp) = b.raw("key_fingerprint")
                    && fp.as_str() != Some(key.fingerprint().as_str())
                {
                    errors.push(
                        "body.key_fingerprint",
                        format!("the key's fingerprint is {}", key.fingerprint()),
                    );
                }
                if let Some(alg) = b.raw("algorithm")
                    && alg.as_str() != Some(key.algorithm().as_str())
                {
                    errors.push(
                        "body.algorithm",
                        format!("the key is {}", key.algorithm().as_str()),
                    );
                }
                Some(s.clone())
            }
            Err(e) => {
                errors.push("body.public_key", e.to_string());
                None
            }
        },
        _ => {
            errors.push("body.public_key", "give the approver's public key as PEM (-----BEGIN PUBLIC KEY-----), Ed25519 or ECDSA P-256");
            None
        }
    };
    Some(Event::ApproverKeyRegistered(ApproverKey {
        approver: approver?,
        public_key_pem: pem?,
    }))
}

fn read_key_revocation(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let approver = subject(fields, kinds::APPROVER, errors);
    let b = body(fields);
    b.only(&["key_fingerprint"], errors);
    let fp = b.digest("key_fingerprint", true, errors);
    Some(Event::ApproverKeyRevoked {
        approver: approver?,
        key_fingerprint: fp?,
    })
}

/// The body custody derives from a verified approval envelope; see `approval::derive_body`.
fn read_approval(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let hash = subject_digest(fields, kinds::MODEL_VERSION, errors);
    let b = body(fields);
    b.only(
        &[
            "model_name",
            "approver",
            "key_fingerprint",
            "decision",
            "target",
            "criteria",
            "policy",
            "statement_digest",
        ],
        errors,
    );
    b.token("model_name", errors);
    let approver = b.token("approver", errors);
    let fp = b.digest("key_fingerprint", true, errors);
    let decision = b.choice("decision", true, &["approve", "reject"], errors);
    let target = b.token("target", errors);
    let mut criteria = Vec::new();
    for c in b.objects("criteria", false, errors) {
        c.only(&["name", "passed", "evidence"], errors);
        let name = c.token("name", errors);
        let passed = c.boolean("passed", true, errors);
        c.digest("evidence", false, errors);
        if let (Some(n), Some(p)) = (name, passed) {
            criteria.push((n, p));
        }
    }
    b.opt_token("policy", errors);
    let statement = b.digest("statement_digest", true, errors);
    Some(Event::Approval(Approval {
        version_hash: hash?,
        approver: approver?,
        key_fingerprint: fp?,
        approve: decision? == "approve",
        target: target?,
        criteria,
        statement_digest: statement?,
    }))
}

fn read_policy(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    if let Some(id) = subject(fields, kinds::POLICY, errors)
        && id != POLICY_SUBJECT_ID
    {
        errors.push(
            "subject.id",
            format!("the tenant's gate policy is subject {POLICY_SUBJECT_ID:?}"),
        );
    }
    Policy::read(&body(fields), errors).map(Event::Policy)
}

/// The subject id of the tenant's retention policy.
pub const RETENTION_SUBJECT_ID: &str = "retention";

fn read_retention(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    if let Some(id) = subject(fields, kinds::POLICY, errors)
        && id != RETENTION_SUBJECT_ID
    {
        errors.push(
            "subject.id",
            format!("the tenant's retention policy is subject {RETENTION_SUBJECT_ID:?}"),
        );
    }
    crate::retention::Retention::read(&body(fields), errors).map(Event::Retention)
}

fn read_transition(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Transition> {
    let to_subject = subject_digest(fields, kinds::MODEL_VERSION, errors);
    let b = body(fields);
    b.only(
        &["from", "to", "environment", "authoriser", "change_ref"],
        errors,
    );
    let from = b.digest("from", false, errors);
    let to = b.digest("to", true, errors);
    same_as_subject(&b, "to", &to, &to_subject, errors);
    let environment = environment(&b, "environment", errors);
    let authoriser = b.token("authoriser", errors);
    b.opt_token("change_ref", errors);
    if from.is_some() && from == to {
        errors.push(
            "body.to",
            "a transition must change the version: to equals from",
        );
    }
    Some(Transition {
        from,
        to: to?,
        environment: environment?,
        authoriser: authoriser?,
    })
}

fn environment(b: &Obj<'_>, key: &str, errors: &mut Errors) -> Option<String> {
    let env = b.token(key, errors)?;
    if env.len() > 64
        || !env
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
    {
        errors.push(
            b.at(key),
            "use a lowercase environment name (a-z, 0-9, '-', '_'; at most 64), e.g. production",
        );
        return None;
    }
    Some(env)
}

fn read_promotion(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    read_transition(fields, errors).map(Event::Promotion)
}

fn read_rollback(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let t = read_transition(fields, errors)?;
    if t.from.is_none() {
        errors.push(
            "body.from",
            "is required: a rollback names the version it replaces",
        );
    }
    Some(Event::Rollback(t))
}

fn read_deployment(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let id = subject(fields, kinds::DEPLOYMENT, errors);
    let b = body(fields);
    b.only(
        &[
            "environment",
            "endpoint",
            "config_digest",
            "version_hash",
            "replicas",
            "scoring",
        ],
        errors,
    );
    let environment = environment(&b, "environment", errors);
    let endpoint = b.token("endpoint", errors);
    let config_digest = b.digest("config_digest", true, errors);
    let version_hash = b.digest("version_hash", true, errors);
    b.u64("replicas", false, errors);
    if let Some(scoring) = b.object("scoring", false, errors) {
        read_scoring(&scoring, errors);
    }
    Some(Event::Deployment(Deployment {
        deployment_id: id?,
        environment: environment?,
        endpoint: endpoint?,
        config_digest: config_digest?,
        version_hash: version_hash?,
    }))
}

/// How a deployment scores, so a recorded decision can be replayed: the function called with
/// the recorded input, and what pins the environment it runs in.
fn read_scoring(scoring: &Obj<'_>, errors: &mut Errors) {
    scoring.only(
        &[
            "entry_point",
            "lockfile_digest",
            "lockfile_uri",
            "image",
            "image_digest",
        ],
        errors,
    );
    if let Some(entry_point) = scoring.token("entry_point", errors)
        && !is_entry_point(&entry_point)
    {
        errors.push(
            scoring.at("entry_point"),
            "use module:function, e.g. scoring.model:predict (a dotted module path, a colon, a function name)",
        );
    }
    let lock = scoring.digest("lockfile_digest", false, errors);
    let image = scoring.digest("image_digest", false, errors);
    scoring.opt_token("lockfile_uri", errors);
    scoring.opt_token("image", errors);
    if lock.is_none()
        && image.is_none()
        && !scoring.has("lockfile_digest")
        && !scoring.has("image_digest")
    {
        errors.push(
            scoring.at("lockfile_digest"),
            "pin the scoring environment: give lockfile_digest or image_digest (or both)",
        );
    }
}

/// `module.path:function`, each part a Python identifier.
fn is_entry_point(s: &str) -> bool {
    let identifier = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match s.split_once(':') {
        Some((module, function)) => module.split('.').all(identifier) && identifier(function),
        None => false,
    }
}

fn read_retirement(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let hash = subject_digest(fields, kinds::MODEL_VERSION, errors);
    let b = body(fields);
    b.only(&["reason_code", "authoriser"], errors);
    b.opt_token("reason_code", errors);
    b.token("authoriser", errors);
    Some(Event::Retirement {
        version_hash: hash?,
    })
}

fn read_incident(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let id = subject(fields, kinds::INCIDENT, errors);
    let b = body(fields);
    b.only(&["severity", "category", "resolution_code"], errors);
    let opened = fields.entry_type == types::INCIDENT_OPENED;
    let severity = b.choice(
        "severity",
        opened,
        &["low", "medium", "high", "critical"],
        errors,
    );
    b.opt_token("category", errors);
    b.opt_token("resolution_code", errors);
    let status = fields
        .entry_type
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    Some(Event::Incident(Incident {
        incident_id: id?,
        status,
        severity,
    }))
}

fn read_inference(fields: &EventFields<'_>, errors: &mut Errors) -> Option<Event> {
    let id = subject(fields, kinds::INFERENCE, errors);
    let b = body(fields);
    b.only(
        &[
            "version_hash",
            "latency_ms",
            "decision",
            "model_name",
            "score",
        ],
        errors,
    );
    let hash = b.digest("version_hash", true, errors);
    b.number("latency_ms", true, errors);
    match b.raw("decision") {
        Some(Value::String(s)) if is_token(s, 128) => {}
        Some(Value::Bool(_)) | Some(Value::Number(_)) => {}
        _ => errors.push("body.decision", "give the decision as a short code, number or boolean (inputs and outputs belong in the payload)"),
    }
    b.opt_token("model_name", errors);
    b.number("score", false, errors);
    let requested = match fields.client_time.and_then(Timestamp::parse) {
        Some(t) => Some(t.unix_micros()),
        None => {
            errors.push(
                "client_time",
                "is required for inferences: the time the request was served",
            );
            None
        }
    };
    let served_by = links(fields, kinds::DEPLOYMENT, rels::SERVED_BY);
    if served_by.len() != 1 {
        errors.push(
            "related",
            "name exactly one deployment: {\"kind\": \"deployment\", \"id\": DEPLOYMENT_ID, \"rel\": \"served_by\"}",
        );
    }
    if let Some(h) = &hash {
        for r in fields
            .related
            .iter()
            .filter(|r| r.kind == kinds::MODEL_VERSION)
        {
            if &r.id != h {
                errors.push(
                    "related",
                    format!("links model_version {} but body.version_hash is {h}", r.id),
                );
            }
        }
    }
    Some(Event::Inference(Inference {
        request_id: id?,
        version_hash: hash?,
        deployment_id: served_by.first()?.1.to_owned(),
        requested_micros: requested?,
    }))
}

fn read_recorded(_: &EventFields<'_>, _: &mut Errors) -> Option<Event> {
    Some(Event::Recorded)
}

/// Links custody adds to an entry from its own body, so that every reference can be walked
/// both ways by the `related` index: an inference names the weights that computed it, a
/// deployment the weights it rolled out, a transition the version it replaced. Links the
/// client already gave are not repeated.
pub fn derived_links(fields: &EventFields<'_>) -> Vec<Related> {
    let digest = |key: &str| {
        fields
            .body
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| is_sha256_digest(s))
            .map(str::to_owned)
    };
    let wanted: Vec<(Option<String>, &str)> = match fields.entry_type {
        types::INFERENCE => vec![(digest("version_hash"), rels::COMPUTED_BY)],
        types::DEPLOYMENT => vec![(digest("version_hash"), "deploys")],
        types::PROMOTION | types::ROLLBACK => vec![(digest("from"), "replaces")],
        _ => vec![],
    };
    wanted
        .into_iter()
        .filter_map(|(id, rel)| id.map(|id| (id, rel)))
        .filter(|(id, rel)| {
            !fields
                .related
                .iter()
                .any(|r| r.kind == kinds::MODEL_VERSION && &r.id == id && r.rel == *rel)
        })
        .map(|(id, rel)| Related {
            kind: kinds::MODEL_VERSION.to_owned(),
            id,
            rel: rel.to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_core::envelope::ActorKind;
    use serde_json::json;

    fn read(
        t: &str,
        subject: (&str, &str),
        body: Value,
        related: Vec<Related>,
    ) -> Result<Option<Event>, ValidationError> {
        let actor = Actor {
            kind: ActorKind::Service,
            id: "svc".into(),
        };
        let subject = SubjectRef {
            kind: subject.0.into(),
            id: subject.1.into(),
        };
        let body = body.as_object().unwrap().clone();
        Event::read(&EventFields {
            entry_type: t,
            actor: &actor,
            subject: &subject,
            related: &related,
            client_time: None,
            body: &body,
        })
    }

    #[test]
    fn clients_cannot_forge_custody_records_or_invent_verbs() {
        assert!(check_client_type(types::PROMOTION_REFUSED).is_err());
        assert!(check_client_type("security.anything").is_err());
        let e = check_client_type("model_version.created").unwrap_err();
        assert!(
            e.errors[0].message.contains("model_version.registered"),
            "{e}"
        );
        assert!(check_client_type("x.team.thing").is_ok());
        assert!(check_client_type("artifact.stored").is_ok());
        assert_eq!(home_log("inference.recorded"), Some(LogName::Inference));
        assert_eq!(
            home_log("model_version.registered"),
            Some(LogName::Governance)
        );
        assert_eq!(home_log("x.a.b"), None);
    }

    #[test]
    fn user_types_carry_no_meaning_and_typed_ones_report_every_field() {
        assert_eq!(
            read("x.a.b", ("thing", "t"), json!({}), vec![]).unwrap(),
            None
        );
        let err = read(
            types::DEPLOYMENT,
            ("model_version", "m"),
            json!({"endpoint": 3, "extra": 1}),
            vec![],
        )
        .unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|f| f.field.as_str()).collect();
        for want in [
            "subject.kind",
            "body.extra",
            "body.environment",
            "body.endpoint",
            "body.config_digest",
            "body.version_hash",
        ] {
            assert!(fields.contains(&want), "{want} missing from {fields:?}");
        }
    }

    #[test]
    fn a_deployment_may_say_how_it_scores_and_must_pin_where() {
        let h = format!("sha256:{}", "ab".repeat(32));
        let deployment = |scoring: Value| {
            read(
                types::DEPLOYMENT,
                ("deployment", "dep-1"),
                json!({"environment": "production", "endpoint": "https://s.example/v1",
                       "config_digest": h, "version_hash": h, "scoring": scoring}),
                vec![],
            )
        };
        assert!(deployment(json!({"entry_point": "scoring.model:predict", "lockfile_digest": h, "lockfile_uri": "s3://b/uv.lock"})).is_ok());
        assert!(deployment(json!({"entry_point": "score:predict", "image": "registry.example/s", "image_digest": h})).is_ok());
        let fields = |v: Value| -> Vec<String> {
            deployment(v)
                .unwrap_err()
                .errors
                .into_iter()
                .map(|f| f.field)
                .collect()
        };
        assert_eq!(
            fields(json!({"entry_point": "score:predict"})),
            ["body.scoring.lockfile_digest"]
        );
        for bad in [
            "score",
            "score:",
            ":predict",
            "9x:predict",
            "a..b:f",
            "a.b:f.g",
        ] {
            assert_eq!(
                fields(json!({"entry_point": bad, "image_digest": h})),
                ["body.scoring.entry_point"],
                "{bad}"
            );
        }
        assert_eq!(
            fields(json!({"entry_point": "a:f", "image_digest": h, "shell": "rm"})),
            ["body.scoring.shell"]
        );
    }

    #[test]
    fn links_are_derived_from_bodies_once() {
        let h = format!("sha256:{}", "ab".repeat(32));
        let actor = Actor {
            kind: ActorKind::Service,
            id: "svc".into(),
        };
        let subject = SubjectRef {
            kind: "inference".into(),
            id: "r1".into(),
        };
        let body = json!({"version_hash": h}).as_object().unwrap().clone();
        let mut related = vec![];
        let fields = |related: &[Related]| {
            derived_links(&EventFields {
                entry_type: types::INFERENCE,
                actor: &actor,
                subject: &subject,
                related,
                client_time: None,
                body: &body,
            })
        };
        let added = fields(&related);
        assert_eq!(added.len(), 1);
        assert_eq!(
            (added[0].kind.as_str(), added[0].rel.as_str()),
            ("model_version", "computed_by")
        );
        related.extend(added);
        assert!(fields(&related).is_empty());
    }
}
