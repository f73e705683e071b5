//! custody's HTTP server: the `/v1` JSON API over the evidence service, and every log as a
//! C2SP tiled transparency log under `/tlog/{tenant}/{log}/`.
//!
//! The server is a library so tests and the `custody serve` command run the same router; the
//! binary only wires configuration, storage and signals to [`serve`].
//!
//! Layout: `router` names every route and builds the OpenAPI document; `handlers` hold one
//! module per resource; `extract` turns request inputs into domain types; `error` is the one
//! problem type; `middleware` authenticates, authorises and rate-limits (with the buckets of
//! `limits`); `state` is what they share. The modules are private: a handler is reachable
//! only through the router, behind the access middleware. Modules depend downward only (router → handlers → extract, error, state),
//! never on each other sideways.
//!
//! API boundary: every response is either the documented JSON (see [`openapi`]), a byte-exact
//! C2SP format (checkpoints, tlog-proofs, verifier keys, tiles, entry bundles), or an RFC 9457
//! problem. Malformed JSON, a wrong content type, an unknown query parameter or an oversize
//! body all get a precise problem rather than a framework default, and none of them writes
//! anything. The server writes no evidence itself: every entry goes through
//! `custody_governance::Governance`.

mod caller;
mod error;
mod extract;
mod handlers;
mod limits;
mod middleware;
mod router;
mod serve;
mod state;
mod tls;

pub use caller::PURPOSE_HEADER;
pub use custody_governance::Backend;
pub use error::ApiError;
pub use extract::MAX_BODY_BYTES;
pub use limits::Rate;
pub use router::{openapi, router};
pub use serve::{ServeOptions, serve};
pub use state::AppState;
pub use tls::{Peer, TlsError, tls_config};
