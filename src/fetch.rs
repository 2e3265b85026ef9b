//! Carries out a plan's actions into the staging tree, downloads at most
//! `concurrency` at a time.
//!
//! Links are cheap and done in one blocking batch. Fetches are grouped by content, so a
//! file wanted under two paths (an index and its by-hash twin) crosses the network
//! once; each group tries its members' sources in turn, so a by-hash 404 falls back to
//! the plain path. A file staged by an earlier, failed run is reused when its bytes
//! still hash right. Downloads land in `partial/` (named by digest, so a killed run
//! resumes them) and are renamed into staging only once verified.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use url::Url;

use crate::plan::{Action, Wanted};
use crate::relpath::RelPath;
use crate::report::Reporter;
use crate::snapshot::{self, SnapshotError};
use crate::upstream::{Expected, FetchError, Upstream};

/// Re-exported from where it now lives, for callers that import it from here.
pub use crate::digest::file_matches;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("joining {path} to the upstream URL: {source}")]
    Url {
        path: String,
        #[source]
        source: JoinError,
    },
    #[error("a staging task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Content(#[from] crate::shared::SharedError),
    /// The same failure as another path with the same content.
    #[error("{message}")]
    Shared { message: String, not_found: bool },
}

impl StageError {
    pub fn is_not_found(&self) -> bool {
        match self {
            StageError::Fetch(e) => e.is_not_found(),
            StageError::Shared { not_found, .. } => *not_found,
            _ => false,
        }
    }
}

/// Links made per blocking task.
const LINK_BATCH: usize = 4096;

/// What happened to one wanted file.
#[derive(Debug)]
pub struct Outcome {
    pub wanted: Wanted,
    pub result: Result<Placed, StageError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    Linked,
    /// Already in staging from an earlier run, verified again.
    Reused,
    Fetched {
        received: u64,
    },
}

/// Where things go, and where they come from.
pub struct Stager<'a> {
    pub upstream: &'a Upstream,
    pub base_url: &'a Url,
    pub staging: &'a Path,
    pub partial: &'a Path,
    /// Where pool and by-hash files live once for every snapshot.
    pub shared: std::sync::Arc<crate::shared::Shared>,
    /// The published snapshot's directory, source of links.
    pub published: Option<&'a Path>,
    pub concurrency: usize,
    pub reporter: &'a dyn Reporter,
    /// Re-hash published files before linking them (`--verify-all`); a damaged one is
    /// fetched again instead.
    pub verify_links: bool,
    /// Paths fetched from upstream even when their place already holds the bytes
    /// the checksum wants (in the shared content it always does).
    pub refetch: Option<&'a std::collections::HashSet<RelPath>>,
}

impl<'a> Stager<'a> {
    /// Fetches `paths` from upstream whatever their place holds.
    pub fn refetching(mut self, paths: &'a std::collections::HashSet<RelPath>) -> Stager<'a> {
        self.refetch = Some(paths);
        self
    }

    /// Executes `actions`; one outcome per action, in no particular order.
    pub async fn run(&self, actions: Vec<Action>) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        self.run_each(actions, &mut |o| outcomes.push(o)).await;
        outcomes
    }

    /// Executes `actions`, handing each outcome to `on_outcome` as it completes, so
    /// a pool of tens of thousands of files is never held twice in memory.
    pub async fn run_each(&self, actions: Vec<Action>, on_outcome: &mut dyn FnMut(Outcome)) {
        let mut fetches = Vec::new();
        if self.verify_links {
            let mut links = Vec::new();
            for a in actions {
                match a {
                    Action::Link { from, to } => links.push((from, to)),
                    Action::Fetch(w) => fetches.push(w),
                }
            }
            let (good, damaged) = self.check_links(links).await;
            fetches.extend(damaged);
            let mut good = good.into_iter();
            loop {
                let chunk: Vec<_> = good.by_ref().take(LINK_BATCH).collect();
                if chunk.is_empty() {
                    break;
                }
                for o in self.link_all(chunk).await {
                    on_outcome(o);
                }
            }
        } else {
            // Linked in slices straight from the plan, so neither a second list of a
            // 65,000-file pool nor all its outcomes are ever alive at once.
            let mut chunk = Vec::with_capacity(LINK_BATCH.min(actions.len()));
            for a in actions {
                match a {
                    Action::Link { from, to } => chunk.push((from, to)),
                    Action::Fetch(w) => fetches.push(w),
                }
                if chunk.len() == LINK_BATCH {
                    for o in self.link_all(std::mem::take(&mut chunk)).await {
                        on_outcome(o);
                    }
                }
            }
            if !chunk.is_empty() {
                for o in self.link_all(chunk).await {
                    on_outcome(o);
                }
            }
        }
        // Same content, one download: groups are runs of equal digests.
        fetches.sort_unstable_by_key(|w| w.sha256);
        let mut results = futures_util::stream::iter(fetches.chunk_by(|a, b| a.sha256 == b.sha256))
            .map(|group| self.fetch_group(group))
            .buffer_unordered(self.concurrency.max(1));
        while let Some(group) = results.next().await {
            for o in group {
                on_outcome(o);
            }
        }
    }

    /// The symlink of `path`'s shared directory, made before a file goes there.
    fn prepare(&self, path: &RelPath) -> Result<(), StageError> {
        Ok(self.shared.prepare(path)?)
    }

    /// Where a file for `path` goes: staging, or held when it would replace a
    /// shared file the published snapshot serves.
    fn dest(&self, path: &RelPath) -> PathBuf {
        self.shared.dest(path)
    }

    /// Splits links into those whose published source still hashes right and the
    /// wanted files whose source is damaged.
    async fn check_links(
        &self,
        links: Vec<(RelPath, Wanted)>,
    ) -> (Vec<(RelPath, Wanted)>, Vec<Wanted>) {
        let Some(published) = self.published.map(Path::to_path_buf) else {
            return (links, Vec::new());
        };
        let job = tokio::task::spawn_blocking(move || {
            let mut good = Vec::new();
            let mut damaged = Vec::new();
            for (from, w) in links {
                if file_matches(&from.under(&published), w.size, &w.sha256) {
                    good.push((from, w));
                } else {
                    tracing::warn!(path = %from, "published copy is damaged; fetching it again");
                    damaged.push(w);
                }
            }
            (good, damaged)
        });
        job.await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    async fn link_all(&self, links: Vec<(RelPath, Wanted)>) -> Vec<Outcome> {
        let Some(published) = self.published.map(Path::to_path_buf) else {
            return links
                .into_iter()
                .map(|(_, w)| Outcome {
                    wanted: w,
                    result: Err(StageError::Task("nothing published to link from".into())),
                })
                .collect();
        };
        let staging = self.staging.to_path_buf();
        let shared = self.shared.clone();
        let prepared: Vec<Result<(), StageError>> =
            links.iter().map(|(_, w)| self.prepare(&w.path)).collect();
        let job = tokio::task::spawn_blocking(move || {
            links
                .into_iter()
                .zip(prepared)
                .map(|((from, w), prepared)| {
                    let result = prepared.and_then(|()| {
                        link_into(&from.under(&published), &w.path, &staging, &shared)
                    });
                    Outcome { wanted: w, result }
                })
                .collect::<Vec<_>>()
        });
        // The closure does not panic on bad input; if it panics anyway, so do we.
        job.await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Fetches one content (all `group` members share the digest) and places it at
    /// every member's path.
    async fn fetch_group(&self, group: &[Wanted]) -> Vec<Outcome> {
        let first = &group[0];
        let prepared: Result<(), StageError> = group.iter().try_for_each(|w| self.prepare(&w.path));
        // Decided before anything is placed: placing the first makes the file exist.
        let dests: Vec<PathBuf> = group.iter().map(|w| self.dest(&w.path)).collect();
        let result = match prepared {
            Ok(()) => self.obtain(group, &dests[0]).await,
            Err(e) => Err(e),
        };
        let mut out = Vec::with_capacity(group.len());
        match result {
            Ok((placed_at, how)) => {
                for (w, dest) in group.iter().zip(&dests) {
                    let result = if *dest == placed_at {
                        Ok(how.clone())
                    } else {
                        link_into(&placed_at, &w.path, self.staging, &self.shared)
                    };
                    out.push(Outcome {
                        wanted: w.clone(),
                        result,
                    });
                }
            }
            Err(e) => {
                tracing::debug!(path = %first.path, error = %e, "fetch failed");
                let msg = e.to_string();
                let not_found = e.is_not_found();
                let mut err = Some(e);
                for w in group {
                    let e = match err.take() {
                        Some(e) => e,
                        // Each member gets the failure; only the first keeps its source.
                        None => StageError::Shared {
                            message: msg.clone(),
                            not_found,
                        },
                    };
                    out.push(Outcome {
                        wanted: w.clone(),
                        result: Err(e),
                    });
                }
            }
        }
        out
    }

    /// Gets the group's content into staging at the first member's path.
    async fn obtain(&self, group: &[Wanted], dest: &Path) -> Result<(PathBuf, Placed), StageError> {
        let first = &group[0];
        let refetch = self
            .refetch
            .is_some_and(|r| group.iter().any(|w| r.contains(&w.path)));
        let staged = first.path.under(self.staging);
        // Held because the shared content has a file there: a run that failed after
        // fetching it left exactly these bytes, which serve as they are.
        if dest != staged && !refetch && self.already_there(&staged, first).await {
            return Ok((staged, Placed::Reused));
        }
        let dest = dest.to_path_buf();
        let expected = Expected {
            size: first.size,
            sha256: Some(first.sha256),
        };
        let tmp = self.partial.join(hex::encode(first.sha256));
        // Every distinct source, then each plain path, so a missing by-hash file
        // falls back to the name apt would use without by-hash.
        let mut sources: Vec<&RelPath> = Vec::new();
        for w in group {
            if !sources.contains(&&w.source) {
                sources.push(&w.source);
            }
        }
        for w in group {
            if !sources.contains(&&w.path) {
                sources.push(&w.path);
            }
        }
        self.reporter
            .on_fetch_start(first.path.as_str(), first.size);
        let mut last = None;
        for source in sources {
            let url = join_below(self.base_url, source).map_err(|e| StageError::Url {
                path: source.to_string(),
                source: e,
            })?;
            let reporter = self.reporter;
            let progress = move |n: u64| reporter.on_progress(n);
            // A file staged by an earlier run that did not publish is reused when its
            // bytes still hash right; the download checks, in the step it starts with.
            // A refetch is downloaded whole and then put in place with one rename.
            let install = (!refetch).then_some(dest.as_path());
            let downloaded = self
                .upstream
                .download_into(&url, &tmp, install, expected, &progress)
                .await;
            let downloaded = match downloaded {
                Ok(d) if refetch => self.install(&tmp, &dest).await.map(|()| d),
                other => other.map_err(StageError::from),
            };
            match downloaded {
                Ok(d) if d.already_installed => {
                    self.reporter.on_fetch_done(first.path.as_str());
                    return Ok((dest, Placed::Reused));
                }
                Ok(d) => {
                    self.reporter.on_fetch_done(first.path.as_str());
                    return Ok((
                        dest,
                        Placed::Fetched {
                            received: d.received,
                        },
                    ));
                }
                Err(e) if e.is_not_found() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| StageError::Task("no source to fetch from".into())))
    }

    /// Whether `path` already holds what `w` wants (hashed again).
    async fn already_there(&self, path: &Path, w: &Wanted) -> bool {
        let (path, size, sha256) = (path.to_path_buf(), w.size, w.sha256);
        tokio::task::spawn_blocking(move || file_matches(&path, size, &sha256))
            .await
            .unwrap_or(false)
    }

    /// Moves a verified download into place.
    async fn install(&self, tmp: &Path, dest: &Path) -> Result<(), StageError> {
        let (tmp, dest) = (tmp.to_path_buf(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || snapshot::install_file(&tmp, &dest))
            .await
            .map_err(|e| StageError::Task(e.to_string()))?
            .map_err(StageError::from)
    }
}

/// Hard-links `from` to where `path` goes: nothing to do when staging already
/// reaches that very file (unchanged in the shared content), held aside when it
/// would replace a shared file, else into staging.
fn link_into(
    from: &Path,
    path: &RelPath,
    staging: &Path,
    shared: &crate::shared::Shared,
) -> Result<Placed, StageError> {
    use std::os::unix::fs::MetadataExt;
    let staged = path.under(staging);
    if let (Ok(a), Ok(b)) = (std::fs::metadata(from), std::fs::metadata(&staged))
        && a.dev() == b.dev()
        && a.ino() == b.ino()
    {
        return Ok(Placed::Linked);
    }
    let to = shared.dest(path);
    snapshot::link_file(from, &to)?;
    Ok(Placed::Linked)
}

/// Why a tree path has no URL below the upstream.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Parse(#[from] url::ParseError),
    #[error("the URL would not be below the upstream")]
    Outside,
}

/// The URL of `path` below `base` (its directory, when `base` has no trailing '/'),
/// each path segment percent-encoded. encode_path makes it so; the check makes sure
/// that a request outside the upstream never goes out.
pub fn join_below(base: &Url, path: &RelPath) -> Result<Url, JoinError> {
    let url = base.join(&encode_path(path.as_str()))?;
    let dir = base.join(".")?;
    if url.origin() != dir.origin() || !url.path().starts_with(dir.path()) {
        return Err(JoinError::Outside);
    }
    Ok(url)
}

/// [`join_below`], with the path and the upstream named in the error.
pub fn file_url(base: &Url, path: &RelPath) -> anyhow::Result<Url> {
    use anyhow::Context;
    join_below(base, path)
        .with_context(|| format!("joining {path} to {}", crate::upstream::redact(base)))
}

/// Percent-encodes what a URL path must not carry raw ('%', '#', '?', spaces, ...),
/// keeping '/' as the separator. Debian file names are plain, but '+' and '~' are
/// common and '%' is possible.
///
/// For a checked name ([`RelPath`], or a listing entry `listing` let through) the
/// result is a relative path reference below the URL it is joined to: a ':' after a
/// scheme-like first segment is encoded too (RFC 3986 4.2), or a name such as
/// `http:169.254.169.254/x`, which a listing or an index can hand us, would be joined
/// as a URL of its own, on another host.
pub fn encode_path(p: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    let encoded = percent_encoding::utf8_percent_encode(p, SET).to_string();
    let first = encoded.split('/').next().unwrap_or("");
    match first.split_once(':') {
        Some((scheme, _)) if looks_like_scheme(scheme) => {
            let rest = &encoded[first.len()..];
            format!("{}{rest}", first.replace(':', "%3A"))
        }
        _ => encoded,
    }
}

/// What a URL parser would take for a scheme before a ':' (RFC 3986 3.1): a letter,
/// then letters, digits, '+', '-' or '.'. Only then is the colon encoded, so names
/// such as `2024-01-01T10:00` are requested as the server lists them.
fn looks_like_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names an index or a listing may carry, each joined below both kinds of base.
    #[test]
    fn a_path_always_joins_below_the_upstream() {
        let hostile = [
            "http:169.254.169.254/latest/meta-data",
            "https:evil.example/x",
            "ftp:evil.example",
            "javascript:alert(1)",
            "file:etc/passwd",
            "a:b/c",
        ];
        for base in ["http://mirror.example/debian/", "https://mirror.example/"] {
            let base = Url::parse(base).unwrap();
            for p in hostile {
                let url = file_url(&base, &RelPath::new(p).unwrap()).unwrap();
                assert!(url.as_str().starts_with(base.as_str()), "{p} -> {url}");
                assert_eq!(url.host_str(), Some("mirror.example"), "{p} -> {url}");
            }
        }
    }

    #[test]
    fn ordinary_names_are_left_as_they_were() {
        assert_eq!(
            encode_path("pool/main/a/a_1.0+b~1_all.deb"),
            "pool/main/a/a_1.0+b~1_all.deb"
        );
        // A colon past the first segment cannot start a scheme: left alone.
        assert_eq!(
            encode_path("pool/main/e/epoch_1:2.deb"),
            "pool/main/e/epoch_1:2.deb"
        );
        assert_eq!(encode_path("a b/c#d?e%f"), "a%20b/c%23d%3Fe%25f");
        assert_eq!(encode_path("x:y/z"), "x%3Ay/z");
        assert_eq!(encode_path("x:y"), "x%3Ay");
        // Not a scheme (a digit first): a dated directory is asked for as listed.
        assert_eq!(
            encode_path("2024-01-01T10:00/a.img"),
            "2024-01-01T10:00/a.img"
        );
    }

    #[test]
    fn a_base_without_a_slash_or_with_a_query_resolves_against_its_directory() {
        let p = RelPath::new("dists/x/InRelease").unwrap();
        let bare = Url::parse("http://mirror.example/debian").unwrap();
        assert_eq!(
            file_url(&bare, &p).unwrap().as_str(),
            "http://mirror.example/dists/x/InRelease"
        );
        let query = Url::parse("http://mirror.example/d/?sig=a/b").unwrap();
        assert_eq!(
            file_url(&query, &p).unwrap().as_str(),
            "http://mirror.example/d/dists/x/InRelease"
        );
    }
}
