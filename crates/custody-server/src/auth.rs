//! Authentication and authorization of every request, before its handler runs.
//!
//! The route's rule comes from `custody_auth::matrix`; the token is checked against the store;
//! tenant scope is checked before anything about the tenant is read, so a foreign principal
//! gets the same answer, in the same time, whether the tenant exists or not. Denials are
//! answered at once and recorded in the tenant's access log by a background task, so the
//! recording cannot be timed either.

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custody_auth::matrix::{self, Action, Gate};
use custody_auth::{Denial, Principal};
use custody_core::envelope::LogName;

use crate::{ApiError, AppState, Backend};

/// Header carrying the reason for a read (the access log's "why").
pub const PURPOSE_HEADER: &str = "custody-purpose";

/// The authenticated caller of a request, with what the access log needs to know about it.
/// Its `Debug` leaves out the source address and user agent (personal data).
#[derive(Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// What the route does.
    pub action: Action,
    /// Method and route template, e.g. `GET /v1/tenants/{tenant}/trace`.
    pub route: String,
    /// The peer's address (personal data: only ever written to a salted payload).
    pub source: Option<SocketAddr>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The caller's `X-Request-Id`, if it is a plain token.
    pub request_id: Option<String>,
    /// Why it reads, from the `Custody-Purpose` header or the `purpose` parameter.
    pub purpose: Option<String>,
}

/// What is known about a request before its token is checked.
#[derive(Clone)]
pub(crate) struct Attempt {
    pub route: String,
    pub tenant: Option<String>,
    pub source: Option<SocketAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub purpose: Option<String>,
}

/// The envelope actor of a principal: what it writes is attributed to it.
pub(crate) fn principal_actor(p: &Principal) -> custody_core::envelope::Actor {
    use custody_core::envelope::ActorKind;
    custody_core::envelope::Actor {
        kind: match p.kind {
            custody_auth::PrincipalKind::User => ActorKind::User,
            custody_auth::PrincipalKind::Service => ActorKind::Service,
        },
        id: p.id.clone(),
    }
}

impl Caller {
    /// The caller as an envelope actor.
    pub fn actor(&self) -> custody_core::envelope::Actor {
        principal_actor(&self.principal)
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("principal", &self.principal.id)
            .field("token", &self.principal.token_id)
            .field("action", &self.action)
            .field("route", &self.route)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `purpose` from the header or the query string; a malformed one is refused, not ignored.
fn purpose(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, ApiError> {
    let from_query = query.and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "purpose")
            .map(|(_, v)| v)
    });
    let from_header = match headers.get(PURPOSE_HEADER) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::field("purpose", "the Custody-Purpose header must be ASCII text")
                })?
                .to_owned(),
        ),
        None => None,
    };
    match from_query.or(from_header) {
        Some(p)
            if p.trim().is_empty()
                || p.chars().count() > 256
                || p.chars().any(char::is_control) =>
        {
            Err(ApiError::field(
                "purpose",
                "must be 1-256 characters without control characters, e.g. purpose=quarterly-model-audit",
            ))
        }
        other => Ok(other),
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    header_text(headers, "x-request-id")
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
}

/// The middleware every matched route runs through.
pub(crate) async fn authorize<S: Backend>(
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
    let headers = req.headers();
    let purpose = match purpose(headers, req.uri().query()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let attempt = Attempt {
        route: format!("{method} {}", matched.as_str()),
        tenant,
        source: req
            .extensions()
            .get::<ConnectInfo<crate::tls::Peer>>()
            .map(|c| c.0.0),
        user_agent: header_text(headers, header::USER_AGENT),
        request_id: request_id(headers),
        purpose,
    };
    let now = crate::access::now_micros();
    let source_key = attempt
        .source
        .map(|s| s.ip().to_string())
        .unwrap_or_default();
    let principal = match st.auth.authenticate(bearer(headers), now).await {
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
            crate::access::spawn_denial(&st, &attempt, None, action, denial.code());
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
        crate::access::spawn_denial(&st, &attempt, Some(&principal), action, code);
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
