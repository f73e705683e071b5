//! Interoperability of model hashing and signature bundles with tools custody did not write.

mod interop;
