//! The evidence service's integration tests, on the real embedded store.

mod replay;
