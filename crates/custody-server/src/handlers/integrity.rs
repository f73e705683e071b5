//! Tamper evidence beyond proofs, on request: deep reconciliation of a tenant's logs, the
//! witness check of a checkpoint a client holds, and key rotation. The evidence service does
//! the work and records what it finds.

use axum::extract::State;
use axum::{Extension, Json};
use custody_api as api;
use custody_governance::{Backend, Caller};

use crate::error::ApiResult;
use crate::extract::{LogPath, Query, TenantPath, TextBody};
use crate::state::AppState;

/// Deep-verifies the tenant's logs from storage now: every leaf hash recomputed from its
/// envelope, every stored tree node from the leaves, every payload commitment reopened, every
/// checkpoint's signature and root checked. Problems are also recorded as
/// `security.integrity_failure`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/reconcile", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = api::ReconcileReport), (status = 401, body = api::Problem),
        (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn reconcile<S: Backend>(
    State(st): State<AppState<S>>,
    _: Query<()>,
    TenantPath(tenant): TenantPath,
) -> ApiResult<Json<api::ReconcileReport>> {
    Ok(Json(st.governance().reconcile(&tenant).await?))
}

/// A witness's check: send a checkpoint of this log you hold (the C2SP signed note, as
/// text/plain); the answer proves the log's latest checkpoint extends it. If the log cannot
/// (your checkpoint's root differs from the log's tree at that size, or is beyond it), the
/// answer is 409 and a `security.fork_detected` event is recorded.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/logs/{log}/witness", security(("bearer" = [])),
    params(("tenant" = String, Path), ("log" = String, Path)),
    request_body(content = String, content_type = "text/plain", description = "A signed checkpoint of this log"),
    responses((status = 200, body = api::WitnessAnswer), (status = 400, body = api::Problem),
        (status = 409, description = "The log does not extend the checkpoint", body = api::Problem)))]
pub async fn witness<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    LogPath(key): LogPath,
    TextBody(note): TextBody<{ 8 * 1024 }>,
) -> ApiResult<Json<api::WitnessAnswer>> {
    Ok(Json(st.governance().witness(&caller, &key, &note).await?))
}

/// Switches the log to a new signing key. The change is announced by a `key.rotated` entry
/// (old and new verifier keys) committed alone and signed with the old key, so anyone who
/// pinned the old key can prove the new one; every later checkpoint is signed with the new
/// key. Old checkpoints stay verifiable with the old key.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/logs/{log}/rotate-key", security(("bearer" = [])),
    params(("tenant" = String, Path), ("log" = String, Path)),
    responses((status = 200, body = api::KeyRotation), (status = 401, body = api::Problem),
        (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn rotate_key<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    _: Query<()>,
    LogPath(key): LogPath,
) -> ApiResult<Json<api::KeyRotation>> {
    let r = st.governance().rotate_key(&caller, &key).await?;
    Ok(Json(api::KeyRotation {
        log: key.log.as_str().into(),
        index: r.index,
        old_verifier_key: r.old_key,
        new_verifier_key: r.new_key,
    }))
}
