//! The access log: every read of evidence appends `access.read`, every refused request
//! `security.access_denied`, to the tenant's `access` log. The who is the principal id, the
//! why the purpose, the how the auth method and token id; the where (source address) and the
//! client's user agent are personal data and go in the salted payload.
//!
//! A read's entry is appended before the answer leaves: if it cannot be written, the read
//! fails. Whether a denial's entry is written (the tenant exists) must not be visible to the
//! refused caller, so front ends record denials off the request path.

use std::net::SocketAddr;

use custody_auth::{Action, Principal};
use custody_core::envelope::{
    Actor, ActorKind, Context, EntryInput, LogName, Related, SubjectRef, TenantName,
};
use custody_store::LogKey;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{Backend, Governance, GovernanceError};

/// Type of the entry recording a read.
pub const ACCESS_READ: &str = "access.read";
/// Type of the entry recording a refused request.
pub const ACCESS_DENIED: &str = "security.access_denied";

/// Most returned entries named one by one in `related`; the body's digest covers them all.
const MAX_NAMED: usize = 100;

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

impl Caller {
    /// The caller as an envelope actor: what it writes is attributed to it.
    pub fn actor(&self) -> Actor {
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

/// What is known about a request before (or instead of) its caller being let in. Its `Debug`
/// leaves out the source address and user agent.
#[derive(Clone)]
pub struct Attempt {
    /// Method and route template.
    pub route: String,
    /// The tenant named in the path, as written (it may not exist).
    pub tenant: Option<String>,
    /// The peer's address (personal data).
    pub source: Option<SocketAddr>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The caller's `X-Request-Id`.
    pub request_id: Option<String>,
    /// The purpose given.
    pub purpose: Option<String>,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("route", &self.route)
            .field("tenant", &self.tenant)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// The envelope actor of a principal.
pub(crate) fn principal_actor(p: &Principal) -> Actor {
    Actor {
        kind: match p.kind {
            custody_auth::PrincipalKind::User => ActorKind::User,
            custody_auth::PrincipalKind::Service => ActorKind::Service,
        },
        id: p.id.clone(),
    }
}

fn actor(p: Option<&Principal>) -> Actor {
    match p {
        Some(p) => principal_actor(p),
        None => Actor {
            kind: ActorKind::User,
            id: "unauthenticated".into(),
        },
    }
}

fn where_and_client(source: Option<SocketAddr>, user_agent: Option<&str>) -> Value {
    let mut p = Map::new();
    if let Some(s) = source {
        p.insert("source_address".into(), json!(s.to_string()));
    }
    if let Some(ua) = user_agent {
        p.insert("user_agent".into(), json!(ua));
    }
    Value::Object(p)
}

/// What one read returned, to be recorded with [`Governance::record_read`].
#[derive(Debug, Default)]
pub struct ReadRecord {
    /// The thing asked about: `(kind, id)`.
    pub subject: (String, String),
    /// `(log, entry id, leaf hash hex)` of every entry returned.
    pub returned: Vec<(String, String, String)>,
    /// Whether payloads were returned.
    pub payloads: bool,
    /// The query's parameters (names and values; no payload content).
    pub query: Vec<(String, String)>,
}

impl ReadRecord {
    /// A read about `(kind, id)`.
    pub fn about(kind: &str, id: impl Into<String>) -> Self {
        Self {
            subject: (kind.to_owned(), id.into()),
            ..Self::default()
        }
    }

    /// Adds the entries of a proven answer.
    pub fn proven(mut self, proven: &custody_api::evidence::Proven) -> Self {
        for e in &proven.entries {
            let id = e.envelope.get("id").and_then(Value::as_str).unwrap_or("");
            self.returned
                .push((e.log.clone(), id.to_owned(), e.leaf_hash.clone()));
            self.payloads |= e.payload.is_some();
        }
        self
    }

    /// Adds entries read from one log.
    pub fn entries(mut self, log: LogName, entries: &[custody_api::EntryRecord]) -> Self {
        for e in entries {
            let id = e.envelope.get("id").and_then(Value::as_str).unwrap_or("");
            self.returned
                .push((log.as_str().to_owned(), id.to_owned(), e.leaf_hash.clone()));
            self.payloads |= e.payload.is_some();
        }
        self
    }

    /// Adds leaves returned as stored: `(entry id, leaf hash hex)` of one log.
    pub fn leaves(
        mut self,
        log: LogName,
        leaves: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.returned.extend(
            leaves
                .into_iter()
                .map(|(id, leaf)| (log.as_str().to_owned(), id, leaf)),
        );
        self
    }

    /// Records the query's parameters, each value cut at 256 characters, in name order.
    pub fn query<'a>(mut self, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut pairs: Vec<_> = params
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.chars().take(256).collect()))
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

impl<S: Backend> Governance<S> {
    /// Appends the `access.read` entry for a read; the read must fail if this does.
    pub async fn record_read(
        &self,
        caller: &Caller,
        tenant: &TenantName,
        read: ReadRecord,
    ) -> Result<(), GovernanceError> {
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
        self.record_own(&access_key(tenant), input)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, tenant = %tenant, "access log write failed; the read is refused");
                e
            })?;
        Ok(())
    }

    /// Records a refused request in the named tenant's access log, if that tenant exists.
    /// `principal` is who the token belonged to, if it authenticated; `reason` a short code.
    pub async fn record_denial(
        &self,
        attempt: &Attempt,
        principal: Option<&Principal>,
        action: Action,
        reason: &str,
    ) -> Result<(), GovernanceError> {
        let Some(tenant) = attempt
            .tenant
            .as_deref()
            .and_then(|t| TenantName::parse(t).ok())
        else {
            return Ok(());
        };
        if self.ledger.logs(&tenant).await.is_err() {
            return Ok(());
        }
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
        self.record_own(&access_key(&tenant), input).await?;
        Ok(())
    }
}
