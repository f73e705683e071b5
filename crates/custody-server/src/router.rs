//! The router: the one place that names every route and its handler, and the OpenAPI
//! document generated from them. Every matched route passes the access middleware
//! ([`crate::middleware::auth`]); anything else is a problem (404, 405), never a framework
//! default.

use axum::Json;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use custody_api as api;
use custody_governance::Backend;
use utoipa::OpenApi;

use crate::error::{ApiError, ensure_problem};
use crate::handlers::{
    audit, entries, erasure, integrity, principals, proofs, service, tenants, tiles,
};
use crate::middleware::auth::authorize;
use crate::state::AppState;

/// The router with every route, for any storage backend.
pub fn router<S: Backend>(state: AppState<S>) -> Router {
    let log = "/v1/tenants/{tenant}/logs/{log}";
    Router::new()
        .route("/healthz", get(service::healthz))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/whoami", get(principals::whoami))
        .route(
            "/v1/tenants",
            get(tenants::list_tenants::<S>).post(tenants::create_tenant::<S>),
        )
        .route("/v1/tenants/{tenant}/logs", get(tenants::list_logs::<S>))
        .route(
            &format!("{log}/entries"),
            get(entries::list_entries::<S>).post(entries::append::<S>),
        )
        .route(
            &format!("{log}/entries/{{index}}"),
            get(entries::get_entry::<S>),
        )
        .route(
            &format!("{log}/entries/{{index}}/tlog-proof"),
            get(proofs::tlog_proof::<S>),
        )
        .route(&format!("{log}/checkpoint"), get(proofs::checkpoint::<S>))
        .route(
            &format!("{log}/proof/inclusion"),
            get(proofs::inclusion::<S>),
        )
        .route(
            &format!("{log}/proof/consistency"),
            get(proofs::consistency::<S>),
        )
        .route(&format!("{log}/vkey"), get(proofs::vkey::<S>))
        .route(&format!("{log}/witness"), post(integrity::witness::<S>))
        .route(
            &format!("{log}/rotate-key"),
            post(integrity::rotate_key::<S>),
        )
        .route(&format!("{log}/export"), get(entries::export::<S>))
        .route("/v1/tenants/{tenant}/trace", get(audit::trace::<S>))
        .route("/v1/tenants/{tenant}/served", get(audit::served::<S>))
        .route(
            "/v1/tenants/{tenant}/models/{version_hash}/history",
            get(audit::history::<S>),
        )
        .route("/v1/tenants/{tenant}/admit", get(audit::admit::<S>))
        .route("/v1/tenants/{tenant}/evidence", get(audit::evidence::<S>))
        .route(
            "/v1/tenants/{tenant}/principals",
            get(principals::list_principals::<S>).post(principals::create_principal::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/principals/{principal}/tokens",
            get(principals::list_tokens::<S>).post(principals::issue_token::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/reconcile",
            post(integrity::reconcile::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/erasures",
            post(erasure::erase_subject::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/retention/apply",
            post(erasure::apply_retention::<S>),
        )
        .route(
            "/v1/tenants/{tenant}/tokens/{token}",
            delete(principals::revoke_token::<S>),
        )
        .route(
            "/tlog/{tenant}/{log}/checkpoint",
            get(tiles::checkpoint::<S>),
        )
        .route(
            "/tlog/{tenant}/{log}/tile/{level}/{*index}",
            get(tiles::hash_tile::<S>),
        )
        .route(
            "/tlog/{tenant}/{log}/tile/entries/{*index}",
            get(tiles::entry_bundle::<S>),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize::<S>,
        ))
        .fallback(|| async { ApiError::not_found("no such route; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::map_response(ensure_problem))
        .with_state(state)
}

/// The OpenAPI 3 document, generated from the handlers and wire types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "custody",
        description = "A per-tenant, append-only, verifiable ledger of ML governance evidence. Proofs follow RFC 9162; checkpoints are C2SP signed notes."
    ),
    paths(
        service::healthz,
        openapi_json,
        principals::whoami,
        tenants::create_tenant,
        tenants::list_tenants,
        tenants::list_logs,
        entries::append,
        entries::list_entries,
        entries::get_entry,
        proofs::tlog_proof,
        proofs::checkpoint,
        proofs::inclusion,
        proofs::consistency,
        proofs::vkey,
        entries::export,
        audit::trace,
        audit::served,
        audit::history,
        audit::admit,
        audit::evidence,
        principals::create_principal,
        principals::list_principals,
        principals::issue_token,
        principals::list_tokens,
        principals::revoke_token,
        erasure::erase_subject,
        erasure::apply_retention,
        integrity::reconcile,
        integrity::witness,
        integrity::rotate_key,
        tiles::checkpoint,
        tiles::hash_tile,
        tiles::entry_bundle
    ),
    components(schemas(
        api::Problem,
        api::ProblemField,
        api::CreateTenant,
        api::Tenant,
        api::TenantList,
        api::LogDescription,
        api::LogList,
        api::EntrySubmission,
        api::AppendResult,
        api::AppendResults,
        api::EntryRecord,
        api::EntryList,
        api::PayloadStatus,
        api::InclusionProof,
        api::ConsistencyProof,
        api::ExportedLeaf,
        api::Health,
        api::RecordedRefusal,
        api::evidence::ProvenEntry,
        api::evidence::LogCheckpoint,
        api::evidence::EvidenceLink,
        api::evidence::GateGap,
        api::evidence::GateRuleView,
        api::evidence::Proven,
        api::evidence::TraceAnswer,
        api::evidence::ServedAnswer,
        api::evidence::ServingChangeView,
        api::evidence::HistoryAnswer,
        api::evidence::AdmitAnswer,
        api::evidence::SecurityNotice,
        api::evidence::EvidencePack,
        api::evidence::ApproverKeyView,
        api::CreatePrincipal,
        api::CreatedPrincipal,
        api::PrincipalInfo,
        api::PrincipalList,
        api::IssueToken,
        api::IssuedToken,
        api::TokenInfo,
        api::TokenList,
        api::WhoAmI,
        api::EraseRequest,
        api::RetentionApply,
        api::ErasedEntry,
        api::ErasureReport,
        api::LogAuditReport,
        api::ReconcileReport,
        api::WitnessAnswer,
        api::KeyRotation
    )),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the bearer-token scheme every non-public route uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token, cst_<id>_<secret>; see docs/ACCESS.md for which roles each route needs",
                    ))
                    .build(),
            ),
        );
        doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// This document: the OpenAPI 3 description of every route, generated from the code.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    Json(openapi()).into_response()
}
