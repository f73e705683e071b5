//! Routes and handlers of the `/v1` API, and the router that also serves every log as a
//! C2SP tiled log under `/tlog` (see `tiles.rs`).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use custody_api as api;
use custody_core::envelope::{EntryInput, LogName, TenantName, Timestamp};
use custody_core::jcs;
use custody_ledger::{AppendOutcome, EntryView, LogInfo};
use custody_store::{EntryFilter, LogKey};
use serde_json::Value;
use utoipa::OpenApi;

use crate::access::{Read, record_read};
use crate::auth::Caller;
use crate::{ApiError, AppState, Backend};

/// Largest request body: a JSON array or NDJSON stream of entries. Each envelope is further
/// limited to 65,535 canonical bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Most entries one append request may carry.
pub const MAX_ENTRIES_PER_REQUEST: usize = 100_000;

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The router with every route, for any storage backend.
pub fn router<S: Backend>(state: AppState<S>) -> Router {
    let log = "/v1/tenants/{tenant}/logs/{log}";
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/whoami", get(crate::principals::whoami))
        .route(
            "/v1/tenants",
            get(list_tenants::<S>).post(create_tenant::<S>),
        )
        .route("/v1/tenants/{tenant}/logs", get(list_logs::<S>))
        .route(
            &format!("{log}/entries"),
            get(list_entries::<S>).post(append::<S>),
        )
        .route(&format!("{log}/entries/{{index}}"), get(get_entry::<S>))
        .route(
            &format!("{log}/entries/{{index}}/tlog-proof"),
            get(tlog_proof::<S>),
        )
        .route(&format!("{log}/checkpoint"), get(checkpoint::<S>))
        .route(&format!("{log}/proof/inclusion"), get(inclusion::<S>))
        .route(&format!("{log}/proof/consistency"), get(consistency::<S>))
        .route(&format!("{log}/vkey"), get(vkey::<S>))
        .route(
            &format!("{log}/witness"),
            axum::routing::post(crate::integrity::witness::<S>),
        )
        .route(
            &format!("{log}/rotate-key"),
            axum::routing::post(crate::integrity::rotate_key::<S>),
        )
        .route(&format!("{log}/export"), get(export::<S>))
        .route("/v1/tenants/{tenant}/trace", get(crate::audit::trace::<S>))
        .route(
            "/v1/tenants/{tenant}/served",
            get(crate::audit::served::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/models/{version_hash}/history",
            get(crate::audit::history::<S>),
        )
        .route("/v1/tenants/{tenant}/admit", get(crate::audit::admit::<S>))
        .route(
            "/v1/tenants/{tenant}/evidence",
            get(crate::audit::evidence::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/principals",
            get(crate::principals::list_principals::<S>)
                .post(crate::principals::create_principal::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/principals/{principal}/tokens",
            get(crate::principals::list_tokens::<S>).post(crate::principals::issue_token::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/reconcile",
            axum::routing::post(crate::integrity::reconcile::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/erasures",
            axum::routing::post(crate::erasure::erase_subject::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/retention/apply",
            axum::routing::post(crate::erasure::apply_retention::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/tokens/{token}",
            axum::routing::delete(crate::principals::revoke_token::<S>),
        )
        .route(
            "/tlog/{tenant}/{log}/checkpoint",
            get(crate::tiles::checkpoint::<S>),
        )
        .route(
            "/tlog/{tenant}/{log}/tile/{level}/{*index}",
            get(crate::tiles::hash_tile::<S>),
        )
        .route(
            "/tlog/{tenant}/{log}/tile/entries/{*index}",
            get(crate::tiles::entry_bundle::<S>),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authorize::<S>,
        ))
        .fallback(|| async { ApiError::not_found("no such route; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::map_response(
            crate::problem::ensure_problem,
        ))
        .with_state(state)
}

/// The OpenAPI 3 document, generated from the handlers and wire types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "custody",
        description = "A per-tenant, append-only, verifiable ledger of ML governance evidence. Proofs follow RFC 9162; checkpoints are C2SP signed notes."
    ),
    paths(
        healthz,
        openapi_json,
        crate::principals::whoami,
        create_tenant,
        list_tenants,
        list_logs,
        append,
        list_entries,
        get_entry,
        tlog_proof,
        checkpoint,
        inclusion,
        consistency,
        vkey,
        export,
        crate::audit::trace,
        crate::audit::served,
        crate::audit::history,
        crate::audit::admit,
        crate::audit::evidence,
        crate::principals::create_principal,
        crate::principals::list_principals,
        crate::principals::issue_token,
        crate::principals::list_tokens,
        crate::principals::revoke_token,
        crate::erasure::erase_subject,
        crate::erasure::apply_retention,
        crate::integrity::reconcile,
        crate::integrity::witness,
        crate::integrity::rotate_key,
        crate::tiles::checkpoint,
        crate::tiles::hash_tile,
        crate::tiles::entry_bundle
    ),
    components(schemas(
        api::Problem,
        api::ProblemField,
        api::CreateTenant,
        api::Tenant,
        api::TenantList,
        api::LogDescription,
        api::LogList,
        api::EntrySubmission,
        api::AppendResult,
        api::AppendResults,
        api::EntryRecord,
        api::EntryList,
        api::PayloadStatus,
        api::InclusionProof,
        api::ConsistencyProof,
        api::ExportedLeaf,
        api::Health,
        api::RecordedRefusal,
        api::evidence::ProvenEntry,
        api::evidence::LogCheckpoint,
        api::evidence::EvidenceLink,
        api::evidence::GateGap,
        api::evidence::GateRuleView,
        api::evidence::Proven,
        api::evidence::TraceAnswer,
        api::evidence::ServedAnswer,
        api::evidence::ServingChangeView,
        api::evidence::HistoryAnswer,
        api::evidence::AdmitAnswer,
        api::evidence::SecurityNotice,
        api::evidence::EvidencePack,
        api::evidence::ApproverKeyView,
        api::CreatePrincipal,
        api::CreatedPrincipal,
        api::PrincipalInfo,
        api::PrincipalList,
        api::IssueToken,
        api::IssuedToken,
        api::TokenInfo,
        api::TokenList,
        api::WhoAmI,
        api::EraseRequest,
        api::RetentionApply,
        api::ErasedEntry,
        api::ErasureReport,
        api::LogAuditReport,
        api::ReconcileReport,
        api::WitnessAnswer,
        api::KeyRotation
    )),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the bearer-token scheme every non-public route uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token, cst_<id>_<secret>; see docs/ACCESS.md for which roles each route needs",
                    ))
                    .build(),
            ),
        );
        doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// This document: the OpenAPI 3 description of every route, generated from the code.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    Json(openapi()).into_response()
}

/// Liveness: 200 once the server accepts requests.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = api::Health)))]
async fn healthz() -> Json<api::Health> {
    Json(api::Health {
        status: "ok".into(),
    })
}

pub(crate) fn tenant_name(s: &str) -> ApiResult<TenantName> {
    TenantName::parse(s).map_err(ApiError::validation)
}

pub(crate) fn log_key(tenant: &str, log: &str) -> ApiResult<LogKey> {
    let tenant = tenant_name(tenant)?;
    let log = LogName::parse(log).map_err(|_| {
        ApiError::not_found(format!(
            "no log {log:?}: each tenant has governance, inference and access"
        ))
    })?;
    Ok(LogKey { tenant, log })
}

fn describe(info: &LogInfo) -> api::LogDescription {
    api::LogDescription {
        name: info.record.key.log.as_str().into(),
        origin: info.record.origin.clone(),
        size: info.checkpoint.size,
        root: info.checkpoint.root.to_base64(),
        verifier_key: info.record.verifier_key.clone(),
    }
}

/// Reads a body up to `limit`, answering 413 beyond it.
pub(crate) async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))
}

pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub(crate) fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    jcs::parse_strict(bytes).map_err(|e| ApiError::malformed(e.to_string()))
}

/// Query parameters, refusing any the route does not know.
pub(crate) fn query(raw: Option<String>, allowed: &[&str]) -> ApiResult<HashMap<String, String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::field("query", format!("malformed query string: {e}")))?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        // The reason for a read, taken by the access layer for every route.
        if k == "purpose" {
            continue;
        }
        if !allowed.contains(&k.as_str()) {
            let hint = if allowed.is_empty() {
                "this route takes no query parameters".to_string()
            } else {
                format!("unknown query parameter; allowed: {}", allowed.join(", "))
            };
            return Err(ApiError::field(&k, hint));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(ApiError::field(&k, "given more than once"));
        }
    }
    Ok(out)
}

pub(crate) fn number(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<u64>> {
    q.get(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::field(name, format!("{v:?} is not a non-negative integer")))
        })
        .transpose()
}

fn index_param(s: &str) -> ApiResult<u64> {
    s.parse::<u64>()
        .map_err(|_| ApiError::field("index", format!("{s:?} is not a non-negative integer")))
}

fn text(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(api::TEXT_PLAIN),
        )],
        body,
    )
        .into_response()
}

/// Creates a tenant and its three logs (governance, inference, access), each with a new key.
#[utoipa::path(post, path = "/v1/tenants", request_body = api::CreateTenant,
    responses((status = 201, body = api::Tenant), (status = 400, body = api::Problem), (status = 409, body = api::Problem)))]
async fn create_tenant<S: Backend>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let ct = content_type(&headers);
    if ct != "application/json" {
        return Err(ApiError::unsupported_media_type(&ct));
    }
    let value = parse_json(&read_body(body, 4096).await?)?;
    let name = match value.get("name") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(ApiError::field(
                "name",
                "is required: a tenant name such as \"acme\"",
            ));
        }
    };
    if let Some(k) = value
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "name"))
    {
        return Err(ApiError::field(k, "unknown field; allowed: name"));
    }
    let tenant = TenantName::parse(&name).map_err(|e| {
        ApiError::validation(custody_core::envelope::ValidationError {
            errors: e
                .errors
                .into_iter()
                .map(|mut f| {
                    f.field = "name".into();
                    f
                })
                .collect(),
        })
    })?;
    let logs = st.ledger.create_tenant(&tenant).await?;
    let body = api::Tenant {
        name: tenant.to_string(),
        logs: logs.iter().map(describe).collect(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Lists the tenants the caller may see: all of them for a server administrator, its own
/// otherwise.
#[utoipa::path(get, path = "/v1/tenants", responses((status = 200, body = api::TenantList)))]
async fn list_tenants<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<api::TenantList>> {
    let tenants = st.ledger.tenants().await?;
    Ok(Json(api::TenantList {
        tenants: tenants
            .into_iter()
            .filter(|t| caller.principal.scope.covers(t.as_str()))
            .map(String::from)
            .collect(),
    }))
}

/// Lists a tenant's logs with origin, size, root and verifier key.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = api::LogList), (status = 404, body = api::Problem)))]
async fn list_logs<S: Backend>(
    State(st): State<AppState<S>>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::LogList>> {
    query(raw, &[])?;
    let tenant = tenant_name(&tenant)?;
    let logs = st.ledger.logs(&tenant).await?;
    Ok(Json(api::LogList {
        logs: logs.iter().map(describe).collect(),
    }))
}

fn result(outcome: &AppendOutcome) -> Vec<api::AppendResult> {
    outcome
        .results
        .iter()
        .map(|a| api::AppendResult {
            index: a.index,
            leaf_hash: a.leaf_hash.to_hex(),
            id: a.id.to_string(),
            checkpoint_size: outcome.checkpoint_size,
            existing: a.existing,
            security: None,
        })
        .collect()
}

fn caller_actor(caller: &Caller) -> Value {
    serde_json::json!({"kind": caller.principal.kind.as_str(), "id": caller.principal.id})
}

/// Validates every entry of a request, naming fields by their position when there are many.
/// The actor is the caller: filled in when absent, refused when it names someone else.
fn inputs(values: Vec<Value>, many: bool, caller: &Caller) -> ApiResult<Vec<EntryInput>> {
    if values.is_empty() {
        return Err(ApiError::field("", "no entries: send at least one"));
    }
    if values.len() > MAX_ENTRIES_PER_REQUEST {
        return Err(ApiError::field(
            "",
            format!("at most {MAX_ENTRIES_PER_REQUEST} entries per request; split the upload"),
        ));
    }
    let me = caller_actor(caller);
    let mut out = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (i, mut v) in values.into_iter().enumerate() {
        let at = |e: custody_core::envelope::ValidationError| if many { e.at_item(i) } else { e };
        if let Value::Object(o) = &mut v
            && !o.contains_key("actor")
        {
            o.insert("actor".into(), me.clone());
        }
        match EntryInput::from_json(&v) {
            Ok(input)
                if input.actor.id != caller.principal.id
                    || input.actor.kind.as_str() != caller.principal.kind.as_str() =>
            {
                errors.extend(
                    at(custody_core::envelope::ValidationError::one(
                        "actor",
                        format!("must be the caller, {me}: omit actor and custody fills it in"),
                    ))
                    .errors,
                );
            }
            Ok(input) => out.push(input),
            Err(e) => errors.extend(at(e).errors),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::validation(
            custody_core::envelope::ValidationError { errors },
        ))
    }
}

/// Refuses entries whose type needs a role the caller lacks, and approver keys registered for
/// someone who is not an approver of the tenant.
async fn check_entry_roles<S: Backend>(
    st: &AppState<S>,
    caller: &Caller,
    tenant: &TenantName,
    inputs: &[EntryInput],
) -> ApiResult<()> {
    use custody_auth::Gate;
    let many = inputs.len() > 1;
    for (i, input) in inputs.iter().enumerate() {
        let action = custody_auth::entry_action(&input.entry_type);
        if let Gate::Roles(roles) = action.gate()
            && !caller.principal.may(tenant.as_str(), roles)
        {
            let at = if many {
                format!("[{i}] ")
            } else {
                String::new()
            };
            return Err(ApiError::forbidden(format!(
                "{at}{} entries need the role {}; this principal has {}",
                input.entry_type,
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                caller.principal.roles.to_csv()
            )));
        }
        if input.entry_type == "approver_key.registered" {
            let approver = &input.subject.id;
            let is_approver = st
                .auth
                .principal_in(tenant.as_str(), approver)
                .await
                .is_ok_and(|p| p.roles.has(custody_auth::Role::Approver));
            if !is_approver {
                let field = if many {
                    format!("[{i}].subject.id")
                } else {
                    "subject.id".into()
                };
                return Err(ApiError::field(
                    &field,
                    format!(
                        "{approver:?} is not a principal of tenant {tenant} with the approver role: create one with `custody principal create --role approver` and register the key for its id"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Appends one entry (a JSON object), several atomically (a JSON array), or a bulk NDJSON
/// stream (also atomic). Answers 201 once the entries are durable and covered by a signed
/// checkpoint.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/logs/{log}/entries",
    params(("tenant" = String, Path), ("log" = String, Path, description = "governance, inference or access")),
    request_body(content = api::EntrySubmission, description = "One entry, a JSON array of entries, or NDJSON (application/x-ndjson)"),
    responses(
        (status = 201, description = "Appended (an array or NDJSON answers AppendResults)", body = api::AppendResult),
        (status = 200, description = "Every entry was already logged with the same content: an idempotent retry", body = api::AppendResult),
        (status = 400, body = api::Problem), (status = 404, body = api::Problem),
        (status = 409, description = "An id was reused with different content", body = api::Problem),
        (status = 413, body = api::Problem), (status = 415, body = api::Problem),
        (status = 503, body = api::Problem)))]
async fn append<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path((tenant, log)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let key = log_key(&tenant, &log)?;
    if key.log == LogName::Access {
        return Err(ApiError::forbidden(
            "the access log is written by custody only: it records reads and refusals itself",
        ));
    }
    let ct = content_type(&headers);
    let (values, single) = match ct.as_str() {
        "application/json" => match parse_json(&read_body(body, MAX_BODY_BYTES).await?)? {
            Value::Array(items) => (items, false),
            v @ Value::Object(_) => (vec![v], true),
            _ => {
                return Err(ApiError::field(
                    "",
                    "send an entry object or an array of entry objects",
                ));
            }
        },
        "application/x-ndjson" => {
            let bytes = read_body(body, MAX_BODY_BYTES).await?;
            let mut values = Vec::new();
            for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                values.push(
                    jcs::parse_strict(line)
                        .map_err(|e| ApiError::malformed(format!("line {}: {e}", n + 1)))?,
                );
            }
            (values, false)
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    let inputs = inputs(values, !single, &caller)?;
    check_entry_roles(&st, &caller, &key.tenant, &inputs).await?;
    let ingested = st.governance.append(&key, inputs).await?;
    let outcome = ingested.outcome;
    let mut results = result(&outcome);
    for (r, notice) in results.iter_mut().zip(ingested.notices) {
        r.security = notice;
    }
    // A retry that created nothing is not a creation.
    let status = if results.iter().all(|r| r.existing) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let resp = if single {
        (status, Json(results.remove(0))).into_response()
    } else {
        (
            status,
            Json(api::AppendResults {
                results,
                checkpoint_size: outcome.checkpoint_size,
            }),
        )
            .into_response()
    };
    Ok(resp)
}

/// An entry as returned; its payload only when the caller gave a purpose.
fn record(v: EntryView, with_payload: bool) -> api::EntryRecord {
    let commitment = v.envelope.get("payload_commitment").is_some();
    let (payload_status, payload, salt) = match v.payload {
        Some(_) if !with_payload => (api::PayloadStatus::Withheld, None, None),
        Some((p, s)) => (api::PayloadStatus::Present, Some(p), Some(s.to_hex())),
        None if commitment => (api::PayloadStatus::Erased, None, None),
        None => (api::PayloadStatus::None, None, None),
    };
    api::EntryRecord {
        index: v.index,
        leaf_hash: v.leaf_hash.to_hex(),
        envelope: v.envelope,
        payload_status,
        payload,
        salt,
    }
}

/// Lists entries matching every given filter, in index order, one page at a time. Payloads
/// are included only when a purpose is given.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/entries",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("type" = Option<String>, Query, description = "Exact entry type"),
        ("actor" = Option<String>, Query, description = "Exact actor id"),
        ("subject" = Option<String>, Query, description = "Exact subject id"),
        ("related" = Option<String>, Query, description = "An id among the related links"),
        ("since" = Option<String>, Query, description = "RFC 3339: time >= since"),
        ("until" = Option<String>, Query, description = "RFC 3339: time < until"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-1000 (default 100)")),
    responses((status = 200, body = api::EntryList), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
async fn list_entries<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path((tenant, log)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::EntryList>> {
    let key = log_key(&tenant, &log)?;
    let q = query(
        raw,
        &[
            "type", "actor", "subject", "related", "since", "until", "cursor", "limit",
        ],
    )?;
    let time = |name: &str| -> ApiResult<Option<i64>> {
        q.get(name)
            .map(|v| {
                Timestamp::parse(v)
                    .map(|t| t.unix_micros())
                    .ok_or_else(|| ApiError::field(name, format!("{v:?} is not an RFC 3339 time")))
            })
            .transpose()
    };
    let limit = match number(&q, "limit")? {
        None => 100,
        Some(l) if (1..=u64::from(custody_ledger::MAX_PAGE)).contains(&l) => l as u32,
        Some(l) => {
            return Err(ApiError::field(
                "limit",
                format!("{l} is out of range: use 1 to {}", custody_ledger::MAX_PAGE),
            ));
        }
    };
    let filter = EntryFilter {
        entry_type: q.get("type").cloned(),
        actor_id: q.get("actor").cloned(),
        subject_id: q.get("subject").cloned(),
        related_id: q.get("related").cloned(),
        since_micros: time("since")?,
        until_micros: time("until")?,
        from_index: number(&q, "cursor")?.unwrap_or(0),
        below_index: 0,
        limit,
    };
    let page = st.ledger.list(&key, filter).await?;
    let entries: Vec<api::EntryRecord> = page
        .entries
        .into_iter()
        .map(|v| record(v, caller.purpose.is_some()))
        .collect();
    let read = Read::about("log", key.log.as_str())
        .query(&q)
        .entries(key.log, &entries);
    record_read(&st, &caller, &key.tenant, read).await?;
    Ok(Json(api::EntryList {
        entries,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
        checkpoint_size: page.checkpoint_size,
    }))
}

/// One entry: envelope, leaf hash, and payload with salt when present and a purpose is given
/// (`Custody-Purpose` header or `purpose` parameter); without a purpose the payload is
/// `withheld`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/entries/{index}",
    params(("tenant" = String, Path), ("log" = String, Path), ("index" = u64, Path)),
    responses((status = 200, body = api::EntryRecord), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
async fn get_entry<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path((tenant, log, index)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::EntryRecord>> {
    query(raw, &[])?;
    let key = log_key(&tenant, &log)?;
    let index = index_param(&index)?;
    let entry = record(
        st.ledger.entry(&key, index).await?,
        caller.purpose.is_some(),
    );
    let id = entry
        .envelope
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let read = Read::about("entry", id).entries(key.log, std::slice::from_ref(&entry));
    record_read(&st, &caller, &key.tenant, read).await?;
    Ok(Json(entry))
}

/// The C2SP tlog-proof of one entry: index, inclusion path and the latest signed checkpoint.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/entries/{index}/tlog-proof",
    params(("tenant" = String, Path), ("log" = String, Path), ("index" = u64, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = api::Problem)))]
async fn tlog_proof<S: Backend>(
    State(st): State<AppState<S>>,
    Path((tenant, log, index)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    query(raw, &[])?;
    let key = log_key(&tenant, &log)?;
    let index = index_param(&index)?;
    Ok(text(st.ledger.tlog_proof(&key, index).await?.to_text()))
}

/// The latest signed checkpoint, byte-exact C2SP signed note.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/checkpoint",
    params(("tenant" = String, Path), ("log" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = api::Problem)))]
async fn checkpoint<S: Backend>(
    State(st): State<AppState<S>>,
    Path((tenant, log)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    query(raw, &[])?;
    let key = log_key(&tenant, &log)?;
    let mut resp = text(st.ledger.checkpoint(&key).await?.note);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// RFC 9162 inclusion proof of `index` in the tree of `size` (default: latest checkpoint).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/proof/inclusion",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("index" = u64, Query), ("size" = Option<u64>, Query)),
    responses((status = 200, body = api::InclusionProof), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
async fn inclusion<S: Backend>(
    State(st): State<AppState<S>>,
    Path((tenant, log)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::InclusionProof>> {
    let key = log_key(&tenant, &log)?;
    let q = query(raw, &["index", "size"])?;
    let index = number(&q, "index")?
        .ok_or_else(|| ApiError::field("index", "is required: the entry's index"))?;
    let proof = st
        .ledger
        .inclusion_proof(&key, index, number(&q, "size")?)
        .await?;
    Ok(Json(api::InclusionProof {
        index: proof.index,
        size: proof.size,
        leaf_hash: proof.leaf_hash.to_hex(),
        hashes: proof.hashes.iter().map(|h| h.to_base64()).collect(),
    }))
}

/// RFC 9162 consistency proof between tree sizes `from` and `to`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/proof/consistency",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("from" = u64, Query), ("to" = u64, Query)),
    responses((status = 200, body = api::ConsistencyProof), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
async fn consistency<S: Backend>(
    State(st): State<AppState<S>>,
    Path((tenant, log)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::ConsistencyProof>> {
    let key = log_key(&tenant, &log)?;
    let q = query(raw, &["from", "to"])?;
    let from = number(&q, "from")?
        .ok_or_else(|| ApiError::field("from", "is required: the older tree size"))?;
    let to = number(&q, "to")?
        .ok_or_else(|| ApiError::field("to", "is required: the newer tree size"))?;
    let hashes = st.ledger.consistency_proof(&key, from, to).await?;
    Ok(Json(api::ConsistencyProof {
        from,
        to,
        hashes: hashes.iter().map(|h| h.to_base64()).collect(),
    }))
}

/// The log's C2SP verifier key string, to pin.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/vkey",
    params(("tenant" = String, Path), ("log" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = api::Problem)))]
async fn vkey<S: Backend>(
    State(st): State<AppState<S>>,
    Path((tenant, log)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    query(raw, &[])?;
    let key = log_key(&tenant, &log)?;
    Ok(text(format!("{}\n", st.ledger.verifier_key(&key).await?)))
}

/// Most leaves one export request returns; page with `from`.
pub const MAX_EXPORT_PAGE: u64 = 10_000;

/// Leaves `[from, to)` as stored (NDJSON of `ExportedLeaf`), bounded by the latest checkpoint
/// and at most 10,000 per request: the raw material of `custody verify`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/export",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("from" = u64, Query), ("to" = u64, Query)),
    responses((status = 200, content_type = "application/x-ndjson", body = api::ExportedLeaf), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
async fn export<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path((tenant, log)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    use base64ct::{Base64, Encoding};
    let key = log_key(&tenant, &log)?;
    let q = query(raw, &["from", "to"])?;
    let from = number(&q, "from")?
        .ok_or_else(|| ApiError::field("from", "is required: the first index"))?;
    let to = number(&q, "to")?
        .ok_or_else(|| ApiError::field("to", "is required: one past the last index"))?;
    let size = st.ledger.checkpoint(&key).await?.size;
    if from > to || to > size {
        return Err(ApiError::field(
            "to",
            format!("range {from}..{to} is not within the log's {size} entries"),
        ));
    }
    if to - from > MAX_EXPORT_PAGE {
        return Err(ApiError::field(
            "to",
            format!("at most {MAX_EXPORT_PAGE} leaves per request; page with from"),
        ));
    }
    let entries = st.ledger.export(&key, from, to).await?;
    let mut read = Read::about("log", key.log.as_str()).query(&q);
    read.returned = entries
        .iter()
        .map(|e| {
            (
                key.log.as_str().to_owned(),
                e.id.to_string(),
                e.leaf_hash.to_hex(),
            )
        })
        .collect();
    record_read(&st, &caller, &key.tenant, read).await?;
    let mut out = Vec::with_capacity(entries.len() * 512);
    for e in entries {
        let line = api::ExportedLeaf {
            index: e.index,
            recorded_leaf_hash: e.leaf_hash.to_hex(),
            leaf_data: Base64::encode_string(&e.envelope),
        };
        serde_json::to_writer(&mut out, &line)
            .map_err(|e| ApiError::from(custody_ledger::LedgerError::Corrupt(e.to_string())))?;
        out.push(b'\n');
    }
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(api::NDJSON))],
        out,
    )
        .into_response())
}
