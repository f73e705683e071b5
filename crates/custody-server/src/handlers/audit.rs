//! Handlers for audit questions: trace, served, history, admit and evidence packs. Each answer
//! carries its entries with inclusion proofs against one signed checkpoint per log, and is
//! recorded in the access log before it is sent.

use axum::extract::State;
use axum::{Extension, Json};
use custody_api::evidence as ev;
use custody_core::envelope::LogName;
use custody_governance::{
    Backend, Caller, PackScope, ReadRecord, TraceDirection, TraceStart, parse_time,
};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, PathParam, Query, QueryParams, TenantPath, VersionHash};
use crate::state::{AppState, now_micros};

fn digest_param(name: &str, v: &str) -> ApiResult<String> {
    let ok = custody_core::commitment::parse_sha256(v).is_some();
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ApiError::field(
            name,
            format!(
                "{v:?} is not a version hash: use sha256: and 64 lowercase hex digits (`custody model hash PATH` prints it)"
            ),
        ))
    }
}

fn env_param(v: Option<&String>) -> ApiResult<String> {
    match v {
        Some(e)
            if !e.is_empty()
                && e.len() <= 64
                && e.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_'
                }) =>
        {
            Ok(e.clone())
        }
        Some(e) => Err(ApiError::field(
            "env",
            format!("{e:?} is not an environment name (a-z, 0-9, '-', '_')"),
        )),
        None => Err(ApiError::field("env", "is required, e.g. env=production")),
    }
}

/// Reads where a trace or pack starts: exactly one of `entry` (an entry id), `request_id`,
/// `subject` (a version hash, dataset digest, run id or deployment id) or `log` + `index`.
fn start_param(q: &Params) -> ApiResult<TraceStart> {
    let given: Vec<&str> = ["entry", "request_id", "subject", "index"]
        .into_iter()
        .filter(|k| q.has(k))
        .collect();
    if given.len() != 1 {
        return Err(ApiError::field(
            "",
            "say where to start with exactly one of entry=<entry id>, request_id=<inference request id>, subject=<version hash, dataset digest, run id or deployment id>, or log=<log>&index=<n>",
        ));
    }
    let text = |name: &str| q.get(name).cloned().unwrap_or_default();
    Ok(match given[0] {
        "entry" => TraceStart::Id(
            text("entry")
                .parse()
                .map_err(|_| ApiError::field("entry", "must be an entry id (a UUID)"))?,
        ),
        "request_id" => TraceStart::Request(text("request_id")),
        "subject" => TraceStart::Subject(text("subject")),
        _ => {
            let log = LogName::parse(q.get("log").map(String::as_str).unwrap_or("governance"))
                .map_err(ApiError::validation)?;
            TraceStart::Entry(log, q.number("index")?.unwrap_or_default())
        }
    })
}

/// The access-log subject of a trace or pack start.
fn start_read(start: &TraceStart) -> ReadRecord {
    match start {
        TraceStart::Id(id) => ReadRecord::about("entry", id.to_string()),
        TraceStart::Request(r) => ReadRecord::about("inference", r.clone()),
        TraceStart::Subject(s) => ReadRecord::about("subject", s.clone()),
        TraceStart::Entry(log, index) => ReadRecord::about("log_index", format!("{log}/{index}")),
    }
}

/// Where a trace starts and which way it goes.
pub struct TraceParams {
    start: TraceStart,
    direction: TraceDirection,
    limit: u32,
}

impl QueryParams for TraceParams {
    const ALLOWED: &'static [&'static str] = &[
        "entry",
        "request_id",
        "subject",
        "log",
        "index",
        "direction",
        "limit",
    ];

    fn from_params(q: &Params) -> ApiResult<Self> {
        let start = start_param(q)?;
        let direction = match q.get("direction").map(String::as_str) {
            None | Some("backward") => TraceDirection::Backward,
            Some("forward") => TraceDirection::Forward,
            Some(other) => {
                return Err(ApiError::field(
                    "direction",
                    format!("{other:?}: use backward or forward"),
                ));
            }
        };
        let limit = q.number("limit")?.unwrap_or(100).min(10_000) as u32;
        Ok(Self {
            start,
            direction,
            limit,
        })
    }
}

/// Walks the evidence chain from one entry: `backward` (default) to what it rests on
/// (inference -> deployment -> model version -> approvals, card, policy -> training run ->
/// dataset versions), or `forward` to what rests on it (dataset -> runs -> models ->
/// deployments and inferences). Every entry comes with its inclusion proof.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/trace",
    params(("tenant" = String, Path),
        ("entry" = Option<String>, Query, description = "Entry id to start at"),
        ("request_id" = Option<String>, Query, description = "Inference request id to start at"),
        ("subject" = Option<String>, Query, description = "Version hash, dataset digest, run id or deployment id"),
        ("log" = Option<String>, Query, description = "With index: the log of the start entry"),
        ("index" = Option<u64>, Query, description = "With log: the index of the start entry"),
        ("direction" = Option<String>, Query, description = "backward (default) or forward"),
        ("limit" = Option<u32>, Query, description = "Forward: most inferences to include (default 100)")),
    responses((status = 200, body = ev::TraceAnswer), (status = 400, body = custody_api::Problem), (status = 404, body = custody_api::Problem)))]
pub async fn trace<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    TenantPath(tenant): TenantPath,
    Query { value: q, params }: Query<TraceParams>,
) -> ApiResult<Json<ev::TraceAnswer>> {
    let answer = st
        .governance()
        .trace(&tenant, &q.start, q.direction, q.limit)
        .await?;
    let read = start_read(&q.start)
        .query(params.pairs())
        .proven(&answer.proven);
    st.governance().record_read(&caller, &tenant, read).await?;
    Ok(Json(answer))
}

/// An environment and an instant.
pub struct ServedParams {
    env: String,
    at: Option<i64>,
}

impl QueryParams for ServedParams {
    const ALLOWED: &'static [&'static str] = &["env", "at"];

    fn from_params(q: &Params) -> ApiResult<Self> {
        let env = env_param(q.get("env"))?;
        let at = match q.get("at") {
            Some(t) => Some(parse_time("at", t).map_err(ApiError::validation)?),
            None => None,
        };
        Ok(Self { env, at })
    }
}

/// What served in an environment at a time (default now): the promotion, rollback or
/// retirement in force, the model version and its deployments there.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/served",
    params(("tenant" = String, Path),
        ("env" = String, Query, description = "Environment, e.g. production"),
        ("at" = Option<String>, Query, description = "RFC 3339 time (default: now)")),
    responses((status = 200, body = ev::ServedAnswer), (status = 400, body = custody_api::Problem), (status = 404, body = custody_api::Problem)))]
pub async fn served<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    TenantPath(tenant): TenantPath,
    Query { value: q, params }: Query<ServedParams>,
) -> ApiResult<Json<ev::ServedAnswer>> {
    let at = q.at.unwrap_or_else(now_micros);
    let answer = st.governance().served(&tenant, &q.env, at).await?;
    let read = ReadRecord::about("environment", q.env)
        .query(params.pairs())
        .proven(&answer.proven);
    st.governance().record_read(&caller, &tenant, read).await?;
    Ok(Json(answer))
}

/// The full record of a model version: registration, cards, approvals, promotions,
/// rollbacks, retirement, deployments, refusals.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/models/{version_hash}/history",
    params(("tenant" = String, Path), ("version_hash" = String, Path, description = "sha256:<hex>")),
    responses((status = 200, body = ev::HistoryAnswer), (status = 400, body = custody_api::Problem), (status = 404, body = custody_api::Problem)))]
pub async fn history<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    path: PathParam<VersionHash>,
    _: Query<()>,
) -> ApiResult<Json<ev::HistoryAnswer>> {
    let tenant = path.tenant;
    let hash = digest_param("version_hash", &path.value)?;
    let answer = st.governance().history(&tenant, &hash).await?;
    let read = ReadRecord::about("model_version", hash).proven(&answer.proven);
    st.governance().record_read(&caller, &tenant, read).await?;
    Ok(Json(answer))
}

/// Weights and an environment.
pub struct AdmitParams {
    digest: String,
    env: String,
}

impl QueryParams for AdmitParams {
    const ALLOWED: &'static [&'static str] = &["digest", "env"];

    fn from_params(q: &Params) -> ApiResult<Self> {
        let digest = match q.get("digest") {
            Some(d) => digest_param("digest", d)?,
            None => {
                return Err(ApiError::field(
                    "digest",
                    "is required: the version hash of the weights",
                ));
            }
        };
        Ok(Self {
            digest,
            env: env_param(q.get("env"))?,
        })
    }
}

/// The serving gate: may these weights serve in this environment now? `admitted` is true only
/// for the version the ledger says serves there, not retired, whose approvals satisfy the
/// policy in force; otherwise `missing` says why.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/admit",
    params(("tenant" = String, Path),
        ("digest" = String, Query, description = "Version hash of the weights (sha256:<hex>)"),
        ("env" = String, Query, description = "Environment")),
    responses((status = 200, body = ev::AdmitAnswer), (status = 400, body = custody_api::Problem), (status = 404, body = custody_api::Problem)))]
pub async fn admit<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    TenantPath(tenant): TenantPath,
    Query { value: q, params }: Query<AdmitParams>,
) -> ApiResult<Json<ev::AdmitAnswer>> {
    let answer = st.governance().admit(&tenant, &q.digest, &q.env).await?;
    let read = ReadRecord::about("model_version", q.digest)
        .query(params.pairs())
        .proven(&answer.proven);
    st.governance().record_read(&caller, &tenant, read).await?;
    Ok(Json(answer))
}

/// What an evidence pack is about, and how many inferences it may carry. Read only once the
/// caller has given a purpose, which a pack needs before anything else.
pub struct PackParams;

impl PackParams {
    fn scope(q: &Params) -> ApiResult<(PackScope, u32)> {
        let inferences = q.number("inferences")?.unwrap_or(1000).min(100_000) as u32;
        let scope = match (
            q.get("model"),
            q.get("request_id"),
            q.get("entry"),
            q.get("since"),
            q.get("until"),
        ) {
            (Some(m), None, None, None, None) => PackScope::Model(digest_param("model", m)?),
            (None, Some(r), None, None, None) => {
                PackScope::Inference(TraceStart::Request(r.clone()))
            }
            (None, None, Some(e), None, None) => PackScope::Inference(TraceStart::Id(
                e.parse()
                    .map_err(|_| ApiError::field("entry", "must be an entry id (a UUID)"))?,
            )),
            (None, None, None, Some(s), Some(u)) => {
                let since = parse_time("since", s).map_err(ApiError::validation)?;
                let until = parse_time("until", u).map_err(ApiError::validation)?;
                if since >= until {
                    return Err(ApiError::field("until", "must be after since"));
                }
                PackScope::Window(since, until)
            }
            _ => {
                return Err(ApiError::field(
                    "",
                    "say what the pack is about with exactly one of model=<version hash>, request_id=<id>, entry=<entry id>, or since=<time>&until=<time>",
                ));
            }
        };
        Ok((scope, inferences))
    }
}

impl QueryParams for PackParams {
    const ALLOWED: &'static [&'static str] = &[
        "model",
        "request_id",
        "entry",
        "since",
        "until",
        "inferences",
    ];

    fn from_params(_: &Params) -> ApiResult<Self> {
        Ok(Self)
    }
}

/// An evidence pack: entries with payloads, proofs, checkpoints, verifier keys and approver
/// keys, for a model version (`model`), an inference (`request_id` or `entry`) or a time window
/// (`since` and `until`).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/evidence",
    params(("tenant" = String, Path),
        ("model" = Option<String>, Query, description = "Version hash"),
        ("request_id" = Option<String>, Query, description = "Inference request id"),
        ("entry" = Option<String>, Query, description = "Entry id of an inference"),
        ("since" = Option<String>, Query, description = "Window start (RFC 3339)"),
        ("until" = Option<String>, Query, description = "Window end (RFC 3339)"),
        ("inferences" = Option<u32>, Query, description = "Window: most inference records to include (default 1000)")),
    responses((status = 200, body = ev::EvidencePack), (status = 400, body = custody_api::Problem), (status = 404, body = custody_api::Problem)))]
pub async fn evidence<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    TenantPath(tenant): TenantPath,
    query: Query<PackParams>,
) -> ApiResult<Json<ev::EvidencePack>> {
    if caller.purpose.is_none() {
        return Err(ApiError::field(
            "purpose",
            "is required for an evidence pack, which carries payloads: send the Custody-Purpose header or purpose=, e.g. purpose=regulator-request-2026-117",
        ));
    }
    let params = query.params;
    let (scope, inferences) = PackParams::scope(&params)?;
    let subject = match &scope {
        PackScope::Model(m) => ReadRecord::about("model_version", m.clone()),
        PackScope::Inference(start) => start_read(start),
        PackScope::Window(..) => ReadRecord::about(
            "window",
            format!(
                "{}/{}",
                params.get("since").map(String::as_str).unwrap_or(""),
                params.get("until").map(String::as_str).unwrap_or("")
            ),
        ),
    };
    let answer = st.governance().pack(&tenant, &scope, inferences).await?;
    st.governance()
        .record_read(
            &caller,
            &tenant,
            subject.query(params.pairs()).proven(&answer.proven),
        )
        .await?;
    Ok(Json(answer))
}
