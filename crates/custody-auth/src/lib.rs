//! Who may do what in custody: principals, roles and their scope, API tokens, and the matrix
//! that says which roles each route and each entry type needs.
//!
//! A principal belongs to one tenant (or, for a server administrator, to none and spans all)
//! and holds roles. A request authenticates with a bearer token `cst_<id>_<secret>`: the id
//! finds the stored row, the secret's SHA-256 is compared with the stored hash in constant
//! time, and expiry and revocation are checked. The secret itself is never stored or logged.
//!
//! Architecture invariant: tenant scope is checked before anything is read from storage, so a
//! principal of one tenant gets the same answer, in the same time, whether another tenant or
//! its entries exist or not.

pub mod matrix;
pub mod role;
mod service;
pub mod token;

pub use matrix::{Action, Gate, entry_action};
pub use role::{PrincipalKind, Role, Roles, Scope};
pub use service::{
    Auth, AuthError, DEFAULT_TOKEN_DAYS, Denial, IssuedToken, MAX_TOKEN_DAYS, NewPrincipal,
    Principal, PrincipalPlan, PrincipalView, Revocation, TokenPlan, TokenView,
};
pub use token::{ApiToken, TokenParseError};
