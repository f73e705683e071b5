//! Roles, principal kinds and scopes.

use std::fmt;

/// What a principal may do within its scope. Roles add up; none implies another, so a
/// pipeline that writes evidence cannot also read payloads unless it is given `auditor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Manages principals, tokens, approver keys, policies, retention and erasure; reads
    /// everything.
    Admin,
    /// Pipelines and serving: records datasets, runs, models, promotions, deployments,
    /// inferences.
    Writer,
    /// Submits signed approvals and reads the evidence they are about.
    Approver,
    /// Reads everything, including payloads and the access log; writes nothing.
    Auditor,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Writer, Role::Approver, Role::Auditor];

    /// The role's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Roles(u8);

impl Roles {
    /// The set holding `roles`.
    pub fn of(roles: &[Role]) -> Self {
        Self(roles.iter().fold(0, |acc, r| acc | r.bit()))
    }

    /// Whether the set holds `role`.
    pub fn has(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether the set holds any of `roles`.
    pub fn any(self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles, in display order.
    pub fn list(self) -> Vec<Role> {
        Role::ALL.into_iter().filter(|r| self.has(*r)).collect()
    }

    /// Sorted, comma-separated: the stored form.
    pub fn to_csv(self) -> String {
        self.list()
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses the stored form; `None` if a name is unknown.
    pub fn from_csv(s: &str) -> Option<Self> {
        if s.is_empty() {
            return Some(Self::default());
        }
        s.split(',')
            .map(Role::parse)
            .collect::<Option<Vec<_>>>()
            .map(|r| Self::of(&r))
    }
}

/// Whether a principal is a person or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A pipeline, a serving process, an integration.
    Service,
}

impl PrincipalKind {
    /// The kind's name, as in an envelope's `actor.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
        }
    }

    /// Parses `user` or `service`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "service" => Some(Self::Service),
            _ => None,
        }
    }
}

/// Where a principal's roles apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every tenant: a server administrator.
    Server,
    /// One tenant, by name.
    Tenant(String),
}

impl Scope {
    /// Whether the scope covers `tenant`.
    pub fn covers(&self, tenant: &str) -> bool {
        match self {
            Scope::Server => true,
            Scope::Tenant(t) => t == tenant,
        }
    }

    /// The tenant, or `None` for the server scope.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::Server => None,
            Scope::Tenant(t) => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_stored_form() {
        let r = Roles::of(&[Role::Auditor, Role::Admin]);
        assert_eq!(r.to_csv(), "admin,auditor");
        assert_eq!(Roles::from_csv("admin,auditor"), Some(r));
        assert!(r.has(Role::Admin) && !r.has(Role::Writer));
        assert_eq!(Roles::from_csv("admin,root"), None);
        assert_eq!(Roles::from_csv(""), Some(Roles::default()));
    }

    #[test]
    fn a_tenant_scope_covers_only_its_tenant() {
        assert!(Scope::Tenant("acme".into()).covers("acme"));
        assert!(!Scope::Tenant("acme".into()).covers("acme2"));
        assert!(Scope::Server.covers("anything"));
    }
}
