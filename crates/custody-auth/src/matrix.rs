//! The route/role matrix: for every route, what it does and which roles may do it. The server
//! enforces this table, `docs/ACCESS.md` is generated from it, and a test walks it route by
//! route with a token of each role.

use crate::role::Role;
use custody_core::envelope::LogName;

/// What a request does, as far as access control is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Liveness and the API description: no token.
    Public,
    /// Who the token belongs to; the tenants it may see.
    Authenticated,
    /// Create tenants: server administrators only.
    ManageTenants,
    /// Log metadata and proofs (sizes, checkpoints, verifier keys, inclusion and consistency
    /// proofs, witness checks, tlog-tiles hash tiles): hashes and signatures, no entry content.
    ReadLogMeta,
    /// Append entries; each entry's type then needs its own role (see [`entry_action`]).
    Append,
    /// Record pipeline and serving evidence.
    WriteEvidence,
    /// Register or revoke approver keys; change the gate or retention policy.
    WriteAdministrative,
    /// Submit a signed approval.
    SubmitApproval,
    /// Ask whether weights may serve, and what served when: what deploy pipelines and
    /// serving code check. Access-logged.
    CheckServing,
    /// Read entries, payloads, traces, histories, exports, tlog-tiles entry bundles and evidence
    /// packs. Access-logged.
    ReadEvidence,
    /// Read the access log itself. Access-logged.
    ReadAccessLog,
    /// Append to the access log: nobody; custody writes it.
    WriteAccessLog,
    /// Create principals, issue and list tokens.
    ManagePrincipals,
    /// Revoke a token: an admin, or the token's own principal.
    RevokeToken,
    /// Erase payloads (retention, data-subject requests).
    Erase,
    /// Deep-verify the tenant's logs against their stored bytes.
    Reconcile,
    /// Switch a log to a new signing key.
    RotateKey,
}

/// Who passes an action's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Anyone, without a token.
    Open,
    /// Any valid token.
    AnyPrincipal,
    /// A server administrator (scope: every tenant, role admin).
    ServerAdmin,
    /// A principal scoped to the path's tenant holding one of these roles.
    Roles(&'static [Role]),
}

const ANY_ROLE: &[Role] = &[Role::Admin, Role::Writer, Role::Approver, Role::Auditor];

impl Action {
    /// The gate of this action.
    pub fn gate(self) -> Gate {
        use Role::*;
        match self {
            Action::Public => Gate::Open,
            Action::Authenticated => Gate::AnyPrincipal,
            Action::ManageTenants => Gate::ServerAdmin,
            Action::ReadLogMeta | Action::CheckServing | Action::RevokeToken => {
                Gate::Roles(ANY_ROLE)
            }
            Action::Append => Gate::Roles(&[Admin, Writer, Approver]),
            Action::WriteEvidence => Gate::Roles(&[Writer]),
            Action::WriteAdministrative => Gate::Roles(&[Admin]),
            Action::SubmitApproval => Gate::Roles(&[Approver]),
            Action::ReadEvidence => Gate::Roles(&[Admin, Auditor, Approver]),
            Action::ReadAccessLog => Gate::Roles(&[Admin, Auditor]),
            Action::WriteAccessLog => Gate::Roles(&[]),
            Action::ManagePrincipals | Action::Erase | Action::RotateKey => Gate::Roles(&[Admin]),
            Action::Reconcile => Gate::Roles(&[Admin, Auditor]),
        }
    }

    /// Whether serving this action appends an `access.read` entry to the tenant's access log.
    pub fn access_logged(self) -> bool {
        matches!(
            self,
            Action::ReadEvidence | Action::ReadAccessLog | Action::CheckServing
        )
    }

    /// A short name for logs, problems and the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Public => "public",
            Action::Authenticated => "authenticated",
            Action::ManageTenants => "manage_tenants",
            Action::ReadLogMeta => "read_log_meta",
            Action::Append => "append",
            Action::WriteEvidence => "write_evidence",
            Action::WriteAdministrative => "write_administrative",
            Action::SubmitApproval => "submit_approval",
            Action::CheckServing => "check_serving",
            Action::ReadEvidence => "read_evidence",
            Action::ReadAccessLog => "read_access_log",
            Action::WriteAccessLog => "write_access_log",
            Action::ManagePrincipals => "manage_principals",
            Action::RevokeToken => "revoke_token",
            Action::Erase => "erase",
            Action::Reconcile => "reconcile",
            Action::RotateKey => "rotate_key",
        }
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct RouteRule {
    /// HTTP method.
    pub method: &'static str,
    /// The route template, as the router declares it.
    pub path: &'static str,
    /// What it does.
    pub action: Action,
}

macro_rules! rules {
    ($( $m:literal $p:expr => $a:ident ),* $(,)?) => {
        &[ $( RouteRule { method: $m, path: $p, action: Action::$a } ),* ]
    };
}

/// Every route of the API. A route missing here is refused by the server (500), and a test
/// checks that the router and this table agree.
pub const ROUTES: &[RouteRule] = rules![
    "GET" "/healthz" => Public,
    "GET" "/v1/openapi.json" => Public,
    "GET" "/v1/whoami" => Authenticated,
    "GET" "/v1/tenants" => Authenticated,
    "POST" "/v1/tenants" => ManageTenants,
    "GET" "/v1/tenants/{tenant}/logs" => ReadLogMeta,
    "POST" "/v1/tenants/{tenant}/logs/{log}/entries" => Append,
    "GET" "/v1/tenants/{tenant}/logs/{log}/entries" => ReadEvidence,
    "GET" "/v1/tenants/{tenant}/logs/{log}/entries/{index}" => ReadEvidence,
    "GET" "/v1/tenants/{tenant}/logs/{log}/entries/{index}/tlog-proof" => ReadLogMeta,
    "GET" "/v1/tenants/{tenant}/logs/{log}/checkpoint" => ReadLogMeta,
    "GET" "/v1/tenants/{tenant}/logs/{log}/proof/inclusion" => ReadLogMeta,
    "GET" "/v1/tenants/{tenant}/logs/{log}/proof/consistency" => ReadLogMeta,
    "GET" "/v1/tenants/{tenant}/logs/{log}/vkey" => ReadLogMeta,
    "POST" "/v1/tenants/{tenant}/logs/{log}/witness" => ReadLogMeta,
    "POST" "/v1/tenants/{tenant}/logs/{log}/rotate-key" => RotateKey,
    "GET" "/v1/tenants/{tenant}/logs/{log}/export" => ReadEvidence,
    "GET" "/v1/tenants/{tenant}/trace" => ReadEvidence,
    "GET" "/v1/tenants/{tenant}/served" => CheckServing,
    "GET" "/v1/tenants/{tenant}/models/{version_hash}/history" => ReadEvidence,
    "GET" "/v1/tenants/{tenant}/admit" => CheckServing,
    "GET" "/v1/tenants/{tenant}/evidence" => ReadEvidence,
    "GET" "/v1/tenants/{tenant}/principals" => ManagePrincipals,
    "POST" "/v1/tenants/{tenant}/principals" => ManagePrincipals,
    "GET" "/v1/tenants/{tenant}/principals/{principal}/tokens" => ManagePrincipals,
    "POST" "/v1/tenants/{tenant}/principals/{principal}/tokens" => ManagePrincipals,
    "DELETE" "/v1/tenants/{tenant}/tokens/{token}" => RevokeToken,
    "POST" "/v1/tenants/{tenant}/erasures" => Erase,
    "POST" "/v1/tenants/{tenant}/retention/apply" => Erase,
    "POST" "/v1/tenants/{tenant}/reconcile" => Reconcile,
    "GET" "/tlog/{tenant}/{log}/checkpoint" => ReadLogMeta,
    "GET" "/tlog/{tenant}/{log}/tile/{level}/{*index}" => ReadLogMeta,
    "GET" "/tlog/{tenant}/{log}/tile/entries/{*index}" => ReadEvidence,
];

/// The rule for a request, by method and route template.
pub fn rule(method: &str, path: &str) -> Option<RouteRule> {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .copied()
}

/// The action a route performs on a particular log: reading the access log needs more than
/// reading evidence, and nobody but custody appends to it.
pub fn on_log(action: Action, log: Option<LogName>) -> Action {
    match (action, log) {
        (Action::ReadEvidence, Some(LogName::Access)) => Action::ReadAccessLog,
        (Action::Append, Some(LogName::Access)) => Action::WriteAccessLog,
        (a, _) => a,
    }
}

/// Types whose entries change who may approve or what the gate demands.
const ADMINISTRATIVE_TYPES: &[&str] = &[
    "approver_key.registered",
    "approver_key.revoked",
    "policy.updated",
    "retention.updated",
];

/// The action appending an entry of `entry_type` performs.
pub fn entry_action(entry_type: &str) -> Action {
    if ADMINISTRATIVE_TYPES.contains(&entry_type) {
        Action::WriteAdministrative
    } else if entry_type == "approval.submitted" {
        Action::SubmitApproval
    } else {
        Action::WriteEvidence
    }
}

/// `docs/ACCESS.md`'s table, generated from [`ROUTES`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| method | route | action | who may call it | access-logged |\n|---|---|---|---|---|\n",
    );
    for r in ROUTES {
        let who = match r.action.gate() {
            Gate::Open => "anyone, no token".to_string(),
            Gate::AnyPrincipal => "any valid token".to_string(),
            Gate::ServerAdmin => "server administrator".to_string(),
            Gate::Roles(roles) => roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let logged = if r.action.access_logged() { "yes" } else { "" };
        out.push_str(&format!(
            "| {} | `{}` | {} | {who} | {logged} |\n",
            r.method,
            r.path,
            r.action.as_str()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn entry_types_map_to_the_roles_that_may_write_them() {
        assert_eq!(
            entry_action("approver_key.registered"),
            Action::WriteAdministrative
        );
        assert_eq!(entry_action("policy.updated"), Action::WriteAdministrative);
        assert_eq!(entry_action("approval.submitted"), Action::SubmitApproval);
        assert_eq!(entry_action("inference.recorded"), Action::WriteEvidence);
        assert_eq!(entry_action("x.acme.anything"), Action::WriteEvidence);
    }

    #[test]
    fn the_access_log_needs_more_than_evidence() {
        assert_eq!(
            on_log(Action::ReadEvidence, Some(LogName::Access)),
            Action::ReadAccessLog
        );
        assert_eq!(
            on_log(Action::ReadEvidence, Some(LogName::Governance)),
            Action::ReadEvidence
        );
        let Gate::Roles(r) = Action::ReadAccessLog.gate() else {
            panic!()
        };
        assert!(!r.contains(&Role::Approver) && !r.contains(&Role::Writer));
    }
}
