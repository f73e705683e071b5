//! The entry envelope (SPEC §2): what a leaf of a custody log commits to.
//!
//! A client sends an [`EntryInput`]; the server seals it into an [`Envelope`] by adding the
//! fields only the server may set (`v`, `tenant`, `log`, `time`, a missing `id`, the payload
//! commitment). The envelope's RFC 8785 bytes are the leaf data, so everything in it is public
//! to anyone who holds a proof: it carries identifiers, digests and decisions, never raw
//! personal data, which goes in the salted payload instead.
//!
//! Validation collects every problem with its field path, so a client fixes a bad entry in one
//! round trip, and nothing is hashed unless every field is valid.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::commitment;
use crate::jcs;
use crate::merkle::{self, Hash};

/// The envelope format version this code writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

/// Largest canonical envelope: the C2SP tlog-tiles entry limit, so every entry can be served in
/// an entry bundle.
pub const MAX_ENVELOPE_BYTES: usize = 65_535;

/// Largest payload (its JSON text). Larger data belongs in an artifact store, logged by digest.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// At most this many `related` links in one entry.
pub const MAX_RELATED: usize = 256;

/// Namespaces whose entry types custody defines; anything else must use the `x.` prefix.
pub const CUSTODY_NAMESPACES: &[&str] = &[
    "access",
    "approval",
    "approver_key",
    "artifact",
    "dataset_version",
    "deployment",
    "entry",
    "incident",
    "inference",
    "key",
    "model",
    "model_card",
    "model_version",
    "policy",
    "principal",
    "promotion",
    "retention",
    "retirement",
    "rollback",
    "security",
    "token",
    "training_run",
];

/// One invalid field: where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Path of the field, e.g. `actor.kind` or `related[2].rel`.
    pub field: String,
    /// What is wrong and what is accepted instead.
    pub message: String,
}

/// Every problem found in one input; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The problems, in field order.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if e.field.is_empty() {
                f.write_str(&e.message)?;
            } else {
                write!(f, "{}: {}", e.field, e.message)?;
            }
        }
        Ok(())
    }
}

impl ValidationError {
    /// The same errors, located inside item `index` of a request that carries many entries
    /// (`actor.kind` becomes `[3].actor.kind`).
    pub fn at_item(mut self, index: usize) -> Self {
        for e in &mut self.errors {
            e.field = if e.field.is_empty() {
                format!("[{index}]")
            } else {
                format!("[{index}].{}", e.field)
            };
        }
        self
    }

    /// A single-field error.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError {
                field: field.into(),
                message: message.into(),
            }],
        }
    }
}

/// Collects field errors while a value is checked, so one answer names every invalid field
/// at once. Shared by every reader of outside input (envelopes, DSSE envelopes, in-toto
/// statements, typed evidence bodies).
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Records one problem.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// How many problems were recorded (to tell whether reading one part added any).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `value` when nothing was recorded, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, ValidationError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ValidationError { errors: self.0 })
        }
    }

    /// Records every member of `obj` outside `allowed`, at `prefix.member` (or `member` when
    /// `prefix` is empty).
    pub fn unknown(&mut self, obj: &Map<String, Value>, allowed: &[&str], prefix: &str) {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                self.push(
                    path,
                    format!("unknown field; allowed: {}", allowed.join(", ")),
                );
            }
        }
    }
}

type Errors = FieldErrors;

/// A tenant's name: `[a-z0-9][a-z0-9-]{0,62}`, part of every log origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

impl TenantName {
    /// Validates a tenant name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && matches!(b[0], b'a'..=b'z' | b'0'..=b'9')
            && b.iter()
                .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::one(
                "tenant",
                format!(
                    "{s:?} is not a tenant name: use 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
                ),
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantName {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TenantName> for String {
    fn from(t: TenantName) -> String {
        t.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The logs every tenant has, each its own Merkle tree with its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogName {
    /// Artifacts, datasets, runs, models, approvals, promotions, deployments, incidents.
    Governance,
    /// Inference records.
    Inference,
    /// Who read or tried to read what.
    Access,
}

impl LogName {
    /// All logs, in the order they are created and listed.
    pub const ALL: [LogName; 3] = [LogName::Governance, LogName::Inference, LogName::Access];

    /// The name used in URLs and origins.
    pub fn as_str(self) -> &'static str {
        match self {
            LogName::Governance => "governance",
            LogName::Inference => "inference",
            LogName::Access => "access",
        }
    }

    /// Parses a log name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                ValidationError::one(
                    "log",
                    format!("unknown log {s:?}: use governance, inference or access"),
                )
            })
    }
}

impl fmt::Display for LogName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a server name (the first part of every origin and key name): 1-253 characters of
/// a-z, 0-9, '.', '-', ':' and '_', so that origins are valid C2SP key names.
pub fn validate_server_name(s: &str) -> Result<(), ValidationError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b':' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::one(
            "server_name",
            format!(
                "{s:?} is not a server name: use a lowercase host name such as custody.example"
            ),
        ))
    }
}

/// A log's origin: `<server-name>/<tenant>/<log>`, the first line of its checkpoints and the
/// name of its key.
pub fn origin(server_name: &str, tenant: &TenantName, log: LogName) -> String {
    format!("{server_name}/{tenant}/{log}")
}

/// Server receive time: RFC 3339, UTC, exactly six fractional digits, so the string has one
/// spelling and sorts as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Truncates to whole microseconds in UTC.
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        let dt = dt.to_offset(time::UtcOffset::UTC);
        let micros = dt.microsecond();
        Self(dt.replace_microsecond(micros).unwrap_or(dt))
    }

    /// The underlying instant.
    pub fn datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// The instant `micros` microseconds after the Unix epoch, if RFC 3339 can write it.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .ok()
            .filter(|dt| (1..=9999).contains(&dt.year()))
            .map(Self::from_datetime)
    }

    /// Microseconds since the Unix epoch, for indexing and range queries.
    pub fn unix_micros(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    /// Parses any RFC 3339 time and normalises it (used for query bounds). A time whose UTC
    /// instant falls outside years 0001-9999 (`9999-12-31T23:59:59-01:00`,
    /// `0001-01-01T00:00:00+01:00`) is refused: RFC 3339 cannot write it.
    pub fn parse(s: &str) -> Option<Self> {
        OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .and_then(|dt| dt.checked_to_offset(time::UtcOffset::UTC))
            .filter(|dt| (1..=9999).contains(&dt.year()))
            .map(Self::from_datetime)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            d.microsecond()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid RFC 3339 time"))
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A person.
    User,
    /// A pipeline, serving process or other machine identity.
    Service,
    /// custody itself.
    System,
}

impl ActorKind {
    /// The kind's name in an envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Service => "service",
            ActorKind::System => "system",
        }
    }
}

/// The principal behind an entry. `id` is custody's opaque principal id, never a name or
/// e-mail, because the envelope is public to every proof holder and can never be erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// User, service or system.
    pub kind: ActorKind,
    /// Opaque principal id.
    pub id: String,
}

/// What an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectRef {
    /// The kind of thing, e.g. `model_version`.
    pub kind: String,
    /// Its id, e.g. a version hash or a UUID.
    pub id: String,
}

/// A link to another piece of evidence: the ids that chain datasets, runs, models, approvals,
/// deployments and inferences together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    /// The kind of the linked thing.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// How it relates, e.g. `trained_on`, `approves`, `served_by`.
    pub rel: String,
}

/// The why and how of an entry. The where (a source address) is personal data and belongs in
/// the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Why this happened, e.g. `quarterly-model-review`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// How the actor authenticated, e.g. `token`, `oidc`, `mtls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// The caller's request id, for correlation with its own logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The caller's session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl fmt::Debug for EntryInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntryInput")
            .field("id", &self.id)
            .field("entry_type", &self.entry_type)
            .field("client_time", &self.client_time)
            .field("actor", &self.actor)
            .field("subject", &self.subject)
            .field("related", &self.related)
            .field("context", &self.context)
            .field("body", &self.body)
            .field(
                "payload",
                &self
                    .payload
                    .as_ref()
                    .map(|p| format!("<redacted, {} bytes>", p.to_string().len())),
            )
            .finish()
    }
}

impl Context {
    fn is_empty(&self) -> bool {
        self.purpose.is_none()
            && self.auth_method.is_none()
            && self.request_id.is_none()
            && self.session_id.is_none()
    }
}

/// An entry as a client submits it: the envelope's client fields plus an optional payload.
/// Its `Debug` shows the payload's size, never its content (payloads are personal data).
#[derive(Clone, PartialEq)]
pub struct EntryInput {
    /// Client-chosen id for idempotent retries (UUIDv7); assigned by the server when absent.
    pub id: Option<Uuid>,
    /// Dotted entry type.
    pub entry_type: String,
    /// When the client says it happened (RFC 3339), kept as sent.
    pub client_time: Option<String>,
    /// Who acted.
    pub actor: Actor,
    /// What it is about.
    pub subject: SubjectRef,
    /// Links to other evidence.
    pub related: Vec<Related>,
    /// Why and how.
    pub context: Context,
    /// Type-specific, non-personal data (a JSON object).
    pub body: Map<String, Value>,
    /// Personal or sensitive data, committed to with a salt and stored beside the leaf.
    pub payload: Option<Value>,
}

const INPUT_FIELDS: &[&str] = &[
    "id",
    "type",
    "client_time",
    "actor",
    "subject",
    "related",
    "context",
    "body",
    "payload",
];

fn is_ident(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Printable ASCII without spaces: ids, digests, URNs, paths.
fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|c| c.is_ascii_graphic())
}

fn is_text(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

/// Checks an entry type: dotted lowercase segments; custody's own namespaces or `x.` for
/// user-defined types.
pub fn validate_entry_type(t: &str) -> Result<(), String> {
    let segments: Vec<&str> = t.split('.').collect();
    if t.len() > 128 || segments.len() < 2 || !segments.iter().all(|s| is_ident(s, 64)) {
        return Err(format!(
            "{t:?} is not an entry type: use dotted lowercase words such as model_version.registered or x.team.event"
        ));
    }
    if segments[0] == "x" || CUSTODY_NAMESPACES.contains(&segments[0]) {
        Ok(())
    } else {
        Err(format!(
            "unknown namespace {:?}: custody's types start with one of {}; user-defined types start with \"x.\"",
            segments[0],
            CUSTODY_NAMESPACES.join(", ")
        ))
    }
}

fn take_object<'a>(
    v: Option<&'a Value>,
    field: &str,
    errors: &mut Errors,
) -> Option<&'a Map<String, Value>> {
    match v {
        Some(Value::Object(m)) => Some(m),
        Some(_) => {
            errors.push(field, "must be a JSON object");
            None
        }
        None => {
            errors.push(field, "is required");
            None
        }
    }
}

fn take_str(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    errors: &mut Errors,
) -> Option<String> {
    match obj.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(format!("{field}.{key}"), "must be a string");
            None
        }
        None => {
            errors.push(format!("{field}.{key}"), "is required");
            None
        }
    }
}

fn reject_unknown(obj: &Map<String, Value>, allowed: &[&str], field: &str, errors: &mut Errors) {
    errors.unknown(obj, allowed, field);
}

fn parse_ref(
    obj: &Map<String, Value>,
    field: &str,
    with_rel: bool,
    errors: &mut Errors,
) -> (String, String, String) {
    let allowed: &[&str] = if with_rel {
        &["kind", "id", "rel"]
    } else {
        &["kind", "id"]
    };
    reject_unknown(obj, allowed, field, errors);
    let kind = take_str(obj, "kind", field, errors).unwrap_or_default();
    if !kind.is_empty() && !is_ident(&kind, 64) {
        errors.push(
            format!("{field}.kind"),
            "use a lowercase word of a-z, 0-9 and '_' (at most 64), e.g. model_version",
        );
    }
    let id = take_str(obj, "id", field, errors).unwrap_or_default();
    if !id.is_empty() && !is_token(&id, 256) {
        errors.push(
            format!("{field}.id"),
            "use 1-256 printable ASCII characters without spaces (an id or digest, not a name)",
        );
    } else if obj.get("id").is_some() && id.is_empty() {
        errors.push(format!("{field}.id"), "must not be empty");
    }
    let rel = if with_rel {
        let rel = take_str(obj, "rel", field, errors).unwrap_or_default();
        if !rel.is_empty() && !is_ident(&rel, 64) {
            errors.push(
                format!("{field}.rel"),
                "use a lowercase word of a-z, 0-9 and '_' (at most 64), e.g. trained_on",
            );
        }
        rel
    } else {
        String::new()
    };
    (kind, id, rel)
}

impl EntryInput {
    /// Validates a client's JSON entry, reporting every invalid field at once.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let mut errors = Errors::default();
        let Value::Object(obj) = value else {
            return Err(ValidationError::one(
                "",
                "an entry must be a JSON object with type, actor, subject and body",
            ));
        };
        reject_unknown(obj, INPUT_FIELDS, "", &mut errors);

        let id = match obj.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match Uuid::try_parse(s) {
                Ok(u) if u.get_version_num() == 7 => Some(u),
                _ => {
                    errors.push(
                        "id",
                        "must be a UUIDv7 (or omitted, and the server assigns one)",
                    );
                    None
                }
            },
            Some(_) => {
                errors.push("id", "must be a UUIDv7 string");
                None
            }
        };

        let entry_type = match obj.get("type") {
            Some(Value::String(t)) => {
                if let Err(m) = validate_entry_type(t) {
                    errors.push("type", m);
                }
                t.clone()
            }
            Some(_) => {
                errors.push("type", "must be a string such as model_version.registered");
                String::new()
            }
            None => {
                errors.push(
                    "type",
                    "is required, e.g. model_version.registered or x.team.event",
                );
                String::new()
            }
        };

        let client_time = match obj.get("client_time") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if Timestamp::parse(s).is_some() => Some(s.clone()),
            Some(_) => {
                errors.push(
                    "client_time",
                    "must be an RFC 3339 time such as 2026-01-31T12:00:00Z",
                );
                None
            }
        };

        let actor = match take_object(obj.get("actor"), "actor", &mut errors) {
            Some(a) => {
                reject_unknown(a, &["kind", "id"], "actor", &mut errors);
                let kind = match a.get("kind").and_then(Value::as_str) {
                    Some("user") => ActorKind::User,
                    Some("service") => ActorKind::Service,
                    Some("system") => ActorKind::System,
                    _ => {
                        errors.push("actor.kind", "must be one of user, service, system");
                        ActorKind::User
                    }
                };
                let id = take_str(a, "id", "actor", &mut errors).unwrap_or_default();
                if a.get("id").is_some_and(Value::is_string)
                    && (id.is_empty()
                        || id.len() > 128
                        || !id
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(&c)))
                {
                    errors.push(
                        "actor.id",
                        "must be an opaque principal id (1-128 of A-Z, a-z, 0-9, '.', '_', ':', '-'), never an e-mail or name",
                    );
                }
                Actor { kind, id }
            }
            None => Actor {
                kind: ActorKind::User,
                id: String::new(),
            },
        };

        let subject = match take_object(obj.get("subject"), "subject", &mut errors) {
            Some(s) => {
                let (kind, id, _) = parse_ref(s, "subject", false, &mut errors);
                SubjectRef { kind, id }
            }
            None => SubjectRef {
                kind: String::new(),
                id: String::new(),
            },
        };

        let mut related = Vec::new();
        match obj.get("related") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                if items.len() > MAX_RELATED {
                    errors.push("related", format!("at most {MAX_RELATED} links per entry"));
                }
                for (i, item) in items.iter().enumerate() {
                    let field = format!("related[{i}]");
                    match item {
                        Value::Object(r) => {
                            let (kind, id, rel) = parse_ref(r, &field, true, &mut errors);
                            related.push(Related { kind, id, rel });
                        }
                        _ => errors.push(field, "must be an object {kind, id, rel}"),
                    }
                }
            }
            Some(_) => errors.push("related", "must be an array of {kind, id, rel}"),
        }

        let mut context = Context::default();
        match obj.get("context") {
            None | Some(Value::Null) => {}
            Some(Value::Object(c)) => {
                let keys = ["purpose", "auth_method", "request_id", "session_id"];
                reject_unknown(c, &keys, "context", &mut errors);
                for key in keys {
                    let value = match c.get(key) {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => {
                            let ok = if key == "purpose" {
                                is_text(s, 256)
                            } else {
                                is_token(s, 128)
                            };
                            if !ok {
                                let rule = if key == "purpose" {
                                    "1-256 characters without control characters"
                                } else {
                                    "1-128 printable ASCII characters without spaces"
                                };
                                errors.push(format!("context.{key}"), format!("must be {rule}"));
                            }
                            Some(s.clone())
                        }
                        Some(_) => {
                            errors.push(format!("context.{key}"), "must be a string");
                            None
                        }
                    };
                    match key {
                        "purpose" => context.purpose = value,
                        "auth_method" => context.auth_method = value,
                        "request_id" => context.request_id = value,
                        _ => context.session_id = value,
                    }
                }
            }
            Some(_) => errors.push("context", "must be an object"),
        }

        let body = match obj.get("body") {
            Some(Value::Object(b)) => {
                for (k, v) in b {
                    if let Err(e) = jcs::check_numbers(v, &format!("body.{k}")) {
                        errors.push(field_of(&e), e.to_string());
                    }
                }
                b.clone()
            }
            None | Some(Value::Null) => Map::new(),
            Some(_) => {
                errors.push("body", "must be a JSON object");
                Map::new()
            }
        };

        let payload = match obj.get("payload") {
            None | Some(Value::Null) => None,
            Some(p) => {
                if let Err(e) = jcs::check_numbers(p, "payload") {
                    errors.push(field_of(&e), e.to_string());
                }
                let size = serde_json::to_vec(p).map_or(usize::MAX, |v| v.len());
                if size > MAX_PAYLOAD_BYTES {
                    errors.push(
                        "payload",
                        format!(
                            "is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}: store large data as an artifact and log its sha256 digest"
                        ),
                    );
                }
                Some(p.clone())
            }
        };

        errors.finish(Self {
            id,
            entry_type,
            client_time,
            actor,
            subject,
            related,
            context,
            body,
            payload,
        })
    }

    /// A digest of everything the client sent except `id`, so a retry with the same id and the
    /// same content is recognised as the same entry even though the server's time and the
    /// payload's salt differ between the two attempts.
    pub fn content_digest(&self) -> [u8; 32] {
        let mut v = serde_json::json!({
            "type": self.entry_type,
            "actor": self.actor,
            "subject": self.subject,
            "related": self.related,
            "context": self.context,
            "body": self.body,
        });
        if let Some(t) = &self.client_time {
            v["client_time"] = Value::String(t.clone());
        }
        if let Some(p) = &self.payload {
            v["payload"] = p.clone();
        }
        // Numbers were checked during validation, so canonicalisation cannot fail; should it,
        // hashing serde_json's own text still gives a stable digest for this process's inputs.
        let bytes = jcs::canonicalize(&v).unwrap_or_else(|_| v.to_string().into_bytes());
        Sha256::digest(bytes).into()
    }
}

fn field_of(e: &jcs::JcsError) -> String {
    match e {
        jcs::JcsError::UnsafeNumber { field, .. } => field.clone(),
        _ => String::new(),
    }
}

/// The sealed, public record of one entry. Its canonical bytes are the leaf data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Format version, [`ENVELOPE_VERSION`].
    pub v: u8,
    /// UUIDv7 of the entry.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant: TenantName,
    /// Log within the tenant.
    pub log: LogName,
    /// Dotted entry type.
    #[serde(rename = "type")]
    pub entry_type: String,
    /// Server receive time.
    pub time: Timestamp,
    /// Client-reported time, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_time: Option<String>,
    /// Who acted.
    pub actor: Actor,
    /// What it is about.
    pub subject: SubjectRef,
    /// Links to other evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
    /// Why and how.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
    /// Type-specific, non-personal data.
    pub body: Map<String, Value>,
    /// `sha256:` commitment to the salted payload, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_commitment: Option<String>,
}

/// An envelope with its canonical bytes and leaf hash, ready to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    /// The envelope.
    pub envelope: Envelope,
    /// RFC 8785 bytes: the leaf data.
    pub canonical: Vec<u8>,
    /// `SHA-256(0x00 || canonical)`.
    pub leaf_hash: Hash,
}

impl Envelope {
    /// Seals a validated input with the server's fields. Fails if the canonical envelope is
    /// larger than [`MAX_ENVELOPE_BYTES`].
    pub fn seal(
        input: &EntryInput,
        tenant: TenantName,
        log: LogName,
        id: Uuid,
        time: Timestamp,
        payload_commitment: Option<String>,
    ) -> Result<SealedEntry, ValidationError> {
        let envelope = Envelope {
            v: ENVELOPE_VERSION,
            id,
            tenant,
            log,
            entry_type: input.entry_type.clone(),
            time,
            client_time: input.client_time.clone(),
            actor: input.actor.clone(),
            subject: input.subject.clone(),
            related: input.related.clone(),
            context: input.context.clone(),
            body: input.body.clone(),
            payload_commitment,
        };
        let canonical = envelope.canonical_bytes()?;
        let leaf_hash = merkle::leaf_hash(&canonical);
        Ok(SealedEntry {
            envelope,
            canonical,
            leaf_hash,
        })
    }

    /// The RFC 8785 bytes of this envelope, checked against the size limit.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, ValidationError> {
        let value = serde_json::to_value(self)
            .map_err(|e| ValidationError::one("", format!("cannot encode envelope: {e}")))?;
        let canonical = jcs::canonicalize(&value).map_err(|e| {
            let field = field_of(&e);
            ValidationError::one(field, e.to_string())
        })?;
        if canonical.len() > MAX_ENVELOPE_BYTES {
            return Err(ValidationError::one(
                "",
                format!(
                    "the canonical envelope is {} bytes; the limit is {MAX_ENVELOPE_BYTES}: move large data into the payload or an artifact and log its digest",
                    canonical.len()
                ),
            ));
        }
        Ok(canonical)
    }

    /// Reads an envelope from leaf data and checks the bytes are exactly its canonical form, so
    /// a verifier never trusts an envelope whose bytes could be spelled two ways.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, ValidationError> {
        let value =
            jcs::parse_strict(bytes).map_err(|e| ValidationError::one("", e.to_string()))?;
        let envelope: Envelope = serde_json::from_value(value)
            .map_err(|e| ValidationError::one("", format!("not a custody envelope: {e}")))?;
        if envelope.v != ENVELOPE_VERSION {
            return Err(ValidationError::one(
                "v",
                format!("unsupported envelope version {}", envelope.v),
            ));
        }
        if envelope.canonical_bytes()? != bytes {
            return Err(ValidationError::one(
                "",
                "leaf data is not in RFC 8785 canonical form",
            ));
        }
        Ok(envelope)
    }

    /// Checks the commitment format, when present.
    pub fn validate_commitment(&self) -> Result<(), ValidationError> {
        match &self.payload_commitment {
            Some(c) if commitment::parse_sha256(c).is_none() => Err(ValidationError::one(
                "payload_commitment",
                "must be sha256: followed by 64 lowercase hex digits",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "type": "model_version.registered",
            "actor": {"kind": "service", "id": "svc-train-01"},
            "subject": {"kind": "model_version", "id": "sha256:0a1b"},
            "related": [{"kind": "training_run", "id": "run-42", "rel": "produced_by"}],
            "context": {"purpose": "weekly retrain", "request_id": "req-1"},
            "body": {"name": "fraud", "metrics": {"auc": 0.91}},
            "payload": {"operator_email": "a@example.com"}
        })
    }

    fn seal(input: &EntryInput) -> SealedEntry {
        let time = Timestamp::parse("2026-11-23T10:00:00.123456789Z").unwrap();
        Envelope::seal(
            input,
            TenantName::parse("acme").unwrap(),
            LogName::Governance,
            Uuid::parse_str("01900000-0000-7000-8000-000000000000").unwrap(),
            time,
            None,
        )
        .unwrap()
    }

    #[test]
    fn seals_to_canonical_bytes_with_microsecond_time() {
        let input = EntryInput::from_json(&good()).unwrap();
        let sealed = seal(&input);
        let text = String::from_utf8(sealed.canonical.clone()).unwrap();
        assert!(text.starts_with(r#"{"actor":{"id":"svc-train-01","kind":"service"},"body":"#));
        assert!(
            text.contains(r#""time":"2026-11-23T10:00:00.123456Z""#),
            "{text}"
        );
        assert!(
            !text.contains("example.com"),
            "payload must never enter the envelope"
        );
        assert_eq!(sealed.leaf_hash, merkle::leaf_hash(text.as_bytes()));
        assert_eq!(
            Envelope::from_canonical(&sealed.canonical).unwrap(),
            sealed.envelope
        );
    }

    #[test]
    fn reports_every_bad_field_at_once() {
        let bad = json!({
            "type": "Model",
            "actor": {"kind": "robot", "id": "alice@example.com"},
            "subject": {"kind": "Model Version"},
            "related": [{"kind": "run", "id": "r", "rel": "Bad Rel"}, 3],
            "context": {"purpose": "x", "where": "office"},
            "body": {"rows": 9007199254740993u64},
            "extra": 1
        });
        let err = EntryInput::from_json(&bad).unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "extra",
            "type",
            "actor.kind",
            "actor.id",
            "subject.kind",
            "subject.id",
            "related[0].rel",
            "related[1]",
            "context.where",
            "body.rows",
        ] {
            assert!(fields.contains(&f), "missing {f} in {fields:?}");
        }
    }

    #[test]
    fn entry_types_need_a_known_namespace_or_x_prefix() {
        assert!(validate_entry_type("x.acme.thing").is_ok());
        assert!(validate_entry_type("deployment.created").is_ok());
        assert!(validate_entry_type("foo.bar").unwrap_err().contains("x."));
        assert!(validate_entry_type("single").is_err());
        assert!(validate_entry_type("a..b").is_err());
    }

    #[test]
    fn tenant_names_follow_the_spec() {
        for ok in ["acme", "a", "0-team", &"a".repeat(63)] {
            assert!(TenantName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-acme", "Acme", "ac_me", "ac me", &"a".repeat(64)] {
            assert!(TenantName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn oversize_envelopes_are_refused() {
        let mut v = good();
        v["body"] = json!({"blob": "a".repeat(MAX_ENVELOPE_BYTES)});
        let input = EntryInput::from_json(&v).unwrap();
        let err = Envelope::seal(
            &input,
            TenantName::parse("acme").unwrap(),
            LogName::Governance,
            Uuid::now_v7(),
            Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("limit is 65535"), "{err}");
    }

    #[test]
    fn oversize_payloads_are_refused() {
        let mut v = good();
        v["payload"] = json!({"notes": "a".repeat(MAX_PAYLOAD_BYTES)});
        let err = EntryInput::from_json(&v).unwrap_err();
        assert_eq!(err.errors[0].field, "payload");
        assert!(err.errors[0].message.contains("limit is 1048576"), "{err}");
    }

    #[test]
    fn content_digest_ignores_id_but_not_content() {
        let a = EntryInput::from_json(&good()).unwrap();
        let mut with_id = good();
        with_id["id"] = json!("01900000-0000-7000-8000-000000000000");
        let b = EntryInput::from_json(&with_id).unwrap();
        assert_eq!(a.content_digest(), b.content_digest());
        let mut other = good();
        other["payload"] = json!({"operator_email": "b@example.com"});
        let c = EntryInput::from_json(&other).unwrap();
        assert_ne!(a.content_digest(), c.content_digest());
    }

    #[test]
    fn non_canonical_leaf_data_is_rejected() {
        let sealed = seal(&EntryInput::from_json(&good()).unwrap());
        let mut spaced = sealed.canonical.clone();
        spaced.insert(1, b' ');
        assert!(Envelope::from_canonical(&spaced).is_err());
    }

    #[test]
    fn debug_never_shows_a_payload() {
        let input = EntryInput::from_json(&serde_json::json!({
            "type": "x.t.e", "actor": {"kind": "service", "id": "svc"},
            "subject": {"kind": "item", "id": "i"}, "body": {},
            "payload": {"email": "jane@example.com"}
        }))
        .unwrap();
        let shown = format!("{input:?}");
        assert!(
            !shown.contains("jane@example.com") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn times_before_year_0001_in_utc_are_refused() {
        assert!(Timestamp::parse("0001-01-01T00:00:00+01:00").is_none());
        assert!(Timestamp::parse("0001-01-01T00:00:00Z").is_some());
    }

    #[test]
    fn times_beyond_year_9999_in_utc_are_refused_not_a_panic() {
        // Reproduced with fuzz/fuzz_targets/envelope.rs: converting to UTC used to panic.
        assert_eq!(Timestamp::parse("9999-12-31T23:59:59-01:00"), None);
        let mut v = good();
        v["client_time"] = json!("9999-12-31T23:59:59-01:00");
        let err = EntryInput::from_json(&v).unwrap_err();
        assert_eq!(err.errors[0].field, "client_time");
        let last = Timestamp::parse("9999-12-31T23:59:59.999999Z").unwrap();
        assert_eq!(last.to_string(), "9999-12-31T23:59:59.999999Z");
        assert!(Timestamp::parse("9999-12-31T23:00:00-00:59").is_some());
    }
}
