//! Principals and tokens: who may call custody. Every change is made, and recorded in the
//! tenant's governance log, by the evidence service.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use custody_api as api;
use custody_auth::{IssuedToken, NewPrincipal, PrincipalView, TokenView};
use custody_core::envelope::Timestamp;
use custody_governance::{Backend, Caller};

use crate::error::ApiResult;
use crate::extract::{JsonBody, PathParam, PrincipalId, Query, TenantPath, TokenId};
use crate::state::{AppState, now_micros};

fn rfc3339(micros: i64) -> String {
    Timestamp::from_unix_micros(micros)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn principal_info(p: &PrincipalView) -> api::PrincipalInfo {
    api::PrincipalInfo {
        id: p.id.clone(),
        tenant: p.tenant.clone(),
        kind: p.kind.as_str().into(),
        name: p.name.clone(),
        roles: p.roles.list().iter().map(|r| r.as_str().into()).collect(),
        created: rfc3339(p.created_micros),
    }
}

fn token_info(t: &TokenView) -> api::TokenInfo {
    api::TokenInfo {
        id: t.id.clone(),
        principal: t.principal_id.clone(),
        created: rfc3339(t.created_micros),
        expires: rfc3339(t.expires_micros),
        revoked: t.revoked_micros.map(rfc3339),
    }
}

fn issued(t: &IssuedToken) -> api::IssuedToken {
    api::IssuedToken {
        token: t.token.expose(),
        info: token_info(&t.view),
    }
}

/// Who the presented token belongs to.
#[utoipa::path(get, path = "/v1/whoami", security(("bearer" = [])),
    responses((status = 200, body = api::WhoAmI), (status = 401, body = api::Problem)))]
pub async fn whoami(
    Extension(caller): Extension<Caller>,
    _: Query<()>,
) -> ApiResult<Json<api::WhoAmI>> {
    let p = &caller.principal;
    Ok(Json(api::WhoAmI {
        principal: p.id.clone(),
        kind: p.kind.as_str().into(),
        tenant: p.scope.tenant().map(str::to_owned),
        roles: p.roles.list().iter().map(|r| r.as_str().into()).collect(),
        token: p.token_id.clone(),
    }))
}

/// Creates a principal in the tenant and issues its first token (shown once).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/principals", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = api::CreatePrincipal,
    responses((status = 201, body = api::CreatedPrincipal), (status = 400, body = api::Problem),
        (status = 401, body = api::Problem), (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn create_principal<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<api::CreatePrincipal>,
) -> ApiResult<Response> {
    let (principal, token) = st
        .governance()
        .create_principal(
            &caller,
            &tenant,
            NewPrincipal {
                kind: req.kind,
                name: req.name,
                roles: req.roles,
            },
            req.expires_in_days,
            now_micros(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::CreatedPrincipal {
            principal: principal_info(&principal),
            token: issued(&token),
        }),
    )
        .into_response())
}

/// The tenant's principals.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/principals", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = api::PrincipalList), (status = 401, body = api::Problem), (status = 403, body = api::Problem)))]
pub async fn list_principals<S: Backend>(
    State(st): State<AppState<S>>,
    _: Query<()>,
    TenantPath(tenant): TenantPath,
) -> ApiResult<Json<api::PrincipalList>> {
    let list = st.governance().principals(&tenant).await?;
    Ok(Json(api::PrincipalList {
        principals: list.iter().map(principal_info).collect(),
    }))
}

/// Issues another token to a principal of the tenant (shown once).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/principals/{principal}/tokens", security(("bearer" = [])),
    params(("tenant" = String, Path), ("principal" = String, Path)), request_body = api::IssueToken,
    responses((status = 201, body = api::IssuedToken), (status = 400, body = api::Problem),
        (status = 401, body = api::Problem), (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn issue_token<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    path: PathParam<PrincipalId>,
    JsonBody(req): JsonBody<api::IssueToken>,
) -> ApiResult<Response> {
    let token = st
        .governance()
        .issue_token(
            &caller,
            &path.tenant,
            &path.value,
            req.expires_in_days,
            now_micros(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(issued(&token))).into_response())
}

/// A principal's tokens (never their secrets).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/principals/{principal}/tokens", security(("bearer" = [])),
    params(("tenant" = String, Path), ("principal" = String, Path)),
    responses((status = 200, body = api::TokenList), (status = 401, body = api::Problem),
        (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn list_tokens<S: Backend>(
    State(st): State<AppState<S>>,
    _: Query<()>,
    path: PathParam<PrincipalId>,
) -> ApiResult<Json<api::TokenList>> {
    let tokens = st.governance().tokens(&path.tenant, &path.value).await?;
    Ok(Json(api::TokenList {
        tokens: tokens.iter().map(token_info).collect(),
    }))
}

/// Revokes a token at once. An admin may revoke any token of the tenant; anyone may revoke
/// their own.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/tokens/{token}", security(("bearer" = [])),
    params(("tenant" = String, Path), ("token" = String, Path, description = "The token's public id")),
    responses((status = 200, body = api::TokenInfo), (status = 401, body = api::Problem),
        (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn revoke_token<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    _: Query<()>,
    path: PathParam<TokenId>,
) -> ApiResult<Json<api::TokenInfo>> {
    let view = st
        .governance()
        .revoke_token(&caller, &path.tenant, &path.value, now_micros())
        .await?;
    Ok(Json(token_info(&view)))
}
