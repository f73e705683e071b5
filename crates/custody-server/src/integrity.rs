//! Tamper evidence beyond proofs: deep reconciliation of every log against its stored bytes
//! (on demand and on a schedule), and a witness-style check of a checkpoint a client holds.
//! Discrepancies are recorded as security events in the tenant's governance log.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use custody_api as api;
use custody_core::checkpoint::SignedCheckpoint;
use custody_core::envelope::{
    Actor, ActorKind, Context, EntryInput, LogName, SubjectRef, TenantName,
};
use custody_core::merkle::verify_consistency;
use custody_core::note::NoteVerifier;
use custody_store::{LogKey, StoreError};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::routes::{ApiResult, content_type, log_key, query, read_body, tenant_name};
use crate::{ApiError, AppState, Backend};

/// A stored log disagrees with its own hashes or checkpoints.
pub const INTEGRITY_FAILURE: &str = "security.integrity_failure";
/// A client holds a checkpoint this log cannot extend: a fork, or a rollback of the log.
pub const FORK_DETECTED: &str = "security.fork_detected";

const LOGS: [LogName; 3] = [LogName::Governance, LogName::Inference, LogName::Access];

fn system() -> Actor {
    Actor {
        kind: ActorKind::System,
        id: custody_governance::SYSTEM_ACTOR.into(),
    }
}

/// Appends a security event to the tenant's governance log; a failure is logged, since the
/// log may be the thing that is broken.
async fn security_event<S: Backend>(
    st: &AppState<S>,
    tenant: &TenantName,
    entry_type: &str,
    log: LogName,
    body: Map<String, Value>,
) {
    let input = EntryInput {
        id: None,
        entry_type: entry_type.into(),
        client_time: None,
        actor: system(),
        subject: SubjectRef {
            kind: "log".into(),
            id: log.as_str().into(),
        },
        related: Vec::new(),
        context: Context::default(),
        body,
        payload: None,
    };
    let key = LogKey {
        tenant: tenant.clone(),
        log: LogName::Governance,
    };
    if let Err(e) = st.ledger.append(&key, &[input]).await {
        tracing::error!(tenant = %tenant, error = %e, "could not record a security event");
    }
}

/// Deep-verifies every log of a tenant; records a security event for each log with problems.
pub async fn reconcile_tenant<S: Backend>(
    st: &AppState<S>,
    tenant: &TenantName,
) -> Result<api::ReconcileReport, custody_ledger::LedgerError> {
    let mut logs = Vec::new();
    for log in LOGS {
        let key = LogKey {
            tenant: tenant.clone(),
            log,
        };
        let audit = custody_verify::deep::audit_log(st.ledger.store(), &key, |_, _| {})
            .await
            .map_err(StoreError::from)?;
        if !audit.is_clean() {
            tracing::error!(tenant = %tenant, log = %log.as_str(), problems = audit.problem_count, first = %audit.problems.first().map(String::as_str).unwrap_or(""), "integrity check failed");
            let mut body = Map::new();
            body.insert("problem_count".into(), json!(audit.problem_count));
            body.insert(
                "problems".into(),
                json!(audit.problems.iter().take(10).collect::<Vec<_>>()),
            );
            security_event(st, tenant, INTEGRITY_FAILURE, log, body).await;
        }
        logs.push(audit.into_report(log));
    }
    Ok(api::ReconcileReport {
        ok: logs.iter().all(|l| l.problem_count == 0),
        logs,
    })
}

/// Runs [`reconcile_tenant`] over every tenant every `every`, until the server stops.
pub fn spawn_reconciliation<S: Backend>(st: AppState<S>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let tenants = match st.ledger.tenants().await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciliation: cannot list tenants");
                    continue;
                }
            };
            for t in tenants {
                match reconcile_tenant(&st, &t).await {
                    Ok(r) if r.ok => {
                        tracing::info!(tenant = %t, "reconciliation: every log verified")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(tenant = %t, error = %e, "reconciliation could not run")
                    }
                }
            }
        }
    });
}

/// Deep-verifies the tenant's logs from storage now: every leaf hash recomputed from its
/// envelope, every stored tree node from the leaves, every payload commitment reopened, every
/// checkpoint's signature and root checked. Problems are also recorded as
/// `security.integrity_failure`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/reconcile", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = api::ReconcileReport), (status = 401, body = api::Problem),
        (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub(crate) async fn reconcile<S: Backend>(
    State(st): State<AppState<S>>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::ReconcileReport>> {
    query(raw, &[])?;
    let tenant = tenant_name(&tenant)?;
    Ok(Json(reconcile_tenant(&st, &tenant).await?))
}

/// A witness's check: send a checkpoint of this log you hold (the C2SP signed note, as
/// text/plain); the answer proves the log's latest checkpoint extends it. If the log cannot
/// (your checkpoint's root differs from the log's tree at that size, or is beyond it), the
/// answer is 409 and a `security.fork_detected` event is recorded.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/logs/{log}/witness", security(("bearer" = [])),
    params(("tenant" = String, Path), ("log" = String, Path)),
    request_body(content = String, content_type = "text/plain", description = "A signed checkpoint of this log"),
    responses((status = 200, body = api::WitnessAnswer), (status = 400, body = api::Problem),
        (status = 409, description = "The log does not extend the checkpoint", body = api::Problem)))]
pub(crate) async fn witness<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path((tenant, log)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let key = log_key(&tenant, &log)?;
    let (tenant, log) = (key.tenant.clone(), key.log);
    let ct = content_type(&headers);
    if ct != "text/plain" {
        return Err(ApiError::unsupported_media_type(&ct));
    }
    let bytes = read_body(body, 8 * 1024).await?;
    let note = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::field("checkpoint", "is not UTF-8 text"))?;
    // The checkpoint may predate a key rotation: any key the log has used will do.
    let vkey = st.ledger.verifier_key(&key).await?;
    let mut keys = vec![vkey.clone()];
    keys.extend(
        st.ledger
            .key_history(&key)
            .await?
            .into_iter()
            .map(|r| r.old_key),
    );
    let held = keys
        .iter()
        .filter_map(|k| NoteVerifier::parse(k).ok())
        .find_map(|v| SignedCheckpoint::open(note, &v).ok())
        .ok_or_else(|| {
            ApiError::field(
                "checkpoint",
                format!("is not a checkpoint of this log signed by any of its keys (now {vkey})"),
            )
        })?;
    let latest = st.ledger.checkpoint(&key).await?;
    let (old, new) = (held.checkpoint.size, latest.size);
    let hashes = if old == 0 || old >= new {
        Vec::new()
    } else {
        st.ledger.consistency_proof(&key, old, new).await?
    };
    let forked = if old > new {
        Some(format!(
            "your checkpoint is of size {old} but this log has only {new} entries: the log was rolled back or forked"
        ))
    } else if old > 0
        && verify_consistency(old, new, &hashes, &held.checkpoint.root, &latest.root).is_err()
    {
        Some(format!(
            "your checkpoint of size {old} (root {}) is not a prefix of this log's tree of size {new} (root {}): the log forked",
            held.checkpoint.root.to_base64(),
            latest.root.to_base64()
        ))
    } else {
        None
    };
    if let Some(detail) = forked {
        let mut body = Map::new();
        body.insert("held_size".into(), json!(held.checkpoint.size));
        body.insert("held_root".into(), json!(held.checkpoint.root.to_base64()));
        body.insert("latest_size".into(), json!(latest.size));
        body.insert("reported_by".into(), json!(caller.principal.id));
        security_event(&st, &tenant, FORK_DETECTED, log, body).await;
        return Err(ApiError::conflict(
            "fork-detected",
            "The log does not extend your checkpoint",
            detail,
        ));
    }
    Ok(Json(api::WitnessAnswer {
        old_size: held.checkpoint.size,
        new_size: latest.size,
        consistency: hashes.iter().map(|h| h.to_base64()).collect(),
        checkpoint: latest.note,
    })
    .into_response())
}

/// Switches the log to a new signing key. The change is announced by a `key.rotated` entry
/// (old and new verifier keys) committed alone and signed with the old key, so anyone who
/// pinned the old key can prove the new one; every later checkpoint is signed with the new
/// key. Old checkpoints stay verifiable with the old key.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/logs/{log}/rotate-key", security(("bearer" = [])),
    params(("tenant" = String, Path), ("log" = String, Path)),
    responses((status = 200, body = api::KeyRotation), (status = 401, body = api::Problem),
        (status = 403, body = api::Problem), (status = 404, body = api::Problem)))]
pub(crate) async fn rotate_key<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path((tenant, log)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<api::KeyRotation>> {
    query(raw, &[])?;
    let key = log_key(&tenant, &log)?;
    let r = st.ledger.rotate_key(&key, caller.actor()).await?;
    Ok(Json(api::KeyRotation {
        log: key.log.as_str().into(),
        index: r.index,
        old_verifier_key: r.old_key,
        new_verifier_key: r.new_key,
    }))
}
