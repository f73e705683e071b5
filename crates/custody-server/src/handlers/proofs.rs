//! Checkpoints, verifier keys and proofs: what a client needs to check what it was given.
//! Hashes and signatures only, so these reads are not access-logged.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use custody_api as api;
use custody_governance::Backend;

use crate::error::ApiResult;
use crate::extract::{EntryPath, LogPath, Params, Query, QueryParams};
use crate::state::AppState;

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

/// The C2SP tlog-proof of one entry: index, inclusion path and the latest signed checkpoint.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/entries/{index}/tlog-proof",
    params(("tenant" = String, Path), ("log" = String, Path), ("index" = u64, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = api::Problem)))]
pub async fn tlog_proof<S: Backend>(
    State(st): State<AppState<S>>,
    _: Query<()>,
    EntryPath { key, index }: EntryPath,
) -> ApiResult<Response> {
    Ok(text(st.ledger().tlog_proof(&key, index).await?.to_text()))
}

/// The latest signed checkpoint, byte-exact C2SP signed note.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/checkpoint",
    params(("tenant" = String, Path), ("log" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = api::Problem)))]
pub async fn checkpoint<S: Backend>(
    State(st): State<AppState<S>>,
    _: Query<()>,
    LogPath(key): LogPath,
) -> ApiResult<Response> {
    let mut resp = text(st.ledger().checkpoint(&key).await?.note);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Which inclusion proof.
pub struct InclusionParams {
    index: u64,
    size: Option<u64>,
}

impl QueryParams for InclusionParams {
    const ALLOWED: &'static [&'static str] = &["index", "size"];

    fn from_params(q: &Params) -> ApiResult<Self> {
        Ok(Self {
            index: q.required_number("index", "the entry's index")?,
            size: q.number("size")?,
        })
    }
}

/// RFC 9162 inclusion proof of `index` in the tree of `size` (default: latest checkpoint).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/proof/inclusion",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("index" = u64, Query), ("size" = Option<u64>, Query)),
    responses((status = 200, body = api::InclusionProof), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn inclusion<S: Backend>(
    State(st): State<AppState<S>>,
    LogPath(key): LogPath,
    Query { value: q, .. }: Query<InclusionParams>,
) -> ApiResult<Json<api::InclusionProof>> {
    let proof = st.ledger().inclusion_proof(&key, q.index, q.size).await?;
    Ok(Json(api::InclusionProof {
        index: proof.index,
        size: proof.size,
        leaf_hash: proof.leaf_hash.to_hex(),
        hashes: proof.hashes.iter().map(|h| h.to_base64()).collect(),
    }))
}

/// Which consistency proof.
pub struct ConsistencyParams {
    from: u64,
    to: u64,
}

impl QueryParams for ConsistencyParams {
    const ALLOWED: &'static [&'static str] = &["from", "to"];

    fn from_params(q: &Params) -> ApiResult<Self> {
        Ok(Self {
            from: q.required_number("from", "the older tree size")?,
            to: q.required_number("to", "the newer tree size")?,
        })
    }
}

/// RFC 9162 consistency proof between tree sizes `from` and `to`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/proof/consistency",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("from" = u64, Query), ("to" = u64, Query)),
    responses((status = 200, body = api::ConsistencyProof), (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn consistency<S: Backend>(
    State(st): State<AppState<S>>,
    LogPath(key): LogPath,
    Query { value: q, .. }: Query<ConsistencyParams>,
) -> ApiResult<Json<api::ConsistencyProof>> {
    let hashes = st.ledger().consistency_proof(&key, q.from, q.to).await?;
    Ok(Json(api::ConsistencyProof {
        from: q.from,
        to: q.to,
        hashes: hashes.iter().map(|h| h.to_base64()).collect(),
    }))
}

/// The log's C2SP verifier key string, to pin.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/logs/{log}/vkey",
    params(("tenant" = String, Path), ("log" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = api::Problem)))]
pub async fn vkey<S: Backend>(
    State(st): State<AppState<S>>,
    _: Query<()>,
    LogPath(key): LogPath,
) -> ApiResult<Response> {
    Ok(text(format!("{}\n", st.ledger().verifier_key(&key).await?)))
}
