//! Running the server: the router with its timeouts and limits on a listener (plain HTTP or
//! TLS), the scheduled deep verification, and a graceful stop that drains the sequencers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use custody_governance::{Backend, Governance};
use tokio::net::TcpListener;

use crate::error::ensure_problem;
use crate::limits::Rate;
use crate::router::router;
use crate::state::AppState;
use crate::tls::{Peer, TlsListener};

/// How [`serve`] runs, beyond the router.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Deep-verify every log this often (`None`: never).
    pub reconcile_every: Option<Duration>,
    /// Requests per authenticated token.
    pub principal_rate: Rate,
    /// Requests per source address that fail authentication (slows token guessing).
    pub failed_auth_rate: Rate,
    /// Longest a request may take, body included, before it is answered 408.
    pub request_timeout: Duration,
    /// Serve HTTPS with this configuration (see [`crate::tls_config`]) instead of plain HTTP.
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
            request_timeout: Duration::from_secs(120),
            tls: None,
        }
    }
}

/// Deep-verifies every tenant's logs every `every`, until the server stops; what it finds is
/// recorded by the evidence service.
fn spawn_reconciliation<S: Backend>(governance: Arc<Governance<S>>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let tenants = match governance.ledger().tenants().await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciliation: cannot list tenants");
                    continue;
                }
            };
            for t in tenants {
                match governance.reconcile(&t).await {
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

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests
/// and drains the sequencers, so every write that was acknowledged stays acknowledged and every
/// write in progress is either committed and acknowledged or never acknowledged.
pub async fn serve<S: Backend>(
    listener: TcpListener,
    governance: Arc<Governance<S>>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(
        governance.clone(),
        options.principal_rate,
        options.failed_auth_rate,
    );
    if let Some(every) = options.reconcile_every {
        spawn_reconciliation(governance.clone(), every);
    }
    let app = router(state)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .layer(axum::middleware::map_response(ensure_problem));
    let service = app.into_make_service_with_connect_info::<Peer>();
    match options.tls {
        Some(config) => {
            axum::serve(TlsListener::new(listener, config)?, service)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    governance.ledger().shutdown().await;
    Ok(())
}
