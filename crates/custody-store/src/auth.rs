//! Principals and API tokens as stored. The rules about them (roles, scopes, expiry, how a
//! token is checked) live in `custody-auth`; this module only says what a backend keeps.
//!
//! A token's secret is never stored: only its SHA-256, which the service compares in
//! constant time after finding the row by the token's public id.

use std::future::Future;

use crate::StoreResult;

/// A user or service that may call custody.
#[derive(Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    /// custody's opaque id, the `actor.id` of everything this principal writes.
    pub id: String,
    /// The tenant it belongs to; `None` for a server administrator, who spans tenants.
    pub tenant: Option<String>,
    /// `user` or `service`.
    pub kind: String,
    /// A display name. Personal data: it stays in this table, never in a log.
    pub name: String,
    /// Role names, sorted and comma-separated.
    pub roles: String,
    /// Creation time, microseconds since the epoch.
    pub created_micros: i64,
}

impl std::fmt::Debug for PrincipalRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalRow")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("kind", &self.kind)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The public part of the token, safe to log and to name in the ledger.
    pub id: String,
    /// Whose token it is.
    pub principal_id: String,
    /// SHA-256 of the secret part.
    pub secret_hash: [u8; 32],
    /// Issue time, microseconds since the epoch.
    pub created_micros: i64,
    /// After this instant the token no longer authenticates.
    pub expires_micros: i64,
    /// When it was revoked, if it was.
    pub revoked_micros: Option<i64>,
}

/// Storage of principals and tokens.
pub trait AuthStore: Send + Sync + 'static {
    /// Creates the first principal and its token, only if there is no principal at all.
    /// Returns whether it did: of several servers starting at once, exactly one bootstraps.
    fn bootstrap(
        &self,
        principal: PrincipalRow,
        token: TokenRow,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Adds a principal; `Conflict` if the id exists.
    fn create_principal(
        &self,
        principal: PrincipalRow,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// One principal by id.
    fn principal(&self, id: &str)
    -> impl Future<Output = StoreResult<Option<PrincipalRow>>> + Send;
    /// The principals of one tenant (`Some`) or the server administrators (`None`), by id.
    fn principals(
        &self,
        tenant: Option<&str>,
    ) -> impl Future<Output = StoreResult<Vec<PrincipalRow>>> + Send;
    /// Adds a token; `Conflict` if its id exists, `NotFound` if its principal does not.
    fn add_token(&self, token: TokenRow) -> impl Future<Output = StoreResult<()>> + Send;
    /// A token and its principal, by the token's public id.
    fn token(
        &self,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<(TokenRow, PrincipalRow)>>> + Send;
    /// A principal's tokens, newest first.
    fn tokens(&self, principal_id: &str)
    -> impl Future<Output = StoreResult<Vec<TokenRow>>> + Send;
    /// Marks a token revoked at `at_micros`; `false` if there is no such token or it was
    /// already revoked (the first revocation time is kept).
    fn revoke_token(
        &self,
        id: &str,
        at_micros: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}
