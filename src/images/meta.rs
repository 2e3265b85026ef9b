//! The small files of an image tree (OS lists, checksum files, signatures), read into
//! memory: from the published snapshot while upstream shows them unchanged, else
//! from upstream; OS lists conditionally, against upstream's own copy kept aside.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::bail;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use url::Url;

use super::records::{Record, Records};
use crate::fetch::file_url;
use crate::manifest::Manifest;
use crate::relpath::RelPath;
use crate::snapshot::MirrorDirs;
use crate::upstream::{FetchError, Meta, Upstream, Validators, redact};

/// Checksum files, signatures and OS lists are read into memory; none is this big.
pub(super) const MAX_META_BYTES: u64 = 64 << 20;

/// A small file read into memory this run.
pub(super) struct MetaFile {
    /// As upstream serves it.
    pub bytes: Bytes,
    /// As this mirror publishes it (an OS list rewritten for `rewrite_base`).
    pub publish: Bytes,
    pub mtime: Option<SystemTime>,
    pub validators: Validators,
    /// Fetched this run (not read back from the published snapshot).
    pub fetched: bool,
}

/// Reads small files: from the published snapshot when the listing shows them
/// unchanged, else from upstream.
pub(super) struct MetaReader<'a> {
    pub upstream: &'a Upstream,
    pub base: &'a Url,
    pub current: Option<(&'a std::path::Path, &'a Manifest)>,
    pub records: &'a Records,
    pub verify_all: bool,
    /// Upstream's own copies of the OS lists, as the last publish took them.
    pub copies: std::path::PathBuf,
}

/// Where upstream's OS lists are kept between runs, named by path digest.
pub(super) fn upstream_copies(dirs: &MirrorDirs) -> std::path::PathBuf {
    dirs.base.join("os-lists")
}

fn copy_name(path: &RelPath) -> String {
    hex::encode(Sha256::digest(path.as_str()))
}

/// True if a conditional request on these validators can be trusted: web servers
/// date files (and derive ETags) to the second, so a file changed within the same
/// second as the copy we kept would still answer 304. Only a Last-Modified clearly
/// older than our copy vouches for it.
fn validators_settled(r: &Record, kept: &std::path::Path) -> bool {
    let Some(lm) = r
        .last_modified
        .as_deref()
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    std::fs::metadata(kept)
        .and_then(|m| m.modified())
        .is_ok_and(|taken| lm + std::time::Duration::from_secs(2) < taken)
}

/// Keeps upstream's OS lists for the next run's conditional requests; written only
/// after a publish, so they always match the validators recorded with it.
pub(super) fn save_upstream_copies(
    dirs: &MirrorDirs,
    meta: &BTreeMap<RelPath, MetaFile>,
    lists: &[RelPath],
) {
    let dir = upstream_copies(dirs);
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    for path in lists {
        if let Some(m) = meta.get(path) {
            // A torn copy must never answer for upstream's list after a power cut.
            let _ = crate::atomic::write(&dir.join(copy_name(path)), &m.bytes);
        }
    }
}

impl MetaReader<'_> {
    /// An OS list: conditionally, when upstream's copy from the last publish is kept.
    pub async fn fetch_os_list(&self, path: &RelPath) -> anyhow::Result<MetaFile> {
        let kept = self.copies.join(copy_name(path));
        if !self.verify_all
            && let Some(r) = self.records.files.get(path.as_str())
            && validators_settled(r, &kept)
            && let Ok(bytes) = std::fs::read(&kept)
        {
            let known = Validators {
                etag: r.etag.clone(),
                last_modified: r.last_modified.clone(),
                content_sha256: None,
            };
            let url = file_url(self.base, path)?;
            let answer = self
                .upstream
                .get_meta(&url, MAX_META_BYTES, Some(&known))
                .await?;
            if let Meta::NotModified = answer {
                let bytes = Bytes::from(bytes);
                return Ok(MetaFile {
                    publish: bytes.clone(),
                    bytes,
                    mtime: None,
                    validators: known,
                    // Compared with the published copy after rewriting, as if fetched.
                    fetched: true,
                });
            }
            return meta_file(path, &url, answer);
        }
        self.fetch(path).await
    }

    /// A small file; the published copy serves while the listing (or OS list) shows
    /// the same `hint` it showed when that copy was taken.
    pub async fn get(&self, path: &RelPath, hint: &str) -> anyhow::Result<MetaFile> {
        if !self.verify_all
            && let Some((dir, manifest)) = self.current
            && let Some(entry) = manifest.files.get(path)
            && let Some(r) = self.records.files.get(path.as_str())
            && !r.hint.is_empty()
            && r.hint == hint
        {
            let file = path.under(dir);
            if let Ok(bytes) = std::fs::read(&file)
                && bytes.len() as u64 == entry.size
                && <[u8; 32]>::from(Sha256::digest(&bytes)) == entry.sha256
            {
                let bytes = Bytes::from(bytes);
                return Ok(MetaFile {
                    publish: bytes.clone(),
                    bytes,
                    mtime: None,
                    validators: Validators {
                        etag: r.etag.clone(),
                        last_modified: r.last_modified.clone(),
                        content_sha256: None,
                    },
                    fetched: false,
                });
            }
        }
        self.fetch(path).await
    }

    async fn fetch(&self, path: &RelPath) -> anyhow::Result<MetaFile> {
        let url = file_url(self.base, path)?;
        let answer = self.upstream.get_meta(&url, MAX_META_BYTES, None).await?;
        meta_file(path, &url, answer)
    }
}

/// A small file as a GET brought it.
fn meta_file(path: &RelPath, url: &Url, answer: Meta) -> anyhow::Result<MetaFile> {
    match answer {
        Meta::Body {
            body,
            validators,
            last_modified,
            content_type,
            ..
        } => {
            if content_type.is_some_and(|t| t.starts_with("text/html"))
                && !path.as_str().ends_with(".html")
            {
                return Err(FetchError::SoftNotFound { url: redact(url) }.into());
            }
            Ok(MetaFile {
                publish: body.clone(),
                bytes: body,
                mtime: last_modified,
                validators,
                fetched: true,
            })
        }
        Meta::NotModified => bail!("{}: 304 to an unconditional request", redact(url)),
    }
}
