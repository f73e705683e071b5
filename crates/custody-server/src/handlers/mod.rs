//! One module per resource. Handlers parse nothing themselves (the extractors of
//! [`crate::extract`] do), call the evidence service or the ledger, record reads of evidence
//! in the access log before answering, and never import each other.

pub mod audit;
pub mod entries;
pub mod erasure;
pub mod integrity;
pub mod principals;
pub mod proofs;
pub mod service;
pub mod tenants;
pub mod tiles;
