//! The service itself: liveness.

use axum::Json;
use custody_api as api;

/// Liveness: 200 once the server accepts requests.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = api::Health)))]
pub async fn healthz() -> Json<api::Health> {
    Json(api::Health {
        status: "ok".into(),
    })
}
