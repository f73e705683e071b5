//! Erasure routes: a data-subject request, and applying the retention policy. Both are
//! admin-only; the data subject's identifier is matched against payloads and never logged or
//! recorded.

use axum::extract::State;
use axum::{Extension, Json};
use custody_api as api;
use custody_core::envelope::TenantName;
use custody_governance::{Backend, Caller, ErasedPayload, ErasureScope};

use crate::error::ApiResult;
use crate::extract::{JsonBody, TenantPath};
use crate::state::{AppState, now_micros};

/// Runs an erasure as the caller and reports what it erased.
async fn run<S: Backend>(
    st: &AppState<S>,
    caller: &Caller,
    tenant: &TenantName,
    scope: &ErasureScope,
    legal_basis: &str,
    dry_run: bool,
) -> ApiResult<Json<api::ErasureReport>> {
    let erased = st
        .governance()
        .erase(tenant, scope, legal_basis, &caller.actor(), dry_run)
        .await?;
    tracing::info!(tenant = %tenant, erased = erased.len(), dry_run, scope = ?scope, "payloads erased");
    Ok(Json(report(dry_run, erased)))
}

fn report(dry_run: bool, erased: Vec<ErasedPayload>) -> api::ErasureReport {
    api::ErasureReport {
        dry_run,
        erased: erased
            .into_iter()
            .map(|e| api::ErasedEntry {
                log: e.log.as_str().into(),
                index: e.index,
                id: e.id.to_string(),
                entry_type: e.entry_type,
                record_index: e.record,
            })
            .collect(),
    }
}

/// Erases every payload that names a data subject, in every log of the tenant, recording
/// each erasure (`entry.payload_erased`, with the legal basis and reference) in the erased
/// entry's log. Envelopes, checkpoints and proofs are untouched; the payload bytes leave the
/// database file.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/erasures", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = api::EraseRequest,
    responses((status = 200, body = api::ErasureReport), (status = 400, body = api::Problem),
        (status = 401, body = api::Problem), (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn erase_subject<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<api::EraseRequest>,
) -> ApiResult<Json<api::ErasureReport>> {
    let scope = ErasureScope::DataSubject {
        subject: req.data_subject,
        reference: req.reference,
    };
    run(&st, &caller, &tenant, &scope, &req.legal_basis, req.dry_run).await
}

/// Erases the payloads older than their type's retention period (the tenant's latest
/// `retention.updated`; seven years by default), recording each erasure.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/retention/apply", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = api::RetentionApply,
    responses((status = 200, body = api::ErasureReport), (status = 400, body = api::Problem),
        (status = 401, body = api::Problem), (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn apply_retention<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<api::RetentionApply>,
) -> ApiResult<Json<api::ErasureReport>> {
    let scope = ErasureScope::Retention {
        now_micros: now_micros(),
    };
    run(&st, &caller, &tenant, &scope, &req.legal_basis, req.dry_run).await
}
