//! Image trees: a download server's directory listings, checksum files and Raspberry
//! Pi Imager OS lists -> the files to mirror, verified before they are published.

pub mod crawl;
pub mod listing;
pub mod oslist;
pub mod records;
pub mod retain;
pub mod sums;
pub mod sync;
