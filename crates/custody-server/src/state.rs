//! The state every handler and middleware shares.

use std::sync::Arc;

use custody_governance::{Backend, Governance};
use custody_ledger::Ledger;

use crate::limits::{Limiter, Rate};

/// State shared by every handler. It holds the evidence service, the only writer of evidence,
/// and reads through the ledger; there is no other way to write.
pub struct AppState<S> {
    governance: Arc<Governance<S>>,
    /// Per-token request limits.
    pub(crate) principal_limit: Arc<Limiter>,
    /// Per-address limits on failed authentication.
    pub(crate) failed_auth_limit: Arc<Limiter>,
}

impl<S: Backend> AppState<S> {
    /// State over the evidence service, with these limits.
    pub fn new(
        governance: Arc<Governance<S>>,
        principal_rate: Rate,
        failed_auth_rate: Rate,
    ) -> Self {
        Self {
            governance,
            principal_limit: Arc::new(Limiter::new(principal_rate)),
            failed_auth_limit: Arc::new(Limiter::new(failed_auth_rate)),
        }
    }

    /// The evidence service: every write, custody's own records, and the audit answers.
    pub fn governance(&self) -> &Governance<S> {
        &self.governance
    }

    /// The ledger, for reads.
    pub fn ledger(&self) -> &Ledger<S> {
        self.governance.ledger()
    }
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            governance: self.governance.clone(),
            principal_limit: self.principal_limit.clone(),
            failed_auth_limit: self.failed_auth_limit.clone(),
        }
    }
}

/// Now, in microseconds since the epoch: the server's one reading of the clock, for token
/// expiry, records and erasure deadlines.
pub fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}
