//! One run of one image-tree mirror: the shared pipeline with the images kind.
//!
//! 1. The listings are crawled (only where the include patterns can match).
//! 2. Checksum files (`.sha256` sidecars, `SHA256SUMS`), signatures and OS list JSON
//!    are read; each file they vouch for gets its SHA256 (and size, from the OS list).
//!    Files the OS list references are mirrored even if no listing shows them.
//! 3. `keep_latest` drops old dated release directories the OS list no longer names.
//! 4. Files with a checksum are linked when the published snapshot has that content,
//!    else fetched and verified. Files without one are linked when the listing still
//!    shows the same size/date text, or a HEAD shows the same size and ETag or
//!    Last-Modified; else fetched and counted as unverified.
//! 5. Detached signatures are checked over the staged files (with `keyring`), the OS
//!    list copies are rewritten for `rewrite_base`, and the snapshot is published with
//!    one rename, exactly as for apt.
//!
//! Any failure before the rename leaves the served tree untouched; partial downloads
//! stay in `partial/` and resume next time, with If-Range.

use super::source::ImagesSource;
use crate::config::{ImagesMirror, Mirror};
use crate::pipeline::{self, MirrorReport, RunContext};

pub async fn sync_images(
    ctx: &RunContext<'_>,
    mirror: &Mirror,
    images: &ImagesMirror,
) -> anyhow::Result<MirrorReport> {
    pipeline::run(ctx, mirror, ImagesSource::new(images)?).await
}
