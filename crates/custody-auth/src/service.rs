//! The authentication service over an [`AuthStore`]: bootstrap, authenticate, and the rules for
//! managing principals and tokens.
//!
//! API boundary: creating a principal, issuing a token and revoking one are *planned* here
//! (validated, ids and secrets generated, permission checked) and returned as
//! [`AccessChange`]s; the evidence service commits them in the same transaction as the
//! governance entries that record them, so no principal or token changes without its record.
//! Only the server administrator's bootstrap, and the revocation of a server-scoped token,
//! which no tenant's log can record atomically, write here directly.

use custody_store::{AccessChange, AuthStore, PrincipalRow, StoreError, TokenRow};

use crate::role::{PrincipalKind, Role, Roles, Scope};
use crate::token::ApiToken;

/// Lifetime of a token when none is asked for.
pub const DEFAULT_TOKEN_DAYS: u32 = 90;
/// Longest lifetime a token may be given.
pub const MAX_TOKEN_DAYS: u32 = 3650;
/// Lifetime of the bootstrap administrator's token.
const BOOTSTRAP_TOKEN_DAYS: u32 = 365;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Opaque id: the `actor.id` of what it writes.
    pub id: String,
    /// User or service.
    pub kind: PrincipalKind,
    /// Where its roles apply.
    pub scope: Scope,
    /// What it may do.
    pub roles: Roles,
    /// The token it authenticated with (public id).
    pub token_id: String,
}

impl Principal {
    /// Whether it holds any of `roles` in `tenant`.
    pub fn may(&self, tenant: &str, roles: &[Role]) -> bool {
        self.scope.covers(tenant) && self.roles.any(roles)
    }

    /// Whether it is a server administrator.
    pub fn is_server_admin(&self) -> bool {
        self.scope == Scope::Server && self.roles.has(Role::Admin)
    }
}

/// Why a presented token does not authenticate. The messages never distinguish an unknown
/// token from a wrong secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// No `Authorization: Bearer` header.
    #[error("this route needs a token: send Authorization: Bearer cst_...")]
    MissingToken,
    /// Not a custody token, unknown, or the secret is wrong.
    #[error("the token is not valid")]
    InvalidToken,
    /// Past its expiry.
    #[error("the token expired; ask an admin for a new one")]
    Expired,
    /// Revoked.
    #[error("the token was revoked; ask an admin for a new one")]
    Revoked,
}

impl Denial {
    /// A machine-readable reason, for the access log.
    pub fn code(self) -> &'static str {
        match self {
            Denial::MissingToken => "missing_token",
            Denial::InvalidToken => "invalid_token",
            Denial::Expired => "expired_token",
            Denial::Revoked => "revoked_token",
        }
    }
}

/// Why a management call failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A field of the request is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// The field's path.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No such principal or token in the caller's tenant.
    #[error("{0}")]
    NotFound(String),
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &str, message: impl Into<String>) -> AuthError {
    AuthError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A principal to create.
#[derive(Debug, Clone)]
pub struct NewPrincipal {
    /// `user` or `service`.
    pub kind: String,
    /// Display name (personal data, kept out of the logs).
    pub name: String,
    /// Role names.
    pub roles: Vec<String>,
}

/// A principal as shown to admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalView {
    /// Opaque id.
    pub id: String,
    /// Its tenant, `None` for a server administrator.
    pub tenant: Option<String>,
    /// User or service.
    pub kind: PrincipalKind,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Roles,
    /// Creation time, microseconds since the epoch.
    pub created_micros: i64,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    /// Public id.
    pub id: String,
    /// Whose.
    pub principal_id: String,
    /// Issued, microseconds since the epoch.
    pub created_micros: i64,
    /// Expiry, microseconds since the epoch.
    pub expires_micros: i64,
    /// Revocation time, if revoked.
    pub revoked_micros: Option<i64>,
}

/// A freshly issued token: the only moment its secret exists outside its owner.
#[derive(Debug)]
pub struct IssuedToken {
    /// The token; show it once.
    pub token: ApiToken,
    /// Its stored view.
    pub view: TokenView,
}

/// A principal ready to be created with its first token, once its record commits.
#[derive(Debug)]
pub struct PrincipalPlan {
    /// The principal as it will be stored.
    pub principal: PrincipalView,
    /// Its first token.
    pub token: IssuedToken,
    /// The rows to commit with the record: the principal, then its token.
    pub changes: Vec<AccessChange>,
}

/// A token ready to be issued, once its record commits.
#[derive(Debug)]
pub struct TokenPlan {
    /// The token.
    pub token: IssuedToken,
    /// The row to commit with the record.
    pub change: AccessChange,
}

/// A permitted revocation, not yet made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// A token of a principal of the tenant: revoked in the same transaction as its record in
    /// the tenant's governance log.
    OfTenantPrincipal {
        /// The token as it will be once revoked.
        view: TokenView,
        /// The change to commit with the record.
        change: AccessChange,
    },
    /// A server-scoped principal's own token (a server administrator's), which belongs to no
    /// tenant: revoked with [`Auth::revoke_server_token`].
    OfServerPrincipal {
        /// The token as it will be once revoked.
        view: TokenView,
    },
}

fn view(row: PrincipalRow) -> Result<PrincipalView, AuthError> {
    Ok(PrincipalView {
        kind: PrincipalKind::parse(&row.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("principal kind {:?}", row.kind)))?,
        roles: Roles::from_csv(&row.roles)
            .ok_or_else(|| StoreError::Corrupt(format!("principal roles {:?}", row.roles)))?,
        id: row.id,
        tenant: row.tenant,
        name: row.name,
        created_micros: row.created_micros,
    })
}

fn token_view(row: TokenRow) -> TokenView {
    TokenView {
        id: row.id,
        principal_id: row.principal_id,
        created_micros: row.created_micros,
        expires_micros: row.expires_micros,
        revoked_micros: row.revoked_micros,
    }
}

fn new_id() -> Result<String, AuthError> {
    let mut b = [0u8; 10];
    getrandom::fill(&mut b).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(format!("p_{}", hex::encode(b)))
}

fn token_row(token: &ApiToken, principal_id: &str, now: i64, days: u32) -> TokenRow {
    TokenRow {
        id: token.id().to_owned(),
        principal_id: principal_id.to_owned(),
        secret_hash: token.secret_hash(),
        created_micros: now,
        expires_micros: now.saturating_add(i64::from(days) * MICROS_PER_DAY),
        revoked_micros: None,
    }
}

/// How long a token's row is trusted from memory before the store is asked again. A
/// revocation through this process takes effect at once; one made by another server sharing
/// the store, within this time.
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Token rows recently read, by token id, with when they were read.
type TokenCache = std::sync::Mutex<
    std::collections::HashMap<String, (TokenRow, PrincipalRow, std::time::Instant)>,
>;

/// Principals and tokens over a store.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    store: S,
    cache: std::sync::Arc<TokenCache>,
}

impl<S: AuthStore> Auth<S> {
    /// The service over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            cache: Default::default(),
        }
    }

    /// A token's row and principal, from memory when read less than [`TOKEN_CACHE_TTL`] ago.
    async fn lookup(&self, id: &str) -> Result<Option<(TokenRow, PrincipalRow)>, StoreError> {
        let now = std::time::Instant::now();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((t, p, at)) = cache.get(id)
                && now.duration_since(*at) < TOKEN_CACHE_TTL
            {
                return Ok(Some((t.clone(), p.clone())));
            }
        }
        let found = self.store.token(id).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (_, _, at)| now.duration_since(*at) < TOKEN_CACHE_TTL);
        }
        match &found {
            Some((t, p)) => {
                cache.insert(id.to_owned(), (t.clone(), p.clone(), now));
            }
            None => {
                cache.remove(id);
            }
        }
        Ok(found)
    }

    fn forget(&self, id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Creates the first server administrator if there is no principal yet. With `token`, that
    /// token (read from a file the operator controls) becomes the administrator's; otherwise a
    /// new one is generated. Returns the token when this call bootstrapped, `None` when the
    /// server was already set up.
    pub async fn bootstrap(
        &self,
        token: Option<ApiToken>,
        now_micros: i64,
    ) -> Result<Option<IssuedToken>, AuthError> {
        let token = match token {
            Some(t) => t,
            None => ApiToken::generate().map_err(|e| AuthError::Random(e.to_string()))?,
        };
        let principal = PrincipalRow {
            id: new_id()?,
            tenant: None,
            kind: PrincipalKind::User.as_str().into(),
            name: "bootstrap administrator".into(),
            roles: Roles::of(&[Role::Admin]).to_csv(),
            created_micros: now_micros,
        };
        let row = token_row(&token, &principal.id, now_micros, BOOTSTRAP_TOKEN_DAYS);
        let view = token_view(row.clone());
        Ok(self
            .store
            .bootstrap(principal, row)
            .await?
            .then_some(IssuedToken { token, view }))
    }

    /// Who a bearer token belongs to, if it is valid at `now_micros`.
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        now_micros: i64,
    ) -> Result<Result<Principal, Denial>, StoreError> {
        let Some(bearer) = bearer else {
            return Ok(Err(Denial::MissingToken));
        };
        let Ok(token) = ApiToken::parse(bearer) else {
            return Ok(Err(Denial::InvalidToken));
        };
        let Some((row, principal)) = self.lookup(token.id()).await? else {
            // Hash anyway, so an unknown id costs what a wrong secret costs.
            let _ = token.matches(&[0; 32]);
            return Ok(Err(Denial::InvalidToken));
        };
        if !token.matches(&row.secret_hash) {
            return Ok(Err(Denial::InvalidToken));
        }
        if row.revoked_micros.is_some() {
            return Ok(Err(Denial::Revoked));
        }
        if now_micros >= row.expires_micros {
            return Ok(Err(Denial::Expired));
        }
        let p = view(principal).map_err(|e| match e {
            AuthError::Store(s) => s,
            other => StoreError::Corrupt(other.to_string()),
        })?;
        Ok(Ok(Principal {
            id: p.id,
            kind: p.kind,
            scope: p.tenant.map_or(Scope::Server, Scope::Tenant),
            roles: p.roles,
            token_id: row.id,
        }))
    }

    /// Plans a principal in `tenant` with its first token: validated, with a fresh id and
    /// secret, nothing written.
    pub fn plan_principal(
        &self,
        tenant: &str,
        new: NewPrincipal,
        token_days: Option<u32>,
        now_micros: i64,
    ) -> Result<PrincipalPlan, AuthError> {
        let kind = PrincipalKind::parse(&new.kind)
            .ok_or_else(|| invalid("kind", "must be user or service"))?;
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                "must be 1-200 characters without control characters",
            ));
        }
        if new.roles.is_empty() {
            return Err(invalid(
                "roles",
                "give at least one of admin, writer, approver, auditor",
            ));
        }
        let mut roles = Vec::new();
        for (i, r) in new.roles.iter().enumerate() {
            roles.push(Role::parse(r).ok_or_else(|| {
                invalid(
                    &format!("roles[{i}]"),
                    format!("{r:?} is not a role; use admin, writer, approver or auditor"),
                )
            })?);
        }
        let days = token_days_checked(token_days)?;
        let row = PrincipalRow {
            id: new_id()?,
            tenant: Some(tenant.to_owned()),
            kind: kind.as_str().into(),
            name: name.to_owned(),
            roles: Roles::of(&roles).to_csv(),
            created_micros: now_micros,
        };
        let principal = view(row.clone())?;
        let token = ApiToken::generate().map_err(|e| AuthError::Random(e.to_string()))?;
        let token_row = token_row(&token, &principal.id, now_micros, days);
        let issued = IssuedToken {
            token,
            view: token_view(token_row.clone()),
        };
        Ok(PrincipalPlan {
            principal,
            token: issued,
            changes: vec![
                AccessChange::AddPrincipal(row),
                AccessChange::AddToken(token_row),
            ],
        })
    }

    /// A principal of `tenant`; `NotFound` also when it belongs to another tenant, so ids of
    /// other tenants cannot be probed.
    pub async fn principal_in(&self, tenant: &str, id: &str) -> Result<PrincipalView, AuthError> {
        match self.store.principal(id).await? {
            Some(row) if row.tenant.as_deref() == Some(tenant) => view(row),
            _ => Err(AuthError::NotFound(format!(
                "no principal {id:?} in tenant {tenant}"
            ))),
        }
    }

    /// Plans a new token for a principal of `tenant`; nothing written.
    pub async fn plan_token(
        &self,
        tenant: &str,
        principal_id: &str,
        days: Option<u32>,
        now_micros: i64,
    ) -> Result<TokenPlan, AuthError> {
        let days = token_days_checked(days)?;
        self.principal_in(tenant, principal_id).await?;
        let token = ApiToken::generate().map_err(|e| AuthError::Random(e.to_string()))?;
        let row = token_row(&token, principal_id, now_micros, days);
        Ok(TokenPlan {
            token: IssuedToken {
                token,
                view: token_view(row.clone()),
            },
            change: AccessChange::AddToken(row),
        })
    }

    /// The principals of `tenant`.
    pub async fn principals(&self, tenant: &str) -> Result<Vec<PrincipalView>, AuthError> {
        self.store
            .principals(Some(tenant))
            .await?
            .into_iter()
            .map(view)
            .collect()
    }

    /// The tokens of a principal of `tenant`.
    pub async fn tokens(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> Result<Vec<TokenView>, AuthError> {
        self.principal_in(tenant, principal_id).await?;
        Ok(self
            .store
            .tokens(principal_id)
            .await?
            .into_iter()
            .map(token_view)
            .collect())
    }

    /// Plans the revocation of a token of a principal of `tenant`: `caller` may revoke it if
    /// it is an admin of the tenant or the token is its own. Nothing written.
    pub async fn plan_revocation(
        &self,
        tenant: &str,
        caller: &Principal,
        token_id: &str,
        now_micros: i64,
    ) -> Result<Revocation, AuthError> {
        let not_found = || AuthError::NotFound(format!("no token {token_id:?} in tenant {tenant}"));
        let Some((row, owner)) = self.store.token(token_id).await? else {
            return Err(not_found());
        };
        let own = row.principal_id == caller.id;
        let admin = caller.may(tenant, &[Role::Admin]);
        if !(own || owner.tenant.as_deref() == Some(tenant) && admin) {
            return Err(not_found());
        }
        let mut view = token_view(row);
        view.revoked_micros.get_or_insert(now_micros);
        Ok(match owner.tenant {
            Some(_) => Revocation::OfTenantPrincipal {
                view,
                change: AccessChange::RevokeToken {
                    id: token_id.to_owned(),
                    at_micros: now_micros,
                },
            },
            None => Revocation::OfServerPrincipal { view },
        })
    }

    /// Revokes a server-scoped principal's token (planned by [`Auth::plan_revocation`]) at
    /// once.
    pub async fn revoke_server_token(
        &self,
        token_id: &str,
        now_micros: i64,
    ) -> Result<(), AuthError> {
        self.store.revoke_token(token_id, now_micros).await?;
        self.forget(token_id);
        Ok(())
    }

    /// Called once access changes have committed: a revoked token stops authenticating
    /// through this process at once, not when its cached row expires.
    pub fn committed(&self, changes: &[AccessChange]) {
        for change in changes {
            if let AccessChange::RevokeToken { id, .. } = change {
                self.forget(id);
            }
        }
    }
}

fn token_days_checked(days: Option<u32>) -> Result<u32, AuthError> {
    match days.unwrap_or(DEFAULT_TOKEN_DAYS) {
        d @ 1..=MAX_TOKEN_DAYS => Ok(d),
        d => Err(invalid(
            "expires_in_days",
            format!("{d} is out of range: use 1 to {MAX_TOKEN_DAYS}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_store_sqlite::SqliteStore;

    async fn auth() -> (tempfile::TempDir, Auth<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
        (dir, Auth::new(store))
    }

    /// Commits planned changes directly, as the evidence service does with their records.
    async fn commit(auth: &Auth<SqliteStore>, changes: &[AccessChange]) {
        for change in changes {
            match change {
                AccessChange::AddPrincipal(p) => auth.store.create_principal(p.clone()).await,
                AccessChange::AddToken(t) => auth.store.add_token(t.clone()).await,
                AccessChange::RevokeToken { id, at_micros } => {
                    auth.store.revoke_token(id, *at_micros).await.map(|_| ())
                }
            }
            .unwrap();
        }
        auth.committed(changes);
    }

    async fn create_principal(
        auth: &Auth<SqliteStore>,
        tenant: &str,
        new: NewPrincipal,
        days: Option<u32>,
    ) -> Result<(PrincipalView, IssuedToken), AuthError> {
        let plan = auth.plan_principal(tenant, new, days, NOW)?;
        commit(auth, &plan.changes).await;
        Ok((plan.principal, plan.token))
    }

    async fn revoke(
        auth: &Auth<SqliteStore>,
        tenant: &str,
        caller: &Principal,
        token: &str,
        at: i64,
    ) -> Result<TokenView, AuthError> {
        match auth.plan_revocation(tenant, caller, token, at).await? {
            Revocation::OfTenantPrincipal { view, change } => {
                commit(auth, &[change]).await;
                Ok(view)
            }
            Revocation::OfServerPrincipal { view } => {
                auth.revoke_server_token(token, at).await?;
                Ok(view)
            }
        }
    }

    const NOW: i64 = 1_800_000_000_000_000;

    fn new(kind: &str, roles: &[&str]) -> NewPrincipal {
        NewPrincipal {
            kind: kind.into(),
            name: "Alice Example".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn bootstrap_happens_once_and_its_token_authenticates_a_server_admin() {
        let (_d, auth) = auth().await;
        let issued = auth.bootstrap(None, NOW).await.unwrap().unwrap();
        assert!(auth.bootstrap(None, NOW).await.unwrap().is_none());
        let p = auth
            .authenticate(Some(&issued.token.expose()), NOW + 1)
            .await
            .unwrap()
            .unwrap();
        assert!(p.is_server_admin());
        assert_eq!(p.token_id, issued.token.id());
    }

    #[tokio::test]
    async fn tokens_fail_when_wrong_expired_or_revoked() {
        let (_d, auth) = auth().await;
        auth.bootstrap(None, NOW).await.unwrap();
        let (p, issued) = create_principal(&auth, "acme", new("service", &["writer"]), Some(1))
            .await
            .unwrap();
        let shown = issued.token.expose();
        let ok = auth.authenticate(Some(&shown), NOW).await.unwrap().unwrap();
        assert_eq!(ok.id, p.id);
        assert_eq!(ok.scope, Scope::Tenant("acme".into()));
        assert!(ok.may("acme", &[Role::Writer]) && !ok.may("acme", &[Role::Auditor]));
        assert!(!ok.may("other", &[Role::Writer]));

        let mut wrong = shown.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        let check = |t: Option<String>, at: i64| {
            let auth = auth.clone();
            async move { auth.authenticate(t.as_deref(), at).await.unwrap() }
        };
        assert_eq!(check(Some(wrong), NOW).await, Err(Denial::InvalidToken));
        assert_eq!(check(None, NOW).await, Err(Denial::MissingToken));
        assert_eq!(
            check(Some("garbage".into()), NOW).await,
            Err(Denial::InvalidToken)
        );
        let day = MICROS_PER_DAY;
        assert_eq!(
            check(Some(shown.clone()), NOW + day).await,
            Err(Denial::Expired)
        );

        let revoked = revoke(&auth, "acme", &ok, issued.token.id(), NOW + 5)
            .await
            .unwrap();
        assert_eq!(revoked.revoked_micros, Some(NOW + 5));
        assert_eq!(check(Some(shown), NOW + 6).await, Err(Denial::Revoked));
    }

    #[tokio::test]
    async fn principals_of_one_tenant_are_invisible_from_another() {
        let (_d, auth) = auth().await;
        let (p, issued) = create_principal(&auth, "acme", new("user", &["admin"]), None)
            .await
            .unwrap();
        let (_, other) = create_principal(&auth, "globex", new("user", &["admin"]), None)
            .await
            .unwrap();
        let globex_admin = auth
            .authenticate(Some(&other.token.expose()), NOW)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            auth.principal_in("globex", &p.id).await,
            Err(AuthError::NotFound(_))
        ));
        assert!(matches!(
            auth.tokens("globex", &p.id).await,
            Err(AuthError::NotFound(_))
        ));
        assert!(matches!(
            auth.plan_token("globex", &p.id, None, NOW).await,
            Err(AuthError::NotFound(_))
        ));
        assert!(matches!(
            revoke(&auth, "globex", &globex_admin, issued.token.id(), NOW).await,
            Err(AuthError::NotFound(_))
        ));
        assert_eq!(auth.principals("globex").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn bad_principals_are_refused_with_the_field_named() {
        let (_d, auth) = auth().await;
        for (p, days, field) in [
            (new("robot", &["writer"]), None, "kind"),
            (new("user", &[]), None, "roles"),
            (new("user", &["writer", "root"]), None, "roles[1]"),
            (new("user", &["writer"]), Some(0), "expires_in_days"),
            (
                new("user", &["writer"]),
                Some(MAX_TOKEN_DAYS + 1),
                "expires_in_days",
            ),
            (
                NewPrincipal {
                    name: " ".into(),
                    ..new("user", &["writer"])
                },
                None,
                "name",
            ),
        ] {
            match create_principal(&auth, "acme", p, days).await {
                Err(AuthError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(auth.principals("acme").await.unwrap().is_empty());
    }
}
