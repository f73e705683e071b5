//! Principals and tokens: who may call custody. Each change is also recorded in the tenant's
//! governance log (`principal.created`, `token.issued`, `token.revoked`), so who was given
//! which role, by whom and when is itself evidence. The display name is personal data and
//! goes only in the entry's salted payload.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use custody_api as api;
use custody_auth::{AuthError, IssuedToken, NewPrincipal, PrincipalView, TokenView};
use custody_core::envelope::{Context, EntryInput, LogName, SubjectRef, TenantName, Timestamp};
use custody_store::LogKey;
use serde_json::{Map, Value, json};

use crate::access::now_micros;
use crate::auth::Caller;
use crate::routes::{ApiResult, content_type, parse_json, query, read_body, tenant_name};
use crate::{ApiError, AppState, Backend};

/// Principal-creation entry type.
pub const PRINCIPAL_CREATED: &str = "principal.created";
/// Token-issue entry type.
pub const TOKEN_ISSUED: &str = "token.issued";
/// Token-revocation entry type.
pub const TOKEN_REVOKED: &str = "token.revoked";

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid { field, message } => ApiError::field(&field, message),
            AuthError::NotFound(m) => ApiError::not_found(m),
            AuthError::Random(m) => ApiError::from(custody_ledger::LedgerError::Unavailable(m)),
            AuthError::Store(s) => ApiError::from(custody_ledger::LedgerError::from(s)),
        }
    }
}

pub(crate) fn rfc3339(micros: i64) -> String {
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

/// Appends a record of an access-control change to the tenant's governance log.
async fn record<S: Backend>(
    st: &AppState<S>,
    caller: &Caller,
    tenant: &TenantName,
    entry_type: &str,
    subject: SubjectRef,
    body: Map<String, Value>,
    payload: Option<Value>,
) -> ApiResult<()> {
    let input = EntryInput {
        id: None,
        entry_type: entry_type.into(),
        client_time: None,
        actor: caller.actor(),
        subject,
        related: Vec::new(),
        context: Context {
            auth_method: Some("token".into()),
            request_id: caller.request_id.clone(),
            ..Context::default()
        },
        body,
        payload,
    };
    let key = LogKey {
        tenant: tenant.clone(),
        log: LogName::Governance,
    };
    st.ledger.append(&key, &[input]).await?;
    Ok(())
}

fn principal_ref(id: &str) -> SubjectRef {
    SubjectRef {
        kind: "principal".into(),
        id: id.into(),
    }
}

fn token_body(t: &TokenView) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("token".into(), json!(t.id));
    body.insert("principal".into(), json!(t.principal_id));
    body.insert("expires".into(), json!(rfc3339(t.expires_micros)));
    body
}

pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    let ct = content_type(headers);
    if ct != "application/json" {
        return Err(ApiError::unsupported_media_type(&ct));
    }
    let value = parse_json(&read_body(body, 16 * 1024).await?)?;
    serde_json::from_value(value).map_err(|e| ApiError::field("", e.to_string()))
}

/// Who the presented token belongs to.
#[utoipa::path(get, path = "/v1/whoami", security(("bearer" = [])),
    responses((status = 200, body = api::WhoAmI), (status = 401, body = api::Problem)))]
pub(crate) async fn whoami(
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::WhoAmI>> {
    query(raw, &[])?;
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
pub(crate) async fn create_principal<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = tenant_name(&tenant)?;
    let req: api::CreatePrincipal = json_body(&headers, body).await?;
    st.ledger.logs(&tenant).await?;
    let (principal, token) = st
        .auth
        .create_principal(
            tenant.as_str(),
            NewPrincipal {
                kind: req.kind,
                name: req.name,
                roles: req.roles,
            },
            req.expires_in_days,
            now_micros(),
        )
        .await?;
    let mut body = Map::new();
    body.insert("principal".into(), json!(principal.id));
    body.insert("kind".into(), json!(principal.kind.as_str()));
    body.insert(
        "roles".into(),
        json!(
            principal
                .roles
                .list()
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
        ),
    );
    record(
        &st,
        &caller,
        &tenant,
        PRINCIPAL_CREATED,
        principal_ref(&principal.id),
        body,
        Some(json!({ "name": principal.name })),
    )
    .await?;
    record(
        &st,
        &caller,
        &tenant,
        TOKEN_ISSUED,
        principal_ref(&principal.id),
        token_body(&token.view),
        None,
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
pub(crate) async fn list_principals<S: Backend>(
    State(st): State<AppState<S>>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::PrincipalList>> {
    query(raw, &[])?;
    let tenant = tenant_name(&tenant)?;
    let list = st.auth.principals(tenant.as_str()).await?;
    Ok(Json(api::PrincipalList {
        principals: list.iter().map(principal_info).collect(),
    }))
}

/// Issues another token to a principal of the tenant (shown once).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/principals/{principal}/tokens", security(("bearer" = [])),
    params(("tenant" = String, Path), ("principal" = String, Path)), request_body = api::IssueToken,
    responses((status = 201, body = api::IssuedToken), (status = 400, body = api::Problem),
        (status = 401, body = api::Problem), (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub(crate) async fn issue_token<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path((tenant, principal)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = tenant_name(&tenant)?;
    let req: api::IssueToken = json_body(&headers, body).await?;
    let token = st
        .auth
        .issue_token(
            tenant.as_str(),
            &principal,
            req.expires_in_days,
            now_micros(),
        )
        .await?;
    record(
        &st,
        &caller,
        &tenant,
        TOKEN_ISSUED,
        principal_ref(&principal),
        token_body(&token.view),
        None,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(issued(&token))).into_response())
}

/// A principal's tokens (never their secrets).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/principals/{principal}/tokens", security(("bearer" = [])),
    params(("tenant" = String, Path), ("principal" = String, Path)),
    responses((status = 200, body = api::TokenList), (status = 401, body = api::Problem),
        (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub(crate) async fn list_tokens<S: Backend>(
    State(st): State<AppState<S>>,
    Path((tenant, principal)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::TokenList>> {
    query(raw, &[])?;
    let tenant = tenant_name(&tenant)?;
    let tokens = st.auth.tokens(tenant.as_str(), &principal).await?;
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
pub(crate) async fn revoke_token<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path((tenant, token)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::TokenInfo>> {
    query(raw, &[])?;
    let tenant = tenant_name(&tenant)?;
    let view = st
        .auth
        .revoke(tenant.as_str(), &caller.principal, &token, now_micros())
        .await?;
    if caller.principal.scope.covers(tenant.as_str()) && caller.principal.scope.tenant().is_some()
        || caller.principal.is_server_admin()
    {
        record(
            &st,
            &caller,
            &tenant,
            TOKEN_REVOKED,
            principal_ref(&view.principal_id),
            token_body(&view),
            None,
        )
        .await?;
    }
    Ok(Json(token_info(&view)))
}
