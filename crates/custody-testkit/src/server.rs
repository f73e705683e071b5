//! The real server in-process, on an ephemeral port over a fresh SQLite file, with a
//! principal of server scope holding every role (so tests that are not about access control
//! can do anything), the typed client, and a plain HTTP client for requests the typed one
//! cannot send (malformed bodies, exact statuses and headers).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use custody_api as api;
use custody_client::Client;
use custody_governance::Governance;
use custody_ledger::{Ledger, LedgerConfig};
use custody_store_sqlite::SqliteStore;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The server name every test server signs with.
pub const SERVER_NAME: &str = "test.local";

/// A running server and everything needed to talk to it and to inspect its files.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The typed client.
    pub client: Client,
    /// A plain HTTP client, for malformed requests and for exact statuses and headers.
    pub http: reqwest::Client,
    /// The SQLite file (of a server started over another store: where it would be).
    pub db_path: PathBuf,
    /// The token of the harness's principal: server scope, every role. `client` and `http`
    /// send it.
    pub token: String,
    /// The principal id behind `token`.
    pub principal: String,
    /// Principals created for the actor names tests write under: (tenant, name) -> (id, token).
    cast: std::sync::Mutex<std::collections::HashMap<(String, String), (String, String)>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    // Dropped last: the server's files live here.
    _dir: TempDir,
}

/// Starts the real server on `127.0.0.1:0`. The listener is bound before the server task is
/// spawned, so requests sent at once simply queue: no waiting for start-up.
pub async fn start() -> TestServer {
    start_with(custody_server::ServeOptions::default()).await
}

/// [`start`] with other limits or schedules.
pub async fn start_with(options: custody_server::ServeOptions) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("custody.db"))
        .await
        .expect("open store");
    start_over(store, dir, options).await
}

/// The real server over `store` (PostgreSQL, a wrapped store, ...), with its keys in `dir`
/// (which the server keeps until it is dropped). `db_path` then names where an embedded
/// database would be: nothing is there.
pub async fn start_over<S: custody_governance::Backend>(
    store: S,
    dir: TempDir,
    options: custody_server::ServeOptions,
) -> TestServer {
    custody_client::install_crypto_provider();
    let db_path = dir.path().join("custody.db");
    let (principal, token) = superuser(&store).await;
    let (_, appender) = Ledger::open(
        store,
        LedgerConfig {
            server_name: SERVER_NAME.into(),
            key_dir: dir.path().join("keys"),
        },
    )
    .expect("ledger");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(custody_server::serve(
        listener,
        Arc::new(Governance::new(appender)),
        options,
        async move {
            let _ = rx.await;
        },
    ));
    let mut headers = HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    headers.insert(
        "custody-purpose",
        "integration-test".parse().expect("header"),
    );
    TestServer {
        client: Client::new(&base)
            .expect("client")
            .with_token(&token)
            .with_purpose(Some("integration-test".into())),
        http: reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .expect("http client"),
        base,
        db_path,
        token,
        principal,
        cast: Default::default(),
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

/// Creates the harness's own principal, `p_harness`, directly in the store (before a server
/// opens it, or beside one in process): server scope with every role, so tests that are not
/// about access control can do anything. Returns its id and token.
pub async fn superuser<S: custody_store::AuthStore>(store: &S) -> (String, String) {
    use custody_store::{PrincipalRow, TokenRow};
    let token = custody_auth::ApiToken::generate().expect("random");
    let id = "p_harness".to_string();
    store
        .create_principal(PrincipalRow {
            id: id.clone(),
            tenant: None,
            kind: "service".into(),
            name: "test harness".into(),
            roles: "admin,approver,auditor,writer".into(),
            created_micros: 0,
        })
        .await
        .expect("harness principal");
    store
        .add_token(TokenRow {
            id: token.id().into(),
            principal_id: id.clone(),
            secret_hash: token.secret_hash(),
            created_micros: 0,
            expires_micros: i64::MAX,
            revoked_micros: None,
        })
        .await
        .expect("harness token");
    (id, token.expose())
}

/// The tenant named by a URL under `/v1/tenants/{tenant}/`.
fn url_tenant(url: &str) -> Option<String> {
    let rest = url.split("/v1/tenants/").nth(1)?;
    let t = rest.split(['/', '?']).next()?;
    (!t.is_empty()).then(|| t.to_string())
}

/// Replaces every string equal to a key of `names` by its value.
fn rename(v: &mut Value, names: &std::collections::HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = names.get(s.as_str()) {
                *s = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename(i, names)),
        Value::Object(o) => o.values_mut().for_each(|i| rename(i, names)),
        _ => {}
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, or empty.
    pub content_type: String,
    /// All headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON; panics with the body text when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request and reads the whole answer.
pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request failed");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii content type").to_string())
        .unwrap_or_default();
    let body = resp.bytes().await.expect("read body").to_vec();
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

impl TestServer {
    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// URL of `rest` under a log, e.g. `/entries`.
    pub fn log_url(&self, tenant: &str, log: &str, rest: &str) -> String {
        self.url(&format!("/v1/tenants/{tenant}/logs/{log}{rest}"))
    }

    /// `GET` an absolute URL.
    pub async fn get(&self, url: &str) -> Reply {
        send(self.http.get(url)).await
    }

    /// `POST` raw bytes with a content type.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        send(
            self.http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }

    /// `POST` raw bytes with a content type and a bearer token.
    pub async fn post_as(
        &self,
        token: &str,
        url: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        send(
            self.http
                .post(url)
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }

    /// A principal of `tenant` with `roles`, created through the API as the harness.
    pub async fn principal(&self, tenant: &str, name: &str, roles: &[&str]) -> (String, String) {
        let kind = if name.starts_with("svc") {
            "service"
        } else {
            "user"
        };
        let created = self
            .client
            .create_principal(
                tenant,
                &api::CreatePrincipal {
                    kind: kind.into(),
                    name: name.into(),
                    roles: roles.iter().map(|r| r.to_string()).collect(),
                    expires_in_days: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create principal {name} in {tenant}: {e}"));
        (created.principal.id, created.token.token)
    }

    /// The principal that writes as the actor name `name` in `tenant` (a writer and approver),
    /// created on first use. Tests name actors (`svc-train`, `usr-alice`); custody names them
    /// by opaque ids, so the harness keeps the mapping.
    pub async fn actor(&self, tenant: &str, name: &str) -> (String, String) {
        let key = (tenant.to_string(), name.to_string());
        if let Some(found) = self.cast.lock().unwrap().get(&key) {
            return found.clone();
        }
        let roles: &[&str] = if name.ends_with("admin") {
            &["admin"]
        } else {
            &["writer", "approver"]
        };
        let made = self.principal(tenant, name, roles).await;
        self.cast.lock().unwrap().insert(key, made.clone());
        made
    }

    /// The principal id behind an actor name (see [`TestServer::actor`]).
    pub async fn actor_id(&self, tenant: &str, name: &str) -> String {
        self.actor(tenant, name).await.0
    }

    /// Rewrites entries written under an actor name so they are sent by that actor's
    /// principal: the `actor` member is dropped (custody fills in the caller) and every
    /// mention of a known actor name becomes its principal id. Returns the token to send with.
    async fn as_cast(&self, url: &str, values: &mut [Value]) -> Option<String> {
        let tenant = url_tenant(url)?;
        let actor = values.iter().find_map(|v| {
            let id = v.get("actor")?.get("id")?.as_str()?;
            let plain = !id.is_empty()
                && id.len() <= 64
                && !id.starts_with("p_")
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            plain.then(|| id.to_string())
        })?;
        let kind_ok = values.iter().all(|v| {
            v.get("actor")
                .and_then(|a| a.get("kind"))
                .and_then(Value::as_str)
                .is_none_or(|k| k == "user" || k == "service")
        });
        if !kind_ok {
            return None;
        }
        let (_, token) = self.actor(&tenant, &actor).await;
        let names: std::collections::HashMap<String, String> = self
            .cast
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, _), _)| *t == tenant)
            .map(|((_, n), (id, _))| (n.clone(), id.clone()))
            .collect();
        for v in values.iter_mut() {
            if let Value::Object(o) = v
                && o.get("actor")
                    .and_then(|a| a.get("id"))
                    .and_then(Value::as_str)
                    == Some(actor.as_str())
            {
                o.remove("actor");
            }
            rename(v, &names);
        }
        Some(token)
    }

    /// `POST` a JSON value (see [`TestServer::as_cast`] for how actor names are sent).
    pub async fn post_json(&self, url: &str, value: &Value) -> Reply {
        let mut values = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        match self.as_cast(url, &mut values).await {
            Some(token) => {
                let body = if value.is_array() {
                    Value::Array(values)
                } else {
                    values.remove(0)
                };
                self.post_as(&token, url, "application/json", body.to_string())
                    .await
            }
            None => self.post(url, "application/json", value.to_string()).await,
        }
    }

    /// `POST` NDJSON lines, sent by the actor the lines name (see [`TestServer::as_cast`]).
    pub async fn post_ndjson(&self, url: &str, lines: &[Value]) -> Reply {
        let mut values = lines.to_vec();
        let token = self.as_cast(url, &mut values).await;
        let mut body = String::new();
        for v in &values {
            body.push_str(&v.to_string());
            body.push('\n');
        }
        match token {
            Some(t) => self.post_as(&t, url, "application/x-ndjson", body).await,
            None => self.post(url, "application/x-ndjson", body).await,
        }
    }

    /// Creates a tenant, asserting the exact 201 answer; returns its logs.
    pub async fn create_tenant(&self, name: &str) -> Vec<api::LogDescription> {
        let r = self
            .post_json(&self.url("/v1/tenants"), &json!({ "name": name }))
            .await;
        assert_eq!(r.status, 201, "create tenant {name}: {}", r.text());
        assert_eq!(r.content_type, "application/json");
        let t: api::Tenant = serde_json::from_slice(&r.body).expect("tenant JSON");
        assert_eq!(t.name, name);
        t.logs
    }

    /// The size of a log's latest checkpoint, from the log listing.
    pub async fn size(&self, tenant: &str, log: &str) -> u64 {
        let logs = self.client.logs(tenant).await.expect("list logs").logs;
        logs.iter()
            .find(|l| l.name == log)
            .unwrap_or_else(|| panic!("no log {log}"))
            .size
    }

    /// Asks the server to stop (the `shutdown` future of [`custody_server::serve`] resolves).
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits up to `limit` for `serve` to return; `None` if it did not.
    pub async fn join(&mut self, limit: Duration) -> Option<std::io::Result<()>> {
        let task = self.task.as_mut().expect("server task");
        match tokio::time::timeout(limit, task).await {
            Ok(joined) => {
                self.task = None;
                Some(joined.expect("server task panicked"))
            }
            Err(_) => None,
        }
    }
}

/// Checks an RFC 9457 problem answer: exact status, `application/problem+json`, a `status`
/// member equal to the HTTP status, a custody problem type, a title and a non-empty detail.
#[track_caller]
pub fn assert_problem(r: &Reply, status: u16) -> api::Problem {
    assert_eq!(
        r.status,
        status,
        "expected {status}, got {}: {}",
        r.status,
        r.text()
    );
    assert_eq!(r.content_type, "application/problem+json", "{}", r.text());
    let raw = r.json();
    for member in ["type", "title", "status", "detail"] {
        assert!(raw.get(member).is_some(), "problem without {member}: {raw}");
    }
    let p: api::Problem = serde_json::from_value(raw).expect("problem shape");
    assert_eq!(p.status, status, "status member differs from HTTP status");
    assert!(
        p.problem_type.starts_with("https://custody.dev/problems/"),
        "{}",
        p.problem_type
    );
    assert!(!p.title.is_empty());
    assert!(!p.detail.trim().is_empty(), "empty detail");
    p
}

/// Checks a 400 validation problem names `field` among its errors (with a message).
#[track_caller]
pub fn assert_field(p: &api::Problem, field: &str) {
    assert!(
        p.errors
            .iter()
            .any(|e| e.field == field && !e.message.is_empty()),
        "no error for field {field:?} in {:?} ({})",
        p.errors,
        p.detail
    );
}

/// A valid entry submission, without an actor: custody fills in the caller.
pub fn entry(entry_type: &str, subject: &str) -> Value {
    json!({
        "type": entry_type,
        "subject": { "kind": "model_version", "id": subject },
        "body": { "n": 1, "ok": true, "digest": "sha256:00" },
    })
}

/// [`entry`] written under an actor name, for [`TestServer::post_json`] to send as that
/// actor's principal.
pub fn entry_by(entry_type: &str, actor: &str, subject: &str) -> Value {
    let mut e = entry(entry_type, subject);
    let kind = if actor.starts_with("svc") {
        "service"
    } else {
        "user"
    };
    e["actor"] = json!({ "kind": kind, "id": actor });
    e
}

/// Checks a server time: RFC 3339 UTC with exactly six fractional digits.
#[track_caller]
pub fn assert_server_time(t: &str) {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    let ok = b.len() == 27
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26)
        && b[26] == b'Z';
    assert!(ok, "not RFC 3339 UTC with microseconds: {t}");
}
