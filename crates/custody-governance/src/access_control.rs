//! Principals and tokens: who may call custody. Each change is recorded in the tenant's
//! governance log (`principal.created`, `token.issued`, `token.revoked`) in the same
//! transaction that makes it, so who was given which role, by whom and when is itself
//! evidence, and a principal never exists without its record (nor the record without the
//! principal). The display name is personal data and goes only in the entry's salted payload.

use custody_auth::{IssuedToken, NewPrincipal, Principal, PrincipalView, Revocation, TokenView};
use custody_core::envelope::{Context, EntryInput, SubjectRef, TenantName};
use custody_store::AccessChange;
use serde_json::{Map, Value, json};

use crate::access_log::Caller;
use crate::query::rfc3339;
use crate::{Backend, Governance, GovernanceError};

/// Principal-creation entry type.
pub const PRINCIPAL_CREATED: &str = "principal.created";
/// Token-issue entry type.
pub const TOKEN_ISSUED: &str = "token.issued";
/// Token-revocation entry type.
pub const TOKEN_REVOKED: &str = "token.revoked";

fn principal_ref(id: &str) -> SubjectRef {
    SubjectRef {
        kind: "principal".into(),
        id: id.into(),
    }
}

fn token_body(t: &TokenView) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("token".into(), json!(t.id));
    body.insert("principal".into(), json!(t.principal_id));
    body.insert("expires".into(), json!(rfc3339(t.expires_micros)));
    body
}

/// An access-control record written by `caller`.
fn record(
    caller: &Caller,
    entry_type: &str,
    subject: SubjectRef,
    body: Map<String, Value>,
    payload: Option<Value>,
) -> EntryInput {
    EntryInput {
        id: None,
        entry_type: entry_type.into(),
        client_time: None,
        actor: caller.actor(),
        subject,
        related: Vec::new(),
        context: Context {
            auth_method: Some("token".into()),
            request_id: caller.request_id.clone(),
            ..Context::default()
        },
        body,
        payload,
    }
}

impl<S: Backend> Governance<S> {
    /// Creates a principal in `tenant` with its first token (shown once), recorded as
    /// `principal.created` and `token.issued`: principal, token and both entries commit in
    /// one transaction, or none of them does.
    pub async fn create_principal(
        &self,
        caller: &Caller,
        tenant: &TenantName,
        new: NewPrincipal,
        token_days: Option<u32>,
        now_micros: i64,
    ) -> Result<(PrincipalView, IssuedToken), GovernanceError> {
        self.ledger.logs(tenant).await?;
        let plan = self
            .auth
            .plan_principal(tenant.as_str(), new, token_days, now_micros)?;
        let principal = &plan.principal;
        let mut body = Map::new();
        body.insert("principal".into(), json!(principal.id));
        body.insert("kind".into(), json!(principal.kind.as_str()));
        body.insert(
            "roles".into(),
            json!(
                principal
                    .roles
                    .list()
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
            ),
        );
        let entries = vec![
            record(
                caller,
                PRINCIPAL_CREATED,
                principal_ref(&principal.id),
                body,
                Some(json!({ "name": principal.name })),
            ),
            record(
                caller,
                TOKEN_ISSUED,
                principal_ref(&principal.id),
                token_body(&plan.token.view),
                None,
            ),
        ];
        self.record_governance(tenant, entries, plan.changes)
            .await?;
        Ok((plan.principal, plan.token))
    }

    /// Issues another token (shown once) to a principal of `tenant`, recorded as
    /// `token.issued` in the same transaction.
    pub async fn issue_token(
        &self,
        caller: &Caller,
        tenant: &TenantName,
        principal_id: &str,
        days: Option<u32>,
        now_micros: i64,
    ) -> Result<IssuedToken, GovernanceError> {
        let plan = self
            .auth
            .plan_token(tenant.as_str(), principal_id, days, now_micros)
            .await?;
        let entry = record(
            caller,
            TOKEN_ISSUED,
            principal_ref(principal_id),
            token_body(&plan.token.view),
            None,
        );
        self.record_governance(tenant, vec![entry], vec![plan.change])
            .await?;
        Ok(plan.token)
    }

    /// Revokes a token at once. An admin of the tenant may revoke any of its tokens; anyone
    /// may revoke their own. A tenant principal's token is revoked in the same transaction as
    /// its `token.revoked` record; a server administrator's own token belongs to no tenant and
    /// is revoked first, then recorded in the tenant it was revoked through.
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        tenant: &TenantName,
        token_id: &str,
        now_micros: i64,
    ) -> Result<TokenView, GovernanceError> {
        let revocation = self
            .auth
            .plan_revocation(tenant.as_str(), &caller.principal, token_id, now_micros)
            .await?;
        let (view, change) = match revocation {
            Revocation::OfTenantPrincipal { view, change } => (view, Some(change)),
            Revocation::OfServerPrincipal { view } => {
                self.auth.revoke_server_token(token_id, now_micros).await?;
                (view, None)
            }
        };
        if recorded_in_tenant(&caller.principal, tenant) || change.is_some() {
            let entry = record(
                caller,
                TOKEN_REVOKED,
                principal_ref(&view.principal_id),
                token_body(&view),
                None,
            );
            let access: Vec<AccessChange> = change.into_iter().collect();
            self.record_governance(tenant, vec![entry], access).await?;
        }
        Ok(view)
    }
}

/// Whether a revocation by `caller` belongs in `tenant`'s log: the caller is one of the
/// tenant's principals or a server administrator acting on it.
fn recorded_in_tenant(caller: &Principal, tenant: &TenantName) -> bool {
    caller.scope.covers(tenant.as_str()) && caller.scope.tenant().is_some()
        || caller.is_server_admin()
}
