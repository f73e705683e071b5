//! The ML evidence model on top of the generic ledger entry: what each custody entry type
//! means, how an approval's signature is tied to a registered key and a model's weights, what
//! a tenant's gate policy demands, and the governance state (what is registered, approved
//! and serving where) that all of it implies.
//!
//! Pure: no I/O and no clock. The service layer feeds it entries and asks it questions; every
//! answer names the entries it rests on, so the service can attach their proofs.

pub mod approval;
pub mod events;
mod fields;
pub mod policy;
pub mod retention;
pub mod state;

pub use events::{Event, EventFields, check_client_type, derived_links, home_log, manifest_root};
pub use policy::{GateRule, Policy};
pub use retention::Retention;
pub use state::{EntryMeta, GateReport, GovernanceState, Missing, Refusal, ServingMismatch};
