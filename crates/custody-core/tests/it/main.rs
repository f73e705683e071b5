//! The core's integration tests: known-answer vectors pinned to their upstream sources,
//! property tests of the proof code, interoperability with independent Python
//! implementations, and the repository's tidy rules.

mod dsse_interop;
mod dsse_kat;
mod merkle_kat;
mod merkle_props;
mod note_kat;
mod tidy;
