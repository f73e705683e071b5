//! Who is calling and why: what a request says about its caller before the token is checked
//! (route, tenant named in the path, source address, user agent, request id, purpose). The
//! authenticated [`Caller`] that handlers receive is the evidence service's type, so what the
//! access log records is what the server saw.

use std::net::SocketAddr;

use axum::extract::Request;
use axum::http::{HeaderMap, header};
pub use custody_governance::{Attempt, Caller};

use crate::error::{ApiError, ApiResult};

/// Header carrying the reason for a read (the access log's "why").
pub const PURPOSE_HEADER: &str = "custody-purpose";

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

/// The bearer token of the `Authorization` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `purpose` from the header or the query string; a malformed one is refused, not ignored.
fn purpose(headers: &HeaderMap, query: Option<&str>) -> ApiResult<Option<String>> {
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

/// What `req` says about its caller, for route `route` (method and template) naming `tenant`.
pub fn attempt(
    req: &Request,
    route: String,
    tenant: Option<String>,
    source: Option<SocketAddr>,
) -> ApiResult<Attempt> {
    let headers = req.headers();
    Ok(Attempt {
        route,
        tenant,
        source,
        user_agent: header_text(headers, header::USER_AGENT),
        request_id: request_id(headers),
        purpose: purpose(headers, req.uri().query())?,
    })
}
