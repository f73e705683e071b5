//! The evidence service between the HTTP API and the ledger. Writes pass through it so that
//! every typed entry is checked against the tenant's governance state before it is appended:
//! references resolve, approvals are signed by registered keys over the right weights,
//! promotions and deployments satisfy the gate (a refusal is itself appended), and every
//! inference is compared with what the ledger says served in its environment at its request
//! time (a mismatch is appended as a security event). Reads answer audit questions with the
//! entries they rest on and their proofs.
//!
//! Architecture invariant: this service is the only writer of a tenant's governance log, and
//! governance writes of one tenant are serialised (check, append, apply under one lock), so
//! the state a check saw is the state the entry is appended to. The state is a projection of
//! the log, rebuilt from it on first use and advanced only after a commit.

mod erasure;
mod ingest;
mod query;

use std::collections::HashMap;
use std::sync::Arc;

use custody_core::envelope::LogName;
use custody_core::envelope::{Envelope, TenantName, ValidationError};
use custody_evidence::{EntryMeta, Event, EventFields, GovernanceState, Missing};
use custody_ledger::{Appended, Ledger, LedgerError};
use custody_store::{LedgerWriter, LogKey};
use tokio::sync::{Mutex, RwLock};

pub use erasure::{ErasedPayload, ErasureScope};
pub use ingest::{Ingested, SYSTEM_ACTOR};
pub use query::{PackScope, TraceDirection, TraceStart, parse_time};

/// Why a governed write or query failed.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// From the ledger (unknown tenant, storage, idempotency conflict, ...).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A field or reference is wrong; nothing was written.
    #[error("{0}")]
    Invalid(ValidationError),
    /// The write contradicts what is recorded; nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// The gate refused a promotion, rollback or deployment. The refusal was appended.
    #[error("the gate refused the {attempted}: {}", .missing.iter().map(|m| m.detail.as_str()).collect::<Vec<_>>().join("; "))]
    Refused {
        /// The refused entry type.
        attempted: String,
        /// What is missing.
        missing: Vec<Missing>,
        /// Where the refusal was recorded.
        refusal: Appended,
    },
    /// Something asked about does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl From<ValidationError> for GovernanceError {
    fn from(e: ValidationError) -> Self {
        GovernanceError::Invalid(e)
    }
}

/// One tenant's governance state and the lock that serialises its governance writes.
struct TenantGovernance {
    state: RwLock<GovernanceState>,
    writer: Mutex<()>,
}

/// The evidence service.
pub struct Governance<S> {
    ledger: Arc<Ledger<S>>,
    tenants: Mutex<HashMap<TenantName, Arc<TenantGovernance>>>,
}

/// Entries read per storage call while the state is rebuilt.
const REPLAY_CHUNK: u64 = 2_000;

impl<S: LedgerWriter + Clone> Governance<S> {
    /// The service over a ledger.
    pub fn new(ledger: Arc<Ledger<S>>) -> Self {
        Self {
            ledger,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The ledger underneath.
    pub fn ledger(&self) -> &Arc<Ledger<S>> {
        &self.ledger
    }

    fn governance_key(tenant: &TenantName) -> LogKey {
        LogKey {
            tenant: tenant.clone(),
            log: LogName::Governance,
        }
    }

    /// The tenant's state, rebuilt from its governance log on first use.
    async fn tenant(&self, tenant: &TenantName) -> Result<Arc<TenantGovernance>, GovernanceError> {
        let tg = {
            let mut map = self.tenants.lock().await;
            if let Some(tg) = map.get(tenant) {
                return Ok(tg.clone());
            }
            // Fails for an unknown tenant before anything is cached.
            self.ledger
                .checkpoint(&Self::governance_key(tenant))
                .await?;
            let tg = Arc::new(TenantGovernance {
                state: RwLock::new(GovernanceState::default()),
                writer: Mutex::new(()),
            });
            map.insert(tenant.clone(), tg.clone());
            tg
        };
        {
            let _w = tg.writer.lock().await;
            self.catch_up(tenant, &tg).await?;
        }
        Ok(tg)
    }

    /// Takes the tenant's governance writer lock: this process's, then, on a store several
    /// servers share, the database's, so a write is validated against the state and appended
    /// before any other server's governance write of the tenant.
    async fn lock_writer<'a>(
        &self,
        tenant: &TenantName,
        tg: &'a TenantGovernance,
    ) -> Result<(tokio::sync::MutexGuard<'a, ()>, custody_store::LockGuard), GovernanceError> {
        let local = tg.writer.lock().await;
        let shared = self
            .ledger
            .store()
            .lock(&custody_store::log_lock_name(&Self::governance_key(tenant)))
            .await
            .map_err(LedgerError::from)?;
        Ok((local, shared))
    }

    /// Applies governance entries the state has not seen. Called with the writer lock held.
    async fn catch_up(
        &self,
        tenant: &TenantName,
        tg: &TenantGovernance,
    ) -> Result<(), GovernanceError> {
        let key = Self::governance_key(tenant);
        let size = self.ledger.checkpoint(&key).await?.size;
        let mut state = tg.state.write().await;
        let mut next = state.size();
        while next < size {
            let to = (next + REPLAY_CHUNK).min(size);
            for stored in self.ledger.export(&key, next, to).await? {
                let envelope = Envelope::from_canonical(&stored.envelope).map_err(|e| {
                    LedgerError::Corrupt(format!("governance entry {}: {e}", stored.index))
                })?;
                let event = read_envelope(&envelope);
                if let Err(e) = &event {
                    tracing::warn!(tenant = %tenant, index = stored.index, error = %e, "governance entry carries no usable typed event; the state ignores it");
                }
                state.apply(event.ok().flatten().as_ref(), meta(&envelope, stored.index));
            }
            next = to;
        }
        Ok(())
    }
}

/// The typed event of a sealed envelope.
fn read_envelope(e: &Envelope) -> Result<Option<Event>, ValidationError> {
    Event::read(&EventFields {
        entry_type: &e.entry_type,
        actor: &e.actor,
        subject: &e.subject,
        related: &e.related,
        client_time: e.client_time.as_deref(),
        body: &e.body,
    })
}

fn meta(e: &Envelope, index: u64) -> EntryMeta {
    EntryMeta {
        id: e.id.to_string(),
        index,
        time_micros: e.time.unix_micros(),
        actor: e.actor.id.clone(),
    }
}
