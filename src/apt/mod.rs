//! Debian archive formats and the apt kind of mirror.
//!
//! `signature` says which bytes a trusted key signed; `release` parses that text into
//! the list of index files; `packages` streams Packages and Sources into pool files.
//! The apt mirror run: `suite` fetches and verifies each suite's Release files
//! (`published` reads back the ones already served, `dates` refuses expired and
//! rolled-back ones), `indices` stages the indices and reads the pool from them,
//! `source` is the kind as the shared pipeline sees it, and `sync` runs it again
//! while the upstream is busy or moving (`retry`).
mod dates;
mod indices;
pub mod layout;
pub mod packages;
mod published;
pub mod release;
mod retry;
pub mod signature;
mod source;
mod suite;
pub mod sync;
