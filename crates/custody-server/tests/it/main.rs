//! The server's integration tests: the real server on an ephemeral port, driven over HTTP
//! with the typed client and raw requests. One binary, one module per concern.

mod common;

mod access;
mod api;
mod erasure;
mod evidence;
mod limits;
mod openapi;
mod postgres;
mod rotation;
mod tiles;
mod tls;
