//! Model versions as content: the hash that names a model version, and the signature bundle
//! that lets the OpenSSF `model_signing` tool check a model against it.
//!
//! custody records governance evidence about ML models, and that evidence is only worth as
//! much as the link between "model version X" and the bytes on someone's disk. This crate makes
//! that link re-derivable without custody:
//!
//! - [`hash`]: the version hash (SPEC §6). It is the OpenSSF model-signing v1.0 root digest,
//!   so `model_signing` (and a short shell pipeline over `sha256sum`) compute the same value
//!   from the same directory, together with the per-file manifest.
//! - [`bundle`]: a `model_signing`-compatible Sigstore bundle (SPEC §7) over a version's
//!   manifest, so `model_signing verify key` accepts a model signed through custody.
//!
//! The crate reads model files and nothing else: no network, no clock, no global state.
//! Signing keys stay with the caller, who signs through a closure.

pub mod bundle;
pub mod hash;

pub use bundle::{BundleError, signature_bundle};
pub use hash::{FileDigest, ModelDigest, ModelError, ModelPlan, PlannedFile, hash_path, plan};
