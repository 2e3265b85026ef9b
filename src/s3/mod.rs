//! Publishing into S3-compatible object storage (AWS S3, Garage, MinIO, Ceph RGW), for
//! operators who serve from a bucket behind many web front ends or a CDN.
//!
//! The local snapshot stays the source of truth: a sync publishes locally as always,
//! then brings the bucket to the same snapshot. Object stores have no rename, so
//! consistency comes from order ([`order`]), and resumption from the bucket's own
//! record of what it holds ([`record`]).
//!
//! - [`target`]: `publish = "s3://bucket/prefix"`, endpoint, region, credentials.
//! - [`order`]: pure; which wave a path goes up in, and what to upload and delete.
//! - [`record`]: the bucket record object, what the bucket holds.
//! - [`publish`]: carries the plan out: concurrent, multipart for large files,
//!   checkpointed, deletes last.

pub mod order;
pub mod publish;
pub mod record;
pub mod target;

use anyhow::Context;

use crate::config::Mirror;
use crate::snapshot::MirrorDirs;
pub use publish::{BucketReport, Publisher};
pub use target::S3Target;

/// Where a mirror remembers which snapshot its bucket was last brought to, so a run
/// with nothing new costs the bucket no request at all.
fn marker_path(dirs: &MirrorDirs) -> std::path::PathBuf {
    dirs.base.join("bucket-published")
}

/// Brings `mirror`'s bucket to its published snapshot. `check_bucket` asks the
/// bucket what it holds instead of trusting the record (`sync --verify-all`);
/// `replace` are paths found damaged in the bucket, uploaded again.
/// Returns None when the bucket already holds this snapshot.
pub async fn publish_mirror(
    root: &std::path::Path,
    mirror: &Mirror,
    target: &S3Target,
    check_bucket: bool,
    replace: &[crate::relpath::RelPath],
) -> anyhow::Result<Option<BucketReport>> {
    let dirs = MirrorDirs::new(root, &mirror.name);
    let Some(snapshot) = dirs.current().context("reading the published snapshot")? else {
        return Ok(None);
    };
    let marker = marker_path(&dirs);
    let stamp = format!("{}\n{}\n", target.url(), snapshot.id);
    if !check_bucket
        && replace.is_empty()
        && std::fs::read_to_string(&marker).is_ok_and(|m| m == stamp)
    {
        return Ok(None);
    }
    let store = target
        .store(&mirror.network)
        .with_context(|| format!("setting up the S3 client for {}", target.url()))?;
    let publisher = Publisher::new(store, target.clone(), mirror.network.concurrency.get());
    let report = publisher
        .publish(
            &snapshot.dir,
            &snapshot.id,
            &snapshot.manifest,
            check_bucket,
            replace,
        )
        .await
        .with_context(|| {
            format!(
                "publishing snapshot {} to {} (the local tree is published; the bucket still serves its previous snapshot)",
                snapshot.id,
                target.url()
            )
        })?;
    if let Err(e) = std::fs::write(&marker, stamp) {
        // Only costs the next run one GET of the bucket record.
        tracing::warn!(path = %marker.display(), error = %e, "could not record the bucket's snapshot");
    }
    Ok(Some(report))
}
