//! mirrorsync: keeps a mirror of an apt repository (or an OS image tree) a faithful,
//! always-consistent copy of its upstream.
//!
//! # Layout
//! Data flows one way, through one pipeline for every kind of mirror:
//!
//! ```text
//! cli ─▶ config ─▶ sync ─▶ pipeline::run ──────────────────────────────────────────▶ s3
//!                           │ offer        plan   guard   stage   grace  publish  record
//!                           ▼ (the kind)     │      │       │       │       │        │
//!                        apt::source       plan  plan   fetch   snapshot snapshot  state,
//!                        images::source                 upstream                   trace
//! ```
//!
//! - [`cli`]: the `mirrorsync` command line, one module per subcommand, and all
//!   rendering (tables, JSON, progress); `main.rs` only parses and maps exit codes.
//! - [`config`]: mirrors.toml, parsed and validated once into a [`config::Config`].
//! - [`sync`]: one run over the configured mirrors: the lock, push-trigger reruns,
//!   state.json and metrics.prom after each mirror, the bucket step.
//! - [`pipeline`]: one mirror's run, written once: load the published state -> the
//!   kind's offer -> plan -> guard -> stage -> keep for grace -> publish -> record. Its
//!   [`pipeline::Source`] trait is the seam a kind of mirror implements.
//! - [`apt`]: the apt kind: signed Release files (`apt::signature`, apt's own rules),
//!   indices and by-hash, Packages/Sources parsing into the pool.
//! - [`images`]: the image-tree kind: listings, checksum files, OS lists, signatures.
//! - [`upstream`]: the HTTP client: retries, conditional GETs, verified, resumable
//!   downloads; [`ratelimit`] caps its bandwidth.
//! - [`relpath`]: every path from upstream is checked here before it touches the disk.
//! - [`plan`]: pure; wanted files + the published manifest -> link/fetch/keep/delete
//!   (`pipeline::plan` does it as one merge of sorted streams for a run).
//! - [`fetch`]: carries the plan out into the staging tree, `concurrency` at a time;
//!   [`digest`]: whether a file on disk already holds the bytes a checksum wants.
//! - [`snapshot`] and [`manifest`]: staging, hard links, the one-rename publish, prune;
//!   [`shared`]: the pool and by-hash objects, stored once for all snapshots;
//!   [`merge`]: sorted streams (the manifest on disk, an external sort, their join)
//!   for planning in memory that does not grow with the tree.
//! - [`atomic`]: replacing a file so a reader or a power cut sees old or new, never half.
//! - [`s3`]: publishing snapshots into S3-compatible object storage, in a safe order.
//! - [`trace`]: the ftpsync-style trace files mirror checkers read.
//! - [`state`]: state.json, what the last runs did; [`metrics`]: metrics.prom from it,
//!   in the Prometheus text format [`promtext`] writes (for `probe` too).
//! - [`verify`]: re-hash a published tree against its manifest and signatures.
//! - [`probe`]: `mirrorsync probe`, health checks as mirror-list checkers do them.
//! - [`lock`]: the run lock; [`report`]: how progress reaches the front end;
//!   [`failures`]: many failures summed up in one error.
//! - `demo` (default feature `demo`): the whole product against a fixture on loopback,
//!   served by the `mirrorsync-testkit` crate; a build without the feature carries no
//!   HTTP server and no Garage code.

pub mod apt;
pub mod atomic;
pub mod auth;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod digest;
pub mod failures;
pub mod fetch;
pub mod history;
pub mod images;
pub mod lock;
pub mod manifest;
pub mod merge;
pub mod metrics;
pub mod page;
pub mod pipeline;
pub mod plan;
pub mod probe;
pub mod promtext;
pub mod ratelimit;
pub mod relpath;
pub mod report;
pub mod s3;
pub mod shared;
pub mod snapshot;
pub mod state;
pub mod sync;
pub mod trace;
pub mod upstream;
pub mod verify;
