//! One module per command family. Each takes its flags (stage one, parsed in `args.rs`) and the
//! checked [`Settings`](crate::settings::Settings) (stage two), connects to the server only
//! if and when it needs to, and returns the process's exit code.

pub mod append;
pub mod audit;
pub mod demo;
pub mod drift;
pub mod erasure;
pub mod export;
pub mod govern;
pub mod integrity;
pub mod keys;
pub mod log;
pub mod model;
pub mod monitor;
pub mod pack;
pub mod pack_objects;
pub mod principals;
pub mod serve;
pub mod tenant;
pub mod verify;
