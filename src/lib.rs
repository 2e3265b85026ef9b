//! mirrorsync: keeps a mirror of an apt repository (or an OS image tree) a faithful,
//! always-consistent copy of its upstream.
//!
//! # Layout
//! Data flows one way: config -> upstream -> apt -> plan -> fetch -> snapshot -> trace.
//!
//! - [`config`]: mirrors.toml, parsed and validated once into a [`config::Config`].
//! - [`upstream`]: the HTTP client: retries, conditional GETs, verified, resumable
//!   downloads; [`ratelimit`] caps its bandwidth.
//! - [`apt`]: signed Release files, Packages/Sources parsing, and the apt mirror run.
//! - [`images`]: directory listings, checksum files and OS lists of image trees.
//! - [`relpath`]: every path from upstream is checked here before it touches the disk.
//! - [`plan`]: pure; wanted files + the published manifest -> link/fetch/keep/delete.
//! - [`fetch`]: carries the plan out into the staging tree, `concurrency` at a time.
//! - [`snapshot`] and [`manifest`]: staging, hard links, the one-rename publish, prune.
//! - [`s3`]: publishing snapshots into S3-compatible object storage, in a safe order.
//! - [`trace`]: the ftpsync-style trace files mirror checkers read.
//! - [`state`]: state.json, what the last runs did; [`metrics`]: metrics.prom from it.
//! - [`verify`]: re-hash a published tree against its manifest and signatures.
//! - [`probe`]: `mirrorsync probe`, health checks as mirror-list checkers do them.
//! - [`lock`]: the run lock; [`sync`]: one run over the configured mirrors.
//! - [`report`]: how progress reaches the front end; nothing here prints.
//! - `demo` (feature `demo`, on by default): `mirrorsync demo`, the whole product
//!   against fixtures served on loopback.
//!
//! The fixtures themselves (signed repositories, image trees, the loopback server, a
//! Garage cluster) are the `mirrorsync-testkit` crate in crates/testkit, kept out of
//! the product build: without `demo` it carries no HTTP server and no Garage manager.

pub mod apt;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod fetch;
pub mod images;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod plan;
pub mod probe;
pub mod ratelimit;
pub mod relpath;
pub mod report;
pub mod s3;
pub mod snapshot;
pub mod state;
pub mod sync;
pub mod trace;
pub mod upstream;
pub mod verify;
