//! custody's HTTP server: the `/v1` JSON API over a [`Ledger`], and every log as a C2SP tiled
//! transparency log under `/tlog/{tenant}/{log}/`.
//!
//! The server is a library so tests and the `custody serve` command run the same router; the
//! binary only wires configuration, storage and signals to [`serve`].
//!
//! API boundary: every response is either the documented JSON (see [`openapi`]), a byte-exact
//! C2SP format (checkpoints, tlog-proofs, verifier keys, tiles, entry bundles), or an RFC 9457
//! problem. Handlers parse their own inputs so that malformed JSON, a wrong content type or an
//! oversize body all get a precise problem rather than a framework default, and none of them
//! writes anything.

mod access;
mod audit;
mod auth;
mod erasure;
mod integrity;
mod limits;
mod principals;
mod problem;
mod routes;
mod tiles;
mod tls;

use std::future::Future;
use std::sync::Arc;

use custody_auth::Auth;
use custody_governance::Governance;
use custody_ledger::Ledger;
use custody_store::{AuthStore, LedgerWriter};
use tokio::net::TcpListener;

pub use access::{ACCESS_DENIED, ACCESS_READ};
pub use auth::{Caller, PURPOSE_HEADER};
pub use integrity::{FORK_DETECTED, INTEGRITY_FAILURE, reconcile_tenant, spawn_reconciliation};
pub use limits::Rate;
pub use principals::{PRINCIPAL_CREATED, TOKEN_ISSUED, TOKEN_REVOKED};
pub use problem::ApiError;
pub use routes::{MAX_BODY_BYTES, openapi, router};
pub use tls::{Peer, TlsError, tls_config};

/// What a storage backend must provide to serve the API: the ledger and the principals.
pub trait Backend: LedgerWriter + AuthStore + Clone {}

impl<S: LedgerWriter + AuthStore + Clone> Backend for S {}

/// State shared by every handler.
pub struct AppState<S> {
    /// The ledger behind the API, for reads.
    pub ledger: Arc<Ledger<S>>,
    /// The evidence service: every write, and the audit answers.
    pub governance: Arc<Governance<S>>,
    /// Principals and tokens.
    pub auth: Arc<Auth<S>>,
    /// Per-token request limits.
    pub principal_limit: Arc<limits::Limiter>,
    /// Per-address limits on failed authentication.
    pub failed_auth_limit: Arc<limits::Limiter>,
}

impl<S: Backend> AppState<S> {
    /// State over a ledger, with the default limits.
    pub fn new(ledger: Arc<Ledger<S>>) -> Self {
        Self::with_options(ledger, &ServeOptions::default())
    }

    /// State over a ledger.
    pub fn with_options(ledger: Arc<Ledger<S>>, options: &ServeOptions) -> Self {
        Self {
            governance: Arc::new(Governance::new(ledger.clone())),
            auth: Arc::new(Auth::new(ledger.store().clone())),
            principal_limit: Arc::new(limits::Limiter::new(options.principal_rate)),
            failed_auth_limit: Arc::new(limits::Limiter::new(options.failed_auth_rate)),
            ledger,
        }
    }
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            ledger: self.ledger.clone(),
            governance: self.governance.clone(),
            auth: self.auth.clone(),
            principal_limit: self.principal_limit.clone(),
            failed_auth_limit: self.failed_auth_limit.clone(),
        }
    }
}

/// How [`serve`] runs, beyond the router.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Deep-verify every log this often (`None`: never).
    pub reconcile_every: Option<std::time::Duration>,
    /// Requests per authenticated token.
    pub principal_rate: Rate,
    /// Requests per source address that fail authentication (slows token guessing).
    pub failed_auth_rate: Rate,
    /// Longest a request may take, body included, before it is answered 408.
    pub request_timeout: std::time::Duration,
    /// Serve HTTPS with this configuration (see [`tls_config`]) instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    /// Generous for pipelines and serving fleets that share a token (20,000 requests/s per
    /// token, bursts of 40,000), strict for strangers (10 failed authentications/s per address,
    /// bursts of 50), 120 s per request.
    fn default() -> Self {
        Self {
            reconcile_every: None,
            principal_rate: Rate {
                per_second: 20_000.0,
                burst: 40_000.0,
            },
            failed_auth_rate: Rate {
                per_second: 10.0,
                burst: 50.0,
            },
            request_timeout: std::time::Duration::from_secs(120),
            tls: None,
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests
/// and drains the sequencers, so every write that was acknowledged stays acknowledged and every
/// write in progress is either committed and acknowledged or never acknowledged.
pub async fn serve<S: Backend>(
    listener: TcpListener,
    ledger: Arc<Ledger<S>>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::with_options(ledger.clone(), &options);
    if let Some(every) = options.reconcile_every {
        spawn_reconciliation(state.clone(), every);
    }
    let app = router(state)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .layer(axum::middleware::map_response(problem::ensure_problem));
    let service = app.into_make_service_with_connect_info::<Peer>();
    match options.tls {
        Some(config) => {
            axum::serve(tls::TlsListener::new(listener, config)?, service)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    ledger.shutdown().await;
    Ok(())
}
