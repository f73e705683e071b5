//! A typed client for custody's `/v1` HTTP API, used by the CLI, the tests and any Rust
//! program that records or audits evidence.
//!
//! Errors keep the server's RFC 9457 problem intact, so a caller can show the exact field and
//! fix the server named.

use custody_api as api;
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a problem.
    #[error("{}", problem_line(.0))]
    Problem(Box<api::Problem>),
    /// The server answered with an error that is not a problem document.
    #[error("HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// Response text, truncated.
        body: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The URL asked for.
        url: String,
        /// What failed.
        message: String,
    },
    /// The response was not what the API documents.
    #[error("unexpected response from {url}: {message}")]
    Decode {
        /// The URL asked for.
        url: String,
        /// What failed.
        message: String,
    },
}

fn problem_line(p: &api::Problem) -> String {
    match p.errors.as_slice() {
        [] => format!("{} ({}): {}", p.title, p.status, p.detail),
        fields => {
            let list: Vec<String> = fields
                .iter()
                .map(|f| {
                    if f.field.is_empty() {
                        f.message.clone()
                    } else {
                        format!("{}: {}", f.field, f.message)
                    }
                })
                .collect();
            format!("{} ({}): {}", p.title, p.status, list.join("; "))
        }
    }
}

impl ClientError {
    /// The problem document, when the server sent one.
    pub fn problem(&self) -> Option<&api::Problem> {
        match self {
            ClientError::Problem(p) => Some(p),
            _ => None,
        }
    }

    /// For a gate refusal (422): what the gate found missing and where custody recorded the
    /// refusal in the governance log.
    pub fn gate_refusal(&self) -> Option<(&[api::evidence::GateGap], &api::RecordedRefusal)> {
        let p = self.problem()?;
        p.refusal.as_ref().map(|r| (p.missing.as_slice(), r))
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem(p) => Some(p.status),
            ClientError::Status { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }
}

/// Result of a client call.
pub type ClientResult<T> = Result<T, ClientError>;

/// Filters for [`Client::list`]; unset fields are not sent.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Exact entry type.
    pub entry_type: Option<String>,
    /// Exact actor id.
    pub actor: Option<String>,
    /// Exact subject id.
    pub subject: Option<String>,
    /// An id among the related links.
    pub related: Option<String>,
    /// RFC 3339 lower bound (inclusive).
    pub since: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    pub until: Option<String>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

/// Where [`Client::trace`] starts and which way it walks; exactly one start must be set
/// (`log` goes with `index`).
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    /// An entry id (UUID), in either log.
    pub entry: Option<String>,
    /// An inference's request id.
    pub request_id: Option<String>,
    /// A version hash, dataset digest, training run id or deployment id.
    pub subject: Option<String>,
    /// With `index`: the log of the start entry (default governance).
    pub log: Option<String>,
    /// With `log`: the index of the start entry.
    pub index: Option<u64>,
    /// Walk forward (what rests on the start) instead of backward (what it rests on).
    pub forward: bool,
    /// Forward: most inferences to include.
    pub limit: Option<u32>,
}

/// What [`Client::evidence`] packs: one of a model version, an inference (by request id or
/// entry id), or a time window.
#[derive(Debug, Clone, Default)]
pub struct PackQuery {
    /// A version hash.
    pub model: Option<String>,
    /// An inference's request id.
    pub request_id: Option<String>,
    /// An inference's entry id.
    pub entry: Option<String>,
    /// Window start (RFC 3339), with `until`.
    pub since: Option<String>,
    /// Window end (RFC 3339, exclusive), with `since`.
    pub until: Option<String>,
    /// Window: most inference records to include.
    pub inferences: Option<u32>,
}

/// A transport error with its causes, which reqwest's own text leaves out (a refused
/// certificate, a refused connection).
fn transport_message(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Why custody's TLS configuration cannot be built: a CA certificate that is not PEM or
/// cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// A reqwest client builder with the TLS configuration of [`Client`] (ring, the platform's
/// roots and the PEM certificates in `ca_pem`), for other HTTP clients of custody's (the
/// CLI's log monitor), so that every one trusts the same servers.
pub fn http_builder(ca_pem: Option<&[u8]>) -> Result<reqwest::ClientBuilder, TlsError> {
    let extra = match ca_pem {
        Some(pem) => tls::certificates(pem)
            .map_err(|e| TlsError(format!("the CA certificate is not PEM: {e}")))?,
        None => Vec::new(),
    };
    let config = tls::client_config(extra).map_err(TlsError)?;
    Ok(reqwest::Client::builder().tls_backend_preconfigured(config))
}

/// Makes ring the process's default rustls crypto provider, as the binaries do first thing.
///
/// reqwest is built without aws-lc-rs, so a reqwest client that a library builds for itself
/// (object_store's, for S3) takes the process default and panics when there is none. custody's
/// own clients do not need it: [`Client`] and the PostgreSQL and server TLS configurations name
/// ring explicitly. Idempotent; a provider installed earlier is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A connection to one custody server. Cheap to clone; clones share a connection pool.
/// Its `Debug` never shows the token.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<std::sync::Arc<str>>,
    purpose: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("purpose", &self.purpose)
            .finish()
    }
}

/// The header that carries the reason for a read into the access log.
pub const PURPOSE_HEADER: &str = "Custody-Purpose";

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8443`).
    pub fn new(base_url: &str) -> ClientResult<Self> {
        Self::with_ca(base_url, None)
    }

    /// A client that also trusts the PEM certificates in `ca_pem` for `https://` servers (a
    /// private CA, or the server's own self-signed certificate), besides the platform's roots.
    pub fn with_ca(base_url: &str, ca_pem: Option<&[u8]>) -> ClientResult<Self> {
        let transport = |message: String| ClientError::Transport {
            url: base_url.into(),
            message,
        };
        let http = http_builder(ca_pem)
            .map_err(|e| transport(e.to_string()))?
            .user_agent(concat!("custody-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| transport(e.to_string()))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            http,
            token: None,
            purpose: None,
        })
    }

    /// The same client, authenticating with `token` (`cst_...`).
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.trim().into());
        self
    }

    /// The same client, sending `purpose` as the reason for its reads (recorded in the
    /// tenant's access log; payloads are returned only with a purpose).
    pub fn with_purpose(mut self, purpose: Option<String>) -> Self {
        self.purpose = purpose;
        self
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn log_url(&self, tenant: &str, log: &str, rest: &str) -> String {
        format!("{}/v1/tenants/{tenant}/logs/{log}{rest}", self.base)
    }

    async fn send(&self, url: &str, mut req: reqwest::RequestBuilder) -> ClientResult<Response> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(p) = &self.purpose {
            req = req.header(PURPOSE_HEADER, p);
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            url: url.into(),
            message: transport_message(&e),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let is_problem = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(api::PROBLEM_JSON));
        let body = resp.text().await.unwrap_or_default();
        if is_problem && let Ok(p) = serde_json::from_str::<api::Problem>(&body) {
            return Err(ClientError::Problem(Box::new(p)));
        }
        Err(ClientError::Status {
            status,
            body: body.chars().take(500).collect(),
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> ClientResult<T> {
        let resp = self.send(url, req).await?;
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: url.into(),
            message: transport_message(&e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: url.into(),
            message: e.to_string(),
        })
    }

    async fn text(&self, url: &str) -> ClientResult<String> {
        let resp = self.send(url, self.http.get(url)).await?;
        resp.text().await.map_err(|e| ClientError::Transport {
            url: url.into(),
            message: transport_message(&e),
        })
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> ClientResult<api::Health> {
        let url = format!("{}/healthz", self.base);
        self.json(&url, self.http.get(&url)).await
    }

    /// Creates a tenant and its logs.
    pub async fn create_tenant(&self, name: &str) -> ClientResult<api::Tenant> {
        let url = format!("{}/v1/tenants", self.base);
        let req = self
            .http
            .post(&url)
            .json(&api::CreateTenant { name: name.into() });
        self.json(&url, req).await
    }

    /// Lists tenants.
    pub async fn tenants(&self) -> ClientResult<api::TenantList> {
        let url = format!("{}/v1/tenants", self.base);
        self.json(&url, self.http.get(&url)).await
    }

    /// Lists a tenant's logs.
    pub async fn logs(&self, tenant: &str) -> ClientResult<api::LogList> {
        let url = format!("{}/v1/tenants/{tenant}/logs", self.base);
        self.json(&url, self.http.get(&url)).await
    }

    /// Appends one entry.
    pub async fn append(
        &self,
        tenant: &str,
        log: &str,
        entry: &Value,
    ) -> ClientResult<api::AppendResult> {
        let url = self.log_url(tenant, log, "/entries");
        self.json(&url, self.http.post(&url).json(entry)).await
    }

    /// Appends several entries atomically.
    pub async fn append_all(
        &self,
        tenant: &str,
        log: &str,
        entries: &[Value],
    ) -> ClientResult<api::AppendResults> {
        let url = self.log_url(tenant, log, "/entries");
        self.json(&url, self.http.post(&url).json(entries)).await
    }

    /// Appends an NDJSON body (one entry per line) atomically.
    pub async fn append_ndjson(
        &self,
        tenant: &str,
        log: &str,
        ndjson: Vec<u8>,
    ) -> ClientResult<api::AppendResults> {
        let url = self.log_url(tenant, log, "/entries");
        let req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, api::NDJSON)
            .body(ndjson);
        self.json(&url, req).await
    }

    /// One entry.
    pub async fn entry(
        &self,
        tenant: &str,
        log: &str,
        index: u64,
    ) -> ClientResult<api::EntryRecord> {
        let url = self.log_url(tenant, log, &format!("/entries/{index}"));
        self.json(&url, self.http.get(&url)).await
    }

    /// A page of entries.
    pub async fn list(
        &self,
        tenant: &str,
        log: &str,
        q: &ListQuery,
    ) -> ClientResult<api::EntryList> {
        let url = self.log_url(tenant, log, "/entries");
        let mut params: Vec<(&str, String)> = Vec::new();
        let fields = [
            ("type", &q.entry_type),
            ("actor", &q.actor),
            ("subject", &q.subject),
            ("related", &q.related),
            ("since", &q.since),
            ("until", &q.until),
            ("cursor", &q.cursor),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                params.push((k, v.clone()));
            }
        }
        if let Some(l) = q.limit {
            params.push(("limit", l.to_string()));
        }
        self.json(&url, self.http.get(&url).query(&params)).await
    }

    /// The latest signed checkpoint, byte-exact.
    pub async fn checkpoint(&self, tenant: &str, log: &str) -> ClientResult<String> {
        self.text(&self.log_url(tenant, log, "/checkpoint")).await
    }

    /// The verifier key string (without the trailing newline).
    pub async fn vkey(&self, tenant: &str, log: &str) -> ClientResult<String> {
        Ok(self
            .text(&self.log_url(tenant, log, "/vkey"))
            .await?
            .trim_end()
            .to_string())
    }

    /// The C2SP tlog-proof of an entry.
    pub async fn tlog_proof(&self, tenant: &str, log: &str, index: u64) -> ClientResult<String> {
        self.text(&self.log_url(tenant, log, &format!("/entries/{index}/tlog-proof")))
            .await
    }

    /// Inclusion proof of `index` in the tree of `size` (default: latest).
    pub async fn inclusion_proof(
        &self,
        tenant: &str,
        log: &str,
        index: u64,
        size: Option<u64>,
    ) -> ClientResult<api::InclusionProof> {
        let url = self.log_url(tenant, log, "/proof/inclusion");
        let mut params = vec![("index", index.to_string())];
        if let Some(s) = size {
            params.push(("size", s.to_string()));
        }
        self.json(&url, self.http.get(&url).query(&params)).await
    }

    /// Consistency proof between two sizes.
    pub async fn consistency_proof(
        &self,
        tenant: &str,
        log: &str,
        from: u64,
        to: u64,
    ) -> ClientResult<api::ConsistencyProof> {
        let url = self.log_url(tenant, log, "/proof/consistency");
        let req = self
            .http
            .get(&url)
            .query(&[("from", from.to_string()), ("to", to.to_string())]);
        self.json(&url, req).await
    }

    /// Leaves `[from, to)` exactly as stored (at most 10,000 per call).
    pub async fn export(
        &self,
        tenant: &str,
        log: &str,
        from: u64,
        to: u64,
    ) -> ClientResult<Vec<api::ExportedLeaf>> {
        let url = self.log_url(tenant, log, "/export");
        let req = self
            .http
            .get(&url)
            .query(&[("from", from.to_string()), ("to", to.to_string())]);
        let resp = self.send(&url, req).await?;
        let body = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            message: transport_message(&e),
        })?;
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice(l).map_err(|e| ClientError::Decode {
                    url: url.clone(),
                    message: e.to_string(),
                })
            })
            .collect()
    }
    fn tenant_url(&self, tenant: &str, rest: &str) -> String {
        format!("{}/v1/tenants/{tenant}{rest}", self.base)
    }

    /// `GET /v1/tenants/{tenant}/trace`: the evidence chain behind (or ahead of) one entry,
    /// with proofs.
    pub async fn trace(
        &self,
        tenant: &str,
        q: &TraceQuery,
    ) -> ClientResult<api::evidence::TraceAnswer> {
        let url = self.tenant_url(tenant, "/trace");
        let mut params: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("entry", &q.entry),
            ("request_id", &q.request_id),
            ("subject", &q.subject),
            ("log", &q.log),
        ] {
            if let Some(v) = v {
                params.push((k, v.clone()));
            }
        }
        if let Some(i) = q.index {
            params.push(("index", i.to_string()));
        }
        if q.forward {
            params.push(("direction", "forward".into()));
        }
        if let Some(l) = q.limit {
            params.push(("limit", l.to_string()));
        }
        self.json(&url, self.http.get(&url).query(&params)).await
    }

    /// `GET /v1/tenants/{tenant}/served`: what served in `env` at `at` (RFC 3339; default
    /// now), with proofs.
    pub async fn served(
        &self,
        tenant: &str,
        env: &str,
        at: Option<&str>,
    ) -> ClientResult<api::evidence::ServedAnswer> {
        let url = self.tenant_url(tenant, "/served");
        let mut params = vec![("env", env.to_owned())];
        if let Some(at) = at {
            params.push(("at", at.to_owned()));
        }
        self.json(&url, self.http.get(&url).query(&params)).await
    }

    /// `GET /v1/tenants/{tenant}/models/{hash}/history`: every serving change of a model
    /// version and every governance entry about it, with proofs.
    pub async fn history(
        &self,
        tenant: &str,
        version_hash: &str,
    ) -> ClientResult<api::evidence::HistoryAnswer> {
        let url = self.tenant_url(tenant, &format!("/models/{version_hash}/history"));
        self.json(&url, self.http.get(&url)).await
    }

    /// `GET /v1/tenants/{tenant}/admit`: may the weights with this version hash serve in `env`
    /// now? Not being admitted is an answer (`admitted: false`), not an error.
    pub async fn admit(
        &self,
        tenant: &str,
        digest: &str,
        env: &str,
    ) -> ClientResult<api::evidence::AdmitAnswer> {
        let url = self.tenant_url(tenant, "/admit");
        let req = self
            .http
            .get(&url)
            .query(&[("digest", digest), ("env", env)]);
        self.json(&url, req).await
    }

    /// `GET /v1/tenants/{tenant}/evidence`: a self-contained evidence pack.
    pub async fn evidence(
        &self,
        tenant: &str,
        q: &PackQuery,
    ) -> ClientResult<api::evidence::EvidencePack> {
        let url = self.tenant_url(tenant, "/evidence");
        let mut params: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("model", &q.model),
            ("request_id", &q.request_id),
            ("entry", &q.entry),
            ("since", &q.since),
            ("until", &q.until),
        ] {
            if let Some(v) = v {
                params.push((k, v.clone()));
            }
        }
        if let Some(n) = q.inferences {
            params.push(("inferences", n.to_string()));
        }
        self.json(&url, self.http.get(&url).query(&params)).await
    }

    /// `GET /v1/whoami`.
    pub async fn whoami(&self) -> ClientResult<api::WhoAmI> {
        let url = format!("{}/v1/whoami", self.base);
        self.json(&url, self.http.get(&url)).await
    }

    /// `POST /v1/tenants/{tenant}/principals`: the principal and its first token.
    pub async fn create_principal(
        &self,
        tenant: &str,
        req: &api::CreatePrincipal,
    ) -> ClientResult<api::CreatedPrincipal> {
        let url = format!("{}/v1/tenants/{tenant}/principals", self.base);
        self.json(&url, self.http.post(&url).json(req)).await
    }

    /// `GET /v1/tenants/{tenant}/principals`.
    pub async fn principals(&self, tenant: &str) -> ClientResult<api::PrincipalList> {
        let url = format!("{}/v1/tenants/{tenant}/principals", self.base);
        self.json(&url, self.http.get(&url)).await
    }

    /// `POST .../principals/{principal}/tokens`.
    pub async fn issue_token(
        &self,
        tenant: &str,
        principal: &str,
        expires_in_days: Option<u32>,
    ) -> ClientResult<api::IssuedToken> {
        let url = format!(
            "{}/v1/tenants/{tenant}/principals/{principal}/tokens",
            self.base
        );
        let body = api::IssueToken { expires_in_days };
        self.json(&url, self.http.post(&url).json(&body)).await
    }

    /// `GET .../principals/{principal}/tokens`.
    pub async fn tokens(&self, tenant: &str, principal: &str) -> ClientResult<api::TokenList> {
        let url = format!(
            "{}/v1/tenants/{tenant}/principals/{principal}/tokens",
            self.base
        );
        self.json(&url, self.http.get(&url)).await
    }

    /// `DELETE /v1/tenants/{tenant}/tokens/{token}`.
    pub async fn revoke_token(&self, tenant: &str, token_id: &str) -> ClientResult<api::TokenInfo> {
        let url = format!("{}/v1/tenants/{tenant}/tokens/{token_id}", self.base);
        self.json(&url, self.http.delete(&url)).await
    }

    /// `POST /v1/tenants/{tenant}/erasures`: erase every payload naming a data subject.
    pub async fn erase_subject(
        &self,
        tenant: &str,
        req: &api::EraseRequest,
    ) -> ClientResult<api::ErasureReport> {
        let url = format!("{}/v1/tenants/{tenant}/erasures", self.base);
        self.json(&url, self.http.post(&url).json(req)).await
    }

    /// `POST /v1/tenants/{tenant}/retention/apply`: erase payloads past their retention.
    pub async fn apply_retention(
        &self,
        tenant: &str,
        req: &api::RetentionApply,
    ) -> ClientResult<api::ErasureReport> {
        let url = format!("{}/v1/tenants/{tenant}/retention/apply", self.base);
        self.json(&url, self.http.post(&url).json(req)).await
    }

    /// `POST /v1/tenants/{tenant}/reconcile`: deep verification of the tenant's logs.
    pub async fn reconcile(&self, tenant: &str) -> ClientResult<api::ReconcileReport> {
        let url = format!("{}/v1/tenants/{tenant}/reconcile", self.base);
        self.json(&url, self.http.post(&url)).await
    }

    /// `POST .../witness`: proof that the log extends a checkpoint the caller holds.
    pub async fn witness(
        &self,
        tenant: &str,
        log: &str,
        checkpoint: &str,
    ) -> ClientResult<api::WitnessAnswer> {
        let url = self.log_url(tenant, log, "/witness");
        let req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body(checkpoint.to_owned());
        self.json(&url, req).await
    }

    /// `POST .../rotate-key`: switch a log to a new signing key.
    pub async fn rotate_key(&self, tenant: &str, log: &str) -> ClientResult<api::KeyRotation> {
        let url = self.log_url(tenant, log, "/rotate-key");
        self.json(&url, self.http.post(&url)).await
    }
}

/// The rustls configuration of [`Client`]: ring, the platform's roots plus any given CA.
mod tls {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::server::ParsedCertificate;
    use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

    /// Every certificate in `pem`; at least one.
    pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        if certs.is_empty() {
            return Err("no CERTIFICATE block".into());
        }
        Ok(certs)
    }

    /// A configuration that verifies servers against the platform's roots and `extra`.
    pub(crate) fn client_config(
        extra: Vec<CertificateDer<'static>>,
    ) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> =
            match rustls_platform_verifier::Verifier::new_with_extra_roots(
                extra.clone(),
                provider.clone(),
            ) {
                Ok(v) => Arc::new(SelfSigned {
                    platform: v,
                    given: extra,
                }),
                // A machine without a CA bundle (a slim container) still speaks plain http.
                Err(_) if extra.is_empty() => Arc::new(NoRoots(provider.clone())),
                Err(e) => return Err(format!("cannot use the CA certificate: {e}")),
            };
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    /// The platform's verifier, and one certificate it refuses that OpenSSL accepts: a
    /// self-signed certificate marked as a CA (as `openssl req -x509` makes them), given with
    /// `--ca-cert` and presented by the server itself. It is trusted as exactly that
    /// certificate, still for its host names only; its validity period has been checked, since
    /// webpki checks it before refusing a CA as an end entity.
    #[derive(Debug)]
    struct SelfSigned {
        platform: rustls_platform_verifier::Verifier,
        given: Vec<CertificateDer<'static>>,
    }

    impl ServerCertVerifier for SelfSigned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            match self.platform.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(e)))
                    if matches!(
                        e.0.downcast_ref::<webpki::Error>(),
                        Some(webpki::Error::CaUsedAsEndEntity)
                    ) && self.given.iter().any(|c| c.as_ref() == end_entity.as_ref()) =>
                {
                    rustls::client::verify_server_name(
                        &ParsedCertificate::try_from(end_entity)?,
                        server_name,
                    )?;
                    Ok(ServerCertVerified::assertion())
                }
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.platform.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.platform.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.platform.supported_verify_schemes()
        }
    }

    /// Refuses every server certificate, saying why: the machine has no CA certificates and
    /// none was given, so no https server can be verified.
    #[derive(Debug)]
    struct NoRoots(Arc<CryptoProvider>);

    impl ServerCertVerifier for NoRoots {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Err(rustls::Error::General(
                "this machine has no CA certificates to verify the server with: install them (ca-certificates) or pass --ca-cert".into(),
            ))
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn self_signed(ca: bool) -> CertificateDer<'static> {
            let mut params =
                rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
            if ca {
                params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            }
            let key = rcgen::KeyPair::generate().expect("key");
            params.self_signed(&key).expect("certificate").der().clone()
        }

        fn verifier(given: &CertificateDer<'static>) -> SelfSigned {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            SelfSigned {
                platform: rustls_platform_verifier::Verifier::new_with_extra_roots(
                    [given.clone()],
                    provider,
                )
                .expect("verifier"),
                given: vec![given.clone()],
            }
        }

        fn check(
            v: &impl ServerCertVerifier,
            presented: &CertificateDer<'_>,
            host: &str,
        ) -> Result<ServerCertVerified, rustls::Error> {
            v.verify_server_cert(
                presented,
                &[],
                &ServerName::try_from(host.to_owned()).expect("name"),
                &[],
                UnixTime::now(),
            )
        }

        fn verify(
            given: &CertificateDer<'static>,
            presented: &CertificateDer<'_>,
            host: &str,
        ) -> Result<ServerCertVerified, rustls::Error> {
            check(&verifier(given), presented, host)
        }

        #[test]
        fn a_given_self_signed_certificate_is_trusted_even_when_marked_as_a_ca() {
            let ca = self_signed(true);
            let refused = check(&verifier(&ca).platform, &ca, "localhost").unwrap_err();
            assert!(
                refused.to_string().contains("CaUsedAsEndEntity"),
                "webpki alone refuses it: {refused}"
            );
            for ca in [false, true] {
                let cert = self_signed(ca);
                verify(&cert, &cert, "localhost").expect("the given certificate is trusted");
                let err = verify(&cert, &cert, "elsewhere.test").unwrap_err();
                assert!(err.to_string().contains("not valid for name"), "{err}");
                let other = self_signed(ca);
                verify(&cert, &other, "localhost").expect_err("another certificate is not");
            }
        }
    }
}
