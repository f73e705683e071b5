//! Authentication and authorization of every request, before its handler runs.
//!
//! The route's rule comes from `custody_auth::matrix`; the token is checked against the store;
//! tenant scope is checked before anything about the tenant is read, so a foreign principal
//! gets the same answer, in the same time, whether the tenant exists or not. Denials are
//! answered at once and recorded in the tenant's access log by a background task, so the
//! recording cannot be timed either.

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custody_auth::matrix::{self, Action, Gate};
use custody_auth::{Denial, Principal};
use custody_core::envelope::LogName;
use custody_governance::Backend;

use crate::caller::{Attempt, Caller, attempt, bearer};
use crate::error::ApiError;
use crate::state::{AppState, now_micros};

/// Records a refused request in the named tenant's access log without delaying the response,
/// so whether the tenant exists cannot be told from it.
fn spawn_denial<S: Backend>(
    st: &AppState<S>,
    attempt: &Attempt,
    principal: Option<&Principal>,
    action: Action,
    reason: &'static str,
) {
    tracing::info!(
        route = %attempt.route,
        principal = principal.map(|p| p.id.as_str()).unwrap_or("-"),
        reason,
        "request refused"
    );
    if attempt.tenant.is_none() {
        return;
    }
    let st = st.clone();
    let attempt = attempt.clone();
    let principal = principal.cloned();
    tokio::spawn(async move {
        if let Err(e) = st
            .governance()
            .record_denial(&attempt, principal.as_ref(), action, reason)
            .await
        {
            tracing::warn!(error = %e, tenant = attempt.tenant.as_deref().unwrap_or(""), "could not record a refused request");
        }
    });
}

/// The middleware every matched route runs through.
pub async fn authorize<S: Backend>(
    State(st): State<AppState<S>>,
    matched: MatchedPath,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_owned();
    let Some(rule) = matrix::rule(&method, matched.as_str()) else {
        tracing::error!(route = matched.as_str(), %method, "route has no access rule");
        return ApiError::from_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this route has no access rule; it is refused until it has one".into(),
        )
        .into_response();
    };
    let mut tenant = None;
    let mut log = None;
    if let Err(rejection) = &params
        && !matches!(
            rejection,
            axum::extract::rejection::RawPathParamsRejection::MissingPathParams(_)
        )
    {
        return ApiError::field("path", rejection.body_text()).into_response();
    }
    if let Ok(params) = &params {
        for (k, v) in params.iter() {
            match k {
                "tenant" => tenant = Some(v.to_owned()),
                "log" => log = LogName::parse(v).ok(),
                _ => {}
            }
        }
    }
    let action = matrix::on_log(rule.action, log);
    let gate = action.gate();
    if gate == Gate::Open {
        return next.run(req).await;
    }
    let source = req
        .extensions()
        .get::<ConnectInfo<crate::tls::Peer>>()
        .map(|c| c.0.0);
    let attempt = match attempt(
        &req,
        format!("{method} {}", matched.as_str()),
        tenant,
        source,
    ) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let headers = req.headers();
    let now = now_micros();
    let source_key = attempt
        .source
        .map(|s| s.ip().to_string())
        .unwrap_or_default();
    let principal = match st.governance().authenticate(bearer(headers), now).await {
        Ok(Ok(p)) => p,
        Ok(Err(denial)) => {
            // Failed attempts spend the address's allowance; past it, not even the token is
            // looked up.
            if let Err(wait) = st
                .failed_auth_limit
                .take(&source_key, std::time::Instant::now())
            {
                return too_many(wait);
            }
            spawn_denial(&st, &attempt, None, action, denial.code());
            return unauthenticated(denial);
        }
        Err(e) => return ApiError::from(custody_ledger::LedgerError::from(e)).into_response(),
    };
    if let Err(wait) = st
        .principal_limit
        .take(&principal.token_id, std::time::Instant::now())
    {
        return too_many(wait);
    }
    let refusal = match gate {
        Gate::Open | Gate::AnyPrincipal => None,
        Gate::ServerAdmin => (!principal.is_server_admin()).then(|| {
            (
                "not_server_admin",
                format!(
                    "only a server administrator may {}",
                    match action {
                        Action::ManageTenants => "create tenants",
                        _ => "do this",
                    }
                ),
            )
        }),
        Gate::Roles(roles) => match &attempt.tenant {
            Some(t) if !principal.scope.covers(t) => Some((
                "wrong_tenant",
                format!("this token gives no access to tenant {t:?}"),
            )),
            Some(_) if roles.is_empty() => Some((
                "custody_only",
                "the access log is written by custody only: it records reads and refusals itself"
                    .into(),
            )),
            Some(_) if !principal.roles.any(roles) => Some((
                "missing_role",
                format!(
                    "{} needs the role {}; this principal has {}",
                    attempt.route,
                    roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    describe_roles(&principal)
                ),
            )),
            Some(_) => None,
            None => Some(("no_tenant", "this route needs a tenant".into())),
        },
    };
    if let Some((code, detail)) = refusal {
        spawn_denial(&st, &attempt, Some(&principal), action, code);
        return ApiError::forbidden(detail).into_response();
    }
    req.extensions_mut().insert(Caller {
        principal,
        action,
        route: attempt.route,
        source: attempt.source,
        user_agent: attempt.user_agent,
        request_id: attempt.request_id,
        purpose: attempt.purpose,
    });
    next.run(req).await
}

fn too_many(wait: u64) -> Response {
    let mut resp = ApiError::from_status(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many requests from this caller; retry in {wait} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn describe_roles(p: &Principal) -> String {
    let roles = p.roles.list();
    if roles.is_empty() {
        "none".into()
    } else {
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn unauthenticated(denial: Denial) -> Response {
    let mut resp = ApiError::unauthorized(denial.to_string()).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"custody\""),
    );
    resp
}
