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
//! - [`digest`]: whether a file on disk already holds the bytes a checksum wants.
//! - [`snapshot`] and [`manifest`]: staging, hard links, the one-rename publish, prune.
//! - [`s3`]: publishing snapshots into S3-compatible object storage, in a safe order.
//! - [`trace`]: the ftpsync-style trace files mirror checkers read.
//! - [`state`]: state.json, what the last runs did; [`metrics`]: metrics.prom from it.
//! - [`atomic`]: replacing a file so a reader or a power cut sees old or new, never half.
//! - [`promtext`]: the Prometheus text format metrics.prom and `probe` write.
//! - [`verify`]: re-hash a published tree against its manifest and signatures.
//! - [`probe`]: `mirrorsync probe`, health checks as mirror-list checkers do them.
//! - [`lock`]: the run lock; [`sync`]: one run over the configured mirrors.
//! - [`report`]: how progress reaches the front end; nothing here prints.
//! - [`cli`]: the `mirrorsync` command line, one module per subcommand; the binary calls it.
//! - [`demo`]: `mirrorsync demo`, the whole product against a fixture on loopback.
//! - [`fixture`]: signed repositories served on loopback, for the demo and the tests.

pub mod apt;
pub mod atomic;
pub mod cli;
pub mod config;
pub mod demo;
pub mod digest;
pub mod failures;
pub mod fetch;
pub mod fixture;
pub mod images;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod probe;
pub mod promtext;
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
