//! Where an image tree is: its base URL (after a root redirect), and the paths of
//! URLs below it.

use url::Url;

use super::crawl::{self, Scope};
use crate::config::ImagesMirror;
use crate::relpath::RelPath;
use crate::upstream::{Upstream, redact};

/// The path of `url` below the first of `bases` it is below.
pub(super) fn under_base(bases: &[Url], url: &Url) -> Option<RelPath> {
    bases.iter().find_map(|b| path_under(b, url))
}

/// Crawls the tree; a root that redirects to another place (a host rename such as
/// downloads.raspberrypi.org -> .com) is followed once, and that place becomes the
/// base for listings and files. Returns the crawl and the base used.
pub(super) async fn crawl_root(
    upstream: &Upstream,
    configured: &Url,
    scope: &Scope<'_>,
    images: &ImagesMirror,
    concurrency: usize,
) -> anyhow::Result<(crawl::Crawl, Url)> {
    match crawl::crawl(upstream, configured, scope, images.max_files, concurrency).await {
        Err(crawl::CrawlError::Escaped { url, target, .. }) if url == redact(configured) => {
            let mut moved = *target;
            moved.set_query(None);
            moved.set_fragment(None);
            if !moved.path().ends_with('/') {
                let path = format!("{}/", moved.path());
                moved.set_path(&path);
            }
            let crawled =
                crawl::crawl(upstream, &moved, scope, images.max_files, concurrency).await?;
            Ok((crawled, moved))
        }
        other => Ok((other?, configured.clone())),
    }
}

/// The path of `url` below `base`, if it is below it.
fn path_under(base: &Url, url: &Url) -> Option<RelPath> {
    if url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    let rest = url.as_str().strip_prefix(base.as_str())?;
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()?;
    RelPath::new(&decoded).ok()
}
