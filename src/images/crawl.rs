//! Walks an image tree's directory listings from `upstream` down.
//!
//! Only children a listing names are followed, so the walk never leaves `upstream`;
//! directories no include pattern can match under are not listed at all (the Raspberry
//! Pi download server has hundreds of directories, a mirror usually wants a few). A
//! server-side symlink loop (`a/loop/` showing `a/` again) is cut off where a listing
//! repeats one of its ancestors byte for byte, and by a depth limit. The number of
//! entries is capped by `max_files` before a listing is parsed into memory.

use std::collections::HashSet;

use futures_util::StreamExt;
use globset::GlobSet;
use sha2::{Digest, Sha256};
use url::Url;

use super::listing::{self, EntryKind, ListingEntry};
use crate::relpath::RelPath;
use crate::upstream::{Meta, Upstream, redact};

/// No real download tree is this deep; a loop the content check misses ends here.
const MAX_DEPTH: usize = 24;

/// A listing larger than this is refused before it is parsed (100,000 nginx entries
/// are ~13 MB).
const MAX_LISTING_BYTES: u64 = 32 << 20;

/// Which paths a mirror wants.
pub struct Scope<'a> {
    pub include: &'a [String],
    pub include_set: &'a GlobSet,
    pub exclude_set: &'a GlobSet,
}

impl Scope<'_> {
    /// True for a file path the mirror takes.
    pub fn wants(&self, path: &str) -> bool {
        (self.include.is_empty() || self.include_set.is_match(path))
            && !self.exclude_set.is_match(path)
    }

    /// True if some file under directory `dir` ("a/b", "" for the top) could be wanted.
    fn may_hold(&self, dir: &str) -> bool {
        if !dir.is_empty() && self.exclude_set.is_match(dir) {
            return false;
        }
        self.include.is_empty()
            || self.include.iter().any(|pattern| {
                let (prefix, deeper) = literal_prefix(pattern);
                let on_the_way =
                    prefix == dir || dir.is_empty() || prefix.starts_with(&format!("{dir}/"));
                let below = prefix.is_empty() || dir.starts_with(&format!("{prefix}/"));
                on_the_way || (deeper && below)
            })
    }
}

/// The directories of `pattern` before its first glob character, and whether it can
/// match below them: "a/b/*.img" -> ("a/b", false), "a/**" -> ("a", true),
/// "file.json" -> ("", false), "*/x" -> ("", true).
fn literal_prefix(pattern: &str) -> (String, bool) {
    let components: Vec<&str> = pattern.split('/').collect();
    let (dirs, last) = components.split_at(components.len() - 1);
    let mut prefix = Vec::new();
    for c in dirs {
        if c.contains(['*', '?', '[', '{', '\\']) {
            return (prefix.join("/"), true);
        }
        prefix.push(*c);
    }
    let deeper = last
        .first()
        .is_some_and(|l| l.contains("**") || l.contains('{'));
    (prefix.join("/"), deeper)
}

/// A file a listing shows.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: RelPath,
    /// The size and date text beside it (see [`ListingEntry::hint`]).
    pub hint: String,
    /// Exact size, when the listing states it exactly.
    pub size: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Crawl {
    /// Wanted files, in path order.
    pub files: Vec<Found>,
    pub listings: usize,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    // The fetch error names the URL already.
    #[error("reading a listing: {source}")]
    Fetch {
        url: String,
        #[source]
        source: crate::upstream::FetchError,
    },
    #[error("listing {url}: {source}")]
    Listing {
        url: String,
        #[source]
        source: listing::ListingError,
    },
    #[error(
        "upstream lists more than max_files ({limit}) entries (at {url}); raise max_files if that is real"
    )]
    TooMany { url: String, limit: usize },
    #[error("a listing parser task failed: {0}")]
    Task(String),
    #[error("listing {url} redirects to {to}, outside the mirrored tree")]
    Escaped {
        url: String,
        to: String,
        /// Where it went, unredacted: a root that moved host is followed once.
        target: Box<Url>,
    },
}

struct Dir {
    /// "" for the top, else "a/b".
    path: String,
    url: Url,
    /// Digests of the listings above it, to notice a loop.
    ancestors: Vec<[u8; 32]>,
}

/// Lists `base` and the directories under it the scope may want, `concurrency`
/// listings at a time.
pub async fn crawl(
    upstream: &Upstream,
    base: &Url,
    scope: &Scope<'_>,
    max_files: usize,
    concurrency: usize,
) -> Result<Crawl, CrawlError> {
    let mut walker = Walker {
        scope,
        max_files,
        out: Crawl::default(),
        seen_entries: 0,
        visited: HashSet::new(),
    };
    let mut level = vec![Dir {
        path: String::new(),
        url: base.clone(),
        ancestors: Vec::new(),
    }];
    while !level.is_empty() {
        let budget = max_files.saturating_sub(walker.seen_entries);
        let mut listed = futures_util::stream::iter(level.into_iter().map(|dir| async move {
            let result = list(upstream, base, &dir.url, budget).await;
            (dir, result)
        }))
        .buffer_unordered(concurrency.max(1));
        let mut next = Vec::new();
        while let Some((dir, result)) = listed.next().await {
            let (entries, digest) = result?;
            next.extend(walker.take_listing(dir, entries, digest)?);
        }
        level = next;
    }
    let mut out = walker.out;
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out.files.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

/// What a crawl has found so far, and what it needs to decide what to list next.
struct Walker<'s, 'a> {
    scope: &'s Scope<'a>,
    max_files: usize,
    out: Crawl,
    /// Entries of all the listings read, against `max_files`.
    seen_entries: usize,
    /// Directories already taken, by path: each is listed once.
    visited: HashSet<String>,
}

impl Walker<'_, '_> {
    /// Takes in the listing of `dir` (`digest` its body's): the wanted files it shows,
    /// and the directories under it to list next, which it returns.
    fn take_listing(
        &mut self,
        dir: Dir,
        entries: Vec<ListingEntry>,
        digest: [u8; 32],
    ) -> Result<Vec<Dir>, CrawlError> {
        self.out.listings += 1;
        self.seen_entries += entries.len();
        if self.seen_entries > self.max_files {
            return Err(CrawlError::TooMany {
                url: redact(&dir.url),
                limit: self.max_files,
            });
        }
        if dir.ancestors.contains(&digest) {
            self.warn(format!(
                "{} repeats the listing of a directory above it (a symlink loop?); not descending",
                redact(&dir.url)
            ));
            return Ok(Vec::new());
        }
        let mut next = Vec::new();
        for entry in entries {
            let path = if dir.path.is_empty() {
                entry.name.clone()
            } else {
                format!("{}/{}", dir.path, entry.name)
            };
            match entry.kind {
                EntryKind::File => self.take_file(path, entry),
                EntryKind::Dir => next.extend(self.child_dir(&dir, path, &entry, digest)),
            }
        }
        Ok(next)
    }

    /// Keeps the file at `path` when the scope wants it.
    fn take_file(&mut self, path: String, entry: ListingEntry) {
        if !self.scope.wants(&path) {
            return;
        }
        // The listing parser already refused what RelPath would.
        let Ok(rel) = RelPath::new(&path) else {
            return;
        };
        self.out.files.push(Found {
            path: rel,
            hint: entry.hint,
            size: entry.size,
        });
    }

    /// The directory at `path` under `dir`, to list next, if the scope may want
    /// something in it, it was not taken before and it is not too deep.
    fn child_dir(
        &mut self,
        dir: &Dir,
        path: String,
        entry: &ListingEntry,
        digest: [u8; 32],
    ) -> Option<Dir> {
        if !self.scope.may_hold(&path) || !self.visited.insert(path.clone()) {
            return None;
        }
        if dir.ancestors.len() + 1 >= MAX_DEPTH {
            self.warn(format!(
                "{}: deeper than {MAX_DEPTH} directories; not descending",
                redact(&dir.url)
            ));
            return None;
        }
        let url = dir.url.join(&child_href(entry)).ok()?;
        let mut ancestors = dir.ancestors.clone();
        ancestors.push(digest);
        Some(Dir {
            path,
            url,
            ancestors,
        })
    }

    /// Logs `msg` and keeps it for the sync's report.
    fn warn(&mut self, msg: String) {
        tracing::warn!("{msg}");
        self.out.warnings.push(msg);
    }
}

/// The relative URL of a child directory, its name encoded again.
fn child_href(entry: &ListingEntry) -> String {
    format!("{}/", crate::fetch::encode_path(&entry.name))
}

/// Fetches and parses one listing; also returns its digest for loop detection.
async fn list(
    upstream: &Upstream,
    base: &Url,
    url: &Url,
    budget: usize,
) -> Result<(Vec<ListingEntry>, [u8; 32]), CrawlError> {
    let shown = redact(url);
    let (body, final_url, content_type) = match upstream
        .get_meta(url, MAX_LISTING_BYTES, None)
        .await
        .map_err(|source| CrawlError::Fetch {
            url: shown.clone(),
            source,
        })? {
        Meta::Body {
            body,
            url: final_url,
            content_type,
            ..
        } => (body, final_url, content_type),
        Meta::NotModified => (Default::default(), url.clone(), None),
    };
    // A directory that redirects outside the tree would make its children ours.
    if !final_url.as_str().starts_with(base.as_str()) {
        return Err(CrawlError::Escaped {
            url: shown,
            to: redact(&final_url),
            target: Box::new(final_url),
        });
    }
    let digest: [u8; 32] = Sha256::digest(&body).into();
    // 100,000 entries take seconds on a Raspberry Pi: off the async workers.
    let entries = tokio::task::spawn_blocking(move || {
        listing::parse_listing(&body, content_type.as_deref(), &final_url, budget)
    })
    .await
    .map_err(|e| CrawlError::Task(e.to_string()))?
    .map_err(|source| match source {
        listing::ListingError::TooManyLinks { limit, .. } => CrawlError::TooMany {
            url: shown.clone(),
            limit,
        },
        source => CrawlError::Listing {
            url: shown.clone(),
            source,
        },
    })?;
    Ok((entries, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_of(include: &[&str], exclude: &[&str]) -> (Vec<String>, GlobSet, GlobSet) {
        let build = |ps: &[&str]| {
            let mut b = globset::GlobSetBuilder::new();
            for p in ps {
                b.add(
                    globset::GlobBuilder::new(p)
                        .literal_separator(true)
                        .build()
                        .unwrap(),
                );
            }
            b.build().unwrap()
        };
        (
            include.iter().map(|s| s.to_string()).collect(),
            build(include),
            build(exclude),
        )
    }

    #[test]
    fn only_directories_an_include_can_reach_are_listed() {
        let (inc, is, es) = scope_of(
            &[
                "raspios_lite_armhf/images/**",
                "os_list_imagingutility_v4.json",
            ],
            &["**/*.torrent"],
        );
        let scope = Scope {
            include: &inc,
            include_set: &is,
            exclude_set: &es,
        };
        assert!(scope.may_hold(""));
        assert!(scope.may_hold("raspios_lite_armhf"));
        assert!(scope.may_hold("raspios_lite_armhf/images"));
        assert!(scope.may_hold("raspios_lite_armhf/images/raspios_lite_armhf-2024-11-19"));
        assert!(!scope.may_hold("raspios_full_arm64"));
        assert!(!scope.may_hold("raspios_full_arm64/images"));
        assert!(!scope.may_hold("raspios_lite_armhf/archive"));
        assert!(scope.wants("os_list_imagingutility_v4.json"));
        assert!(scope.wants("raspios_lite_armhf/images/d-2024-11-19/x.img.xz"));
        assert!(!scope.wants("raspios_lite_armhf/images/d-2024-11-19/x.img.xz.torrent"));
        assert!(!scope.wants("os_list_imagingutility_v3.json"));
    }

    #[test]
    fn a_leading_glob_means_every_directory() {
        let (inc, is, es) = scope_of(&["**/*.sha256"], &["private"]);
        let scope = Scope {
            include: &inc,
            include_set: &is,
            exclude_set: &es,
        };
        assert!(scope.may_hold("anything/at/all"));
        assert!(!scope.may_hold("private"));
        assert_eq!(literal_prefix("a/b/*.img"), ("a/b".into(), false));
        assert_eq!(literal_prefix("file.json"), ("".into(), false));
        assert_eq!(literal_prefix("a/{b,c}/x"), ("a".into(), true));
        assert_eq!(literal_prefix("a/**"), ("a".into(), true));
    }
}
