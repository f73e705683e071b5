//! What runs around every handler: authentication and authorisation of each request, its
//! rate limits, and the access-log record of every refusal ([`auth`]).

pub mod auth;
