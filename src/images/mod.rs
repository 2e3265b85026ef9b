//! Image trees: a download server's directory listings, checksum files and Raspberry
//! Pi Imager OS lists -> the files to mirror, verified before they are published.
//!
//! Parsing: `listing`, `sums`, `oslist`; walking: `crawl` (from where `base` says the
//! tree is). The run: `meta` reads the small files, `vouch` collects what vouches
//! for each file, `decide` takes each file (link, fetch, by size), `signatures`
//! checks detached signatures over the staged tree, `records` keeps the hints the
//! next run compares with, `retain` is `keep_latest`; `source` is the kind as the
//! shared pipeline sees it, `sync` runs it.

mod base;
pub mod crawl;
mod decide;
pub mod listing;
mod meta;
pub mod oslist;
pub mod records;
pub mod retain;
mod signatures;
mod source;
pub mod sums;
pub mod sync;
mod vouch;
