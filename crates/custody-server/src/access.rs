//! The access log: every read of evidence appends `access.read`, every refused request
//! `security.access_denied`, to the tenant's `access` log. The who is the principal id, the
//! why the purpose, the how the auth method and token id; the where (source address) and the
//! client's user agent are personal data and go in the salted payload.
//!
//! A read's entry is appended before the answer leaves: if it cannot be written, the read
//! fails. A denial's entry is appended by a background task, so that whether it is written
//! (the tenant exists) cannot be told from the response or its timing.

use custody_auth::{Action, Principal};
use custody_core::envelope::{
    Actor, ActorKind, Context, EntryInput, LogName, Related, SubjectRef, TenantName,
};
use custody_store::LogKey;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{Attempt, Caller};
use crate::routes::ApiResult;
use crate::{ApiError, AppState, Backend};

/// Type of the entry recording a read.
pub const ACCESS_READ: &str = "access.read";
/// Type of the entry recording a refused request.
pub const ACCESS_DENIED: &str = "security.access_denied";

/// Most returned entries named one by one in `related`; the body's digest covers them all.
const MAX_NAMED: usize = 100;

pub(crate) fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

fn actor(p: Option<&Principal>) -> Actor {
    match p {
        Some(p) => crate::auth::principal_actor(p),
        None => Actor {
            kind: ActorKind::User,
            id: "unauthenticated".into(),
        },
    }
}

fn where_and_client(source: Option<std::net::SocketAddr>, user_agent: Option<&str>) -> Value {
    let mut p = Map::new();
    if let Some(s) = source {
        p.insert("source_address".into(), json!(s.to_string()));
    }
    if let Some(ua) = user_agent {
        p.insert("user_agent".into(), json!(ua));
    }
    Value::Object(p)
}

/// What one read returned.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// The thing asked about: `(kind, id)`.
    pub subject: (String, String),
    /// `(log, entry id, leaf hash hex)` of every entry returned.
    pub returned: Vec<(String, String, String)>,
    /// Whether payloads were returned.
    pub payloads: bool,
    /// The query's parameters (names and values; no payload content).
    pub query: Vec<(String, String)>,
}

impl Read {
    pub(crate) fn about(kind: &str, id: impl Into<String>) -> Self {
        Self {
            subject: (kind.to_owned(), id.into()),
            ..Self::default()
        }
    }

    /// Adds the entries of a proven answer.
    pub(crate) fn proven(mut self, proven: &custody_api::evidence::Proven) -> Self {
        for e in &proven.entries {
            let id = e.envelope.get("id").and_then(Value::as_str).unwrap_or("");
            self.returned
                .push((e.log.clone(), id.to_owned(), e.leaf_hash.clone()));
            self.payloads |= e.payload.is_some();
        }
        self
    }

    /// Adds entries read from one log.
    pub(crate) fn entries(mut self, log: LogName, entries: &[custody_api::EntryRecord]) -> Self {
        for e in entries {
            let id = e.envelope.get("id").and_then(Value::as_str).unwrap_or("");
            self.returned
                .push((log.as_str().to_owned(), id.to_owned(), e.leaf_hash.clone()));
            self.payloads |= e.payload.is_some();
        }
        self
    }

    pub(crate) fn query(mut self, q: &std::collections::HashMap<String, String>) -> Self {
        let mut pairs: Vec<_> = q
            .iter()
            .map(|(k, v)| (k.clone(), v.chars().take(256).collect()))
            .collect();
        pairs.sort();
        self.query = pairs;
        self
    }
}

fn access_key(tenant: &TenantName) -> LogKey {
    LogKey {
        tenant: tenant.clone(),
        log: LogName::Access,
    }
}

/// Appends the `access.read` entry for a read, and fails the read if it cannot.
pub(crate) async fn record_read<S: Backend>(
    st: &AppState<S>,
    caller: &Caller,
    tenant: &TenantName,
    read: Read,
) -> ApiResult<()> {
    let mut digest = Sha256::new();
    for (_, _, leaf) in &read.returned {
        digest.update(leaf.as_bytes());
        digest.update(b"\n");
    }
    let related = read
        .returned
        .iter()
        .take(MAX_NAMED)
        .map(|(log, id, _)| Related {
            kind: "entry".into(),
            id: id.clone(),
            rel: format!("returned_from_{log}"),
        })
        .collect();
    let query: Map<String, Value> = read
        .query
        .into_iter()
        .filter(|(k, _)| k != "purpose")
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut body = Map::new();
    body.insert("action".into(), json!(caller.action.as_str()));
    body.insert("route".into(), json!(caller.route));
    if !query.is_empty() {
        body.insert("query".into(), Value::Object(query));
    }
    body.insert("returned".into(), json!(read.returned.len()));
    body.insert(
        "returned_leaf_hashes_digest".into(),
        json!(format!("sha256:{}", hex::encode(digest.finalize()))),
    );
    body.insert("payloads_returned".into(), json!(read.payloads));
    body.insert("token".into(), json!(caller.principal.token_id));
    let input = EntryInput {
        id: None,
        entry_type: ACCESS_READ.into(),
        client_time: None,
        actor: actor(Some(&caller.principal)),
        subject: SubjectRef {
            kind: read.subject.0,
            id: read.subject.1,
        },
        related,
        context: Context {
            purpose: caller.purpose.clone(),
            auth_method: Some("token".into()),
            request_id: caller.request_id.clone(),
            session_id: None,
        },
        body,
        payload: Some(where_and_client(
            caller.source,
            caller.user_agent.as_deref(),
        )),
    };
    st.ledger
        .append(&access_key(tenant), &[input])
        .await
        .map_err(|e| {
            tracing::error!(error = %e, tenant = %tenant, "access log write failed; the read is refused");
            ApiError::from(e)
        })?;
    Ok(())
}

/// Records a refused request in the named tenant's access log, if that tenant exists, without
/// delaying the response.
pub(crate) fn spawn_denial<S: Backend>(
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
    let Some(tenant) = attempt
        .tenant
        .as_deref()
        .and_then(|t| TenantName::parse(t).ok())
    else {
        return;
    };
    let st = st.clone();
    let mut body = Map::new();
    body.insert("reason".into(), json!(reason));
    body.insert("action".into(), json!(action.as_str()));
    body.insert("route".into(), json!(attempt.route));
    if let Some(p) = principal {
        body.insert("token".into(), json!(p.token_id));
        if let Some(t) = p.scope.tenant() {
            body.insert("principal_tenant".into(), json!(t));
        }
    }
    let input = EntryInput {
        id: None,
        entry_type: ACCESS_DENIED.into(),
        client_time: None,
        actor: actor(principal),
        subject: SubjectRef {
            kind: "route".into(),
            id: attempt.route.replace(' ', ":").chars().take(200).collect(),
        },
        related: Vec::new(),
        context: Context {
            purpose: attempt.purpose.clone(),
            auth_method: Some(if principal.is_some() { "token" } else { "none" }.into()),
            request_id: attempt.request_id.clone(),
            session_id: None,
        },
        body,
        payload: Some(where_and_client(
            attempt.source,
            attempt.user_agent.as_deref(),
        )),
    };
    tokio::spawn(async move {
        let key = access_key(&tenant);
        if st.ledger.logs(&tenant).await.is_err() {
            return;
        }
        if let Err(e) = st.ledger.append(&key, &[input]).await {
            tracing::warn!(error = %e, tenant = %tenant, "could not record a refused request");
        }
    });
}
