//! Tenants and their logs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use custody_api as api;
use custody_core::envelope::TenantName;
use custody_governance::{Backend, Caller};
use custody_ledger::LogInfo;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Query, TenantPath, renamed};
use crate::state::AppState;

fn describe(info: &LogInfo) -> api::LogDescription {
    api::LogDescription {
        name: info.record.key.log.as_str().into(),
        origin: info.record.origin.clone(),
        size: info.checkpoint.size,
        root: info.checkpoint.root.to_base64(),
        verifier_key: info.record.verifier_key.clone(),
    }
}

/// Creates a tenant and its three logs (governance, inference, access), each with a new key.
#[utoipa::path(post, path = "/v1/tenants", request_body = api::CreateTenant,
    responses((status = 201, body = api::Tenant), (status = 400, body = api::Problem), (status = 409, body = api::Problem)))]
pub async fn create_tenant<S: Backend>(
    State(st): State<AppState<S>>,
    JsonBody(value): JsonBody<Value, 4096>,
) -> ApiResult<Response> {
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
    let tenant = TenantName::parse(&name).map_err(|e| renamed(e, "name"))?;
    let logs = st.governance().create_tenant(&tenant).await?;
    let body = api::Tenant {
        name: tenant.to_string(),
        logs: logs.iter().map(describe).collect(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Lists the tenants the caller may see: all of them for a server administrator, its own
/// otherwise.
#[utoipa::path(get, path = "/v1/tenants", responses((status = 200, body = api::TenantList)))]
pub async fn list_tenants<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<api::TenantList>> {
    let tenants = st.ledger().tenants().await?;
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
pub async fn list_logs<S: Backend>(
    State(st): State<AppState<S>>,
    _: Query<()>,
    TenantPath(tenant): TenantPath,
) -> ApiResult<Json<api::LogList>> {
    let logs = st.ledger().logs(&tenant).await?;
    Ok(Json(api::LogList {
        logs: logs.iter().map(describe).collect(),
    }))
}
