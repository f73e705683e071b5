//! RFC 9457 problem responses: the one shape every custody error takes on the wire. Every
//! error a handler can meet converts into [`ApiError`] here, and [`ensure_problem`] rewrites
//! the few responses produced outside the handlers (framework rejections, timeouts).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custody_api::{PROBLEM_JSON, Problem, ProblemField};
use custody_core::envelope::ValidationError;
use custody_governance::GovernanceError;
use custody_ledger::LedgerError;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<ProblemField>,
    /// A gate refusal's details; boxed to keep the common error small.
    gate: Option<
        Box<(
            Vec<custody_api::evidence::GateGap>,
            custody_api::RecordedRefusal,
        )>,
    >,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            status,
            kind,
            title,
            detail,
            errors: Vec::new(),
            gate: None,
        }
    }

    /// 400 with field errors.
    pub fn validation(e: ValidationError) -> Self {
        let detail = if e.errors.len() == 1 {
            let f = &e.errors[0];
            if f.field.is_empty() {
                f.message.clone()
            } else {
                format!("{}: {}", f.field, f.message)
            }
        } else {
            format!("{} fields are invalid; see errors", e.errors.len())
        };
        let mut err = Self::new(
            StatusCode::BAD_REQUEST,
            "validation",
            "Invalid request",
            detail,
        );
        err.errors = e
            .errors
            .into_iter()
            .map(|f| ProblemField {
                field: f.field,
                message: f.message,
            })
            .collect();
        err
    }

    /// 400 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(ValidationError::one(field, message))
    }

    /// 400 for a body that is not valid JSON.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            detail.into(),
        )
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            detail.into(),
        )
    }

    /// Any other status, for responses produced outside the handlers (e.g. a path that is not
    /// valid UTF-8), so every error still has the problem shape.
    pub fn from_status(status: StatusCode, detail: String) -> Self {
        let detail = if detail.trim().is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            detail
        };
        Self::new(
            status,
            "request",
            status.canonical_reason().unwrap_or("Error"),
            detail,
        )
    }

    /// 401: no valid token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            detail.into(),
        )
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            detail.into(),
        )
    }

    /// 409 with a specific problem type.
    pub fn conflict(kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, title, detail.into())
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this route does not accept that method; see /v1/openapi.json".into(),
        )
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Request body too large",
            format!("the request body exceeds {limit} bytes; split it into several requests"),
        )
    }

    /// 415.
    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!(
                "Content-Type {got:?} is not accepted: send application/json (one entry or an array) or application/x-ndjson"
            ),
        )
    }
}

impl From<custody_store::StoreError> for ApiError {
    fn from(e: custody_store::StoreError) -> Self {
        LedgerError::from(e).into()
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Invalid(v) => Self::validation(v),
            LedgerError::NotFound(m) => Self::not_found(m),
            LedgerError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict", m),
            LedgerError::Unavailable(m) => {
                tracing::warn!(error = %m, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "storage is unavailable and the request was not acknowledged; retry shortly (entries that carry an id are safe to retry)".into(),
                )
            }
            LedgerError::Corrupt(m) => {
                tracing::error!(error = %m, "ledger integrity error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "integrity",
                    "Ledger integrity error",
                    m,
                )
            }
        }
    }
}

/// What every handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<custody_auth::AuthError> for ApiError {
    fn from(e: custody_auth::AuthError) -> Self {
        GovernanceError::from(e).into()
    }
}

impl From<GovernanceError> for ApiError {
    fn from(e: GovernanceError) -> Self {
        match e {
            GovernanceError::Ledger(l) => l.into(),
            GovernanceError::Invalid(v) => Self::validation(v),
            GovernanceError::NotFound(m) => Self::not_found(m),
            GovernanceError::Forbidden(m) => Self::forbidden(m),
            GovernanceError::ForkDetected(m) => Self::conflict(
                "fork-detected",
                "The log does not extend your checkpoint",
                m,
            ),
            GovernanceError::Conflict(m) => {
                Self::new(StatusCode::CONFLICT, "conflict", "Conflict", m)
            }
            GovernanceError::Refused {
                attempted,
                missing,
                refusal,
            } => {
                let mut err = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "gate-refused",
                    "Refused by the gate",
                    format!(
                        "the {attempted} was refused and the refusal recorded at governance index {}: {}",
                        refusal.index,
                        missing
                            .iter()
                            .map(|m| m.detail.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                );
                let gaps = missing
                    .into_iter()
                    .map(|m| custody_api::evidence::GateGap {
                        code: m.code,
                        detail: m.detail,
                        entries: m.entries,
                    })
                    .collect();
                let recorded = custody_api::RecordedRefusal {
                    index: refusal.index,
                    id: refusal.id.to_string(),
                    leaf_hash: refusal.leaf_hash.to_hex(),
                };
                err.gate = Some(Box::new((gaps, recorded)));
                err
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            problem_type: format!("https://custody.dev/problems/{}", self.kind),
            title: self.title.into(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
            missing: self.gate.as_ref().map(|g| g.0.clone()).unwrap_or_default(),
            refusal: self.gate.map(|g| g.1),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Rewrites any error response that is not already a problem (framework rejections) into one,
/// keeping its status and headers.
pub async fn ensure_problem(resp: Response) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let detail = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut problem = ApiError::from_status(status, detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}
