//! The access matrix against its generated documentation.

mod access_doc;
