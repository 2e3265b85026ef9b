//! Debian archive formats and the apt mirror run.
//!
//! `signature` says which bytes a trusted key signed; `release` parses that text into
//! the list of index files; `packages` streams Packages and Sources into pool files;
//! `sync` drives one apt mirror from Release to published snapshot.
pub mod packages;
pub mod release;
pub mod signature;
pub mod sync;
