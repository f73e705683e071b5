//! The payload-objects wrapper's integration tests.

mod objects;
