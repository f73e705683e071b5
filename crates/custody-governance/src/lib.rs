//! The evidence service: the one writer of evidence. It holds the ledger's [`Appender`], so
//! every entry that reaches a log passes through it, whether a client submitted it or custody
//! writes it on its own behalf.
//!
//! Client entries are checked against the tenant's governance state before they are appended:
//! the caller is the actor and holds the role each type needs, references resolve, approvals
//! are signed by registered keys over the right weights, promotions and deployments satisfy
//! the gate (a refusal is itself appended), and every inference is compared with what the
//! ledger says served in its environment at its request time (a mismatch is appended as a
//! security event). custody's own evidence goes the same way: principal and token records
//! (committed atomically with the rows they describe), access reads and refusals, security
//! events from reconciliation and witnesses, key rotations and erasure records. Reads answer
//! audit questions with the entries they rest on and their proofs.
//!
//! Architecture invariant: nothing else can append (the [`Appender`] is not `Clone`), and
//! governance writes of one tenant, the client's and custody's own alike, are serialised
//! (catch up, check, append, apply under one lock), so the state a check saw is the state the
//! entry is appended to. The state is a projection of the log, rebuilt from it on first use
//! and advanced only after a commit.

mod access_control;
mod access_log;
mod erasure;
mod ingest;
mod integrity;
mod query;

use std::collections::HashMap;
use std::sync::Arc;

use custody_auth::{Auth, AuthError};
use custody_core::envelope::{EntryInput, Envelope, LogName, TenantName, ValidationError};
use custody_evidence::{EntryMeta, Event, EventFields, GovernanceState, Missing};
use custody_ledger::{AppendOutcome, Appended, Appender, Ledger, LedgerError};
use custody_store::{AccessChange, AuthStore, LedgerWriter, LogKey};
use tokio::sync::{Mutex, RwLock};

pub use access_control::{PRINCIPAL_CREATED, TOKEN_ISSUED, TOKEN_REVOKED};
pub use access_log::{ACCESS_DENIED, ACCESS_READ, Attempt, Caller, ReadRecord};
pub use erasure::{ErasedPayload, ErasureScope};
pub use ingest::{Ingested, MAX_ENTRIES_PER_REQUEST, SYSTEM_ACTOR};
pub use integrity::{FORK_DETECTED, INTEGRITY_FAILURE};
pub use query::{PackScope, TraceDirection, TraceStart, parse_time};

/// What a storage backend must provide to hold evidence: the ledger and the principals.
pub trait Backend: LedgerWriter + AuthStore + Clone {}

impl<S: LedgerWriter + AuthStore + Clone> Backend for S {}

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
    /// The caller may call the route but not write this entry (a type its roles do not
    /// cover); nothing was written.
    #[error("{0}")]
    Forbidden(String),
    /// A checkpoint a witness holds is not a prefix of the log: the log forked or was rolled
    /// back. A `security.fork_detected` entry was appended.
    #[error("{0}")]
    ForkDetected(String),
}

impl From<ValidationError> for GovernanceError {
    fn from(e: ValidationError) -> Self {
        GovernanceError::Invalid(e)
    }
}

impl From<AuthError> for GovernanceError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid { field, message } => {
                GovernanceError::Invalid(ValidationError::one(&field, message))
            }
            AuthError::NotFound(m) => GovernanceError::NotFound(m),
            AuthError::Random(m) => GovernanceError::Ledger(LedgerError::Unavailable(m)),
            AuthError::Store(s) => GovernanceError::Ledger(s.into()),
        }
    }
}

/// One tenant's governance state and the lock that serialises its governance writes.
struct TenantGovernance {
    state: RwLock<GovernanceState>,
    writer: Mutex<()>,
}

/// The evidence service.
pub struct Governance<S> {
    /// Reads.
    ledger: Arc<Ledger<S>>,
    /// The only way to write to the ledger.
    appender: Appender<S>,
    /// Principals and tokens: authentication (with its token cache, so a revocation made here
    /// takes effect at once) and the planning of changes.
    auth: Auth<S>,
    tenants: Mutex<HashMap<TenantName, Arc<TenantGovernance>>>,
}

/// Entries read per storage call while the state is rebuilt.
const REPLAY_CHUNK: u64 = 2_000;

impl<S: Backend> Governance<S> {
    /// The service over the ledger whose appender it is given; it becomes the ledger's only
    /// writer.
    pub fn new(appender: Appender<S>) -> Self {
        Self {
            ledger: appender.ledger().clone(),
            auth: Auth::new(appender.store().clone()),
            appender,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The ledger underneath, for reads.
    pub fn ledger(&self) -> &Arc<Ledger<S>> {
        &self.ledger
    }

    /// Who a bearer token belongs to, if it is valid at `now_micros`. Principals and tokens
    /// change only through this service ([`Governance::create_principal`], ...), which records
    /// every change; this is the read side.
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        now_micros: i64,
    ) -> Result<Result<custody_auth::Principal, custody_auth::Denial>, custody_store::StoreError>
    {
        self.auth.authenticate(bearer, now_micros).await
    }

    /// The principals of a tenant.
    pub async fn principals(
        &self,
        tenant: &TenantName,
    ) -> Result<Vec<custody_auth::PrincipalView>, GovernanceError> {
        Ok(self.auth.principals(tenant.as_str()).await?)
    }

    /// The tokens of a principal of a tenant (never their secrets).
    pub async fn tokens(
        &self,
        tenant: &TenantName,
        principal_id: &str,
    ) -> Result<Vec<custody_auth::TokenView>, GovernanceError> {
        Ok(self.auth.tokens(tenant.as_str(), principal_id).await?)
    }

    /// Creates a tenant with its three logs, each with a new signing key.
    pub async fn create_tenant(
        &self,
        tenant: &TenantName,
    ) -> Result<Vec<custody_ledger::LogInfo>, GovernanceError> {
        Ok(self.appender.create_tenant(tenant).await?)
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
            .appender
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

    /// Advances the state by entries just committed (retries were applied when first written).
    async fn apply_committed(
        &self,
        tg: &TenantGovernance,
        envelopes: &[Envelope],
        outcome: &AppendOutcome,
    ) {
        let mut state = tg.state.write().await;
        for (envelope, result) in envelopes.iter().zip(&outcome.results) {
            if result.existing || result.index < state.size() {
                continue;
            }
            let event = read_envelope(envelope).ok().flatten();
            state.apply(event.as_ref(), meta(envelope, result.index));
        }
    }

    /// Appends entries custody writes itself to a governance log, with the principal and
    /// token changes they record, and advances the state. The caller holds the tenant's
    /// writer lock.
    async fn append_own(
        &self,
        key: &LogKey,
        tg: &TenantGovernance,
        inputs: Vec<EntryInput>,
        access: Vec<AccessChange>,
    ) -> Result<AppendOutcome, GovernanceError> {
        let prepared = self.appender.prepare(key, &inputs)?;
        let envelopes: Vec<_> = prepared.iter().map(|p| p.sealed.envelope.clone()).collect();
        let outcome = if access.is_empty() {
            self.appender.append_prepared(key, prepared).await?
        } else {
            self.appender
                .append_recording(key, prepared, access.clone())
                .await?
        };
        self.auth.committed(&access);
        self.apply_committed(tg, &envelopes, &outcome).await;
        Ok(outcome)
    }

    /// Records entries of custody's own in a tenant's governance log under the tenant's writer
    /// lock, the lock a client's governed append takes, together with the access changes they
    /// record (one transaction: both or neither).
    async fn record_governance(
        &self,
        tenant: &TenantName,
        inputs: Vec<EntryInput>,
        access: Vec<AccessChange>,
    ) -> Result<AppendOutcome, GovernanceError> {
        let tg = self.tenant(tenant).await?;
        let _writer = self.lock_writer(tenant, &tg).await?;
        self.catch_up(tenant, &tg).await?;
        self.append_own(&Self::governance_key(tenant), &tg, inputs, access)
            .await
    }

    /// Appends an entry no state check depends on to a tenant's governance log without the
    /// state: for when the state cannot be rebuilt because the log is damaged. The log's
    /// cross-server lock still orders it with other servers' governance writes.
    async fn record_beside_state(
        &self,
        tenant: &TenantName,
        input: EntryInput,
    ) -> Result<(), GovernanceError> {
        let key = Self::governance_key(tenant);
        let _shared = self
            .appender
            .store()
            .lock(&custody_store::log_lock_name(&key))
            .await
            .map_err(LedgerError::from)?;
        self.appender.append(&key, &[input]).await?;
        Ok(())
    }

    /// Records one entry of custody's own in any log of a tenant: through the governance
    /// writer lock for the governance log, straight to the sequencer for the others (no check
    /// depends on their order).
    async fn record_own(
        &self,
        key: &LogKey,
        input: EntryInput,
    ) -> Result<Appended, GovernanceError> {
        let outcome = match key.log {
            LogName::Governance => {
                self.record_governance(&key.tenant, vec![input], Vec::new())
                    .await?
            }
            LogName::Inference | LogName::Access => self.appender.append(key, &[input]).await?,
        };
        outcome
            .results
            .into_iter()
            .next()
            .ok_or_else(|| LedgerError::Unavailable("the entry was not recorded".into()).into())
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
