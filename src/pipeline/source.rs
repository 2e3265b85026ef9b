//! The seam between the shared run and a kind of mirror (apt, images).
//!
//! A kind says what upstream offers, verified ([`Source::offer`]); the run plans,
//! guards, stages and publishes it; the kind then adds what must go in last
//! ([`Source::finish`]) and records what its next run needs ([`Source::record`]).

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use bytes::Bytes;
use globset::GlobSet;
use url::Url;

use super::run::Run;
use crate::manifest::{Entry, Manifest};
use crate::plan::PlanSummary;
use crate::relpath::RelPath;
use crate::state::MirrorState;
use crate::upstream::Validators;

/// What upstream offers this run.
pub enum Offer {
    /// Nothing to do: upstream's signed metadata is what is published.
    Unchanged {
        upstream_date: Option<String>,
    },
    Changed(Box<Changes>),
}

/// The next snapshot, as a kind describes it.
#[derive(Default)]
pub struct Changes {
    /// Where files are fetched from (an image tree's root may have redirected).
    pub base: Option<Url>,
    /// Files verified by their SHA256: linked from the published snapshot when it has
    /// the content, else fetched.
    pub content: Content,
    /// Files the kind already staged (apt's indices, read to plan the pool).
    pub staged: Manifest,
    /// Files no checksum vouches for: fetched by size and counted as unverified.
    pub unverified: Vec<Unverified>,
    /// Unverified files the pipeline does not fetch: kept because upstream shows them
    /// unchanged, or fetched by the kind itself (an unsigned repository's indices).
    pub kept_unverified: u64,
    /// Content fetched again although the published copy matches (upstream changed
    /// the file while its checksum did not: the new bytes must be checked).
    pub recheck: HashSet<RelPath>,
    /// Written into staging after the content: signed metadata, OS lists.
    pub metadata: Vec<NewFile>,
    /// Paths the next snapshot holds that the kind writes in [`Source::finish`].
    pub written_last: Vec<RelPath>,
    /// What the kind already planned (its indices) and will fetch (its metadata).
    pub summary: PlanSummary,
    /// Bytes and files the kind already fetched.
    pub tally: Tally,
    pub upstream_date: Option<String>,
    /// Warnings about what staging will do, said once the plan has passed the guards
    /// (a refused plan fetches nothing).
    pub notices: Vec<String>,
    /// Publish only if a file is fetched or removed (an image tree has no signed
    /// file that says "changed"); apt publishes whenever its Release changed.
    pub publish_only_on_change: bool,
}

/// A kind's content: a map for a tree of a few thousand files, or sorted on disk
/// for an archive (apt's pool), so the plan joins it with the published manifest in
/// memory that does not grow with either.
pub enum Content {
    Map(HashMap<RelPath, Entry>),
    Sorted(crate::merge::Sorted),
}

impl Default for Content {
    fn default() -> Content {
        Content::Map(HashMap::new())
    }
}

impl Content {
    /// The files in path order, each once.
    pub fn into_sorted(
        self,
    ) -> Box<dyn Iterator<Item = Result<(RelPath, Entry), crate::merge::MergeError>> + Send> {
        match self {
            Content::Map(map) => {
                let mut v: Vec<(RelPath, Entry)> = map.into_iter().collect();
                v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                Box::new(v.into_iter().map(Ok))
            }
            Content::Sorted(s) => Box::new(s),
        }
    }
}

/// A file fetched by size alone.
pub struct Unverified {
    pub path: RelPath,
    pub size: u64,
}

/// A small file the run writes itself.
pub struct NewFile {
    pub path: RelPath,
    pub bytes: Bytes,
    pub mtime: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub files: u64,
    pub bytes: u64,
}

/// What staging did, for the kind's last checks and records.
pub struct Staged<'a> {
    /// The next snapshot's manifest so far (all but the files written last).
    pub manifest: &'a super::next::NextManifest,
    /// Where the run placed each file (staging, or held: see [`crate::shared::Shared::dest`]).
    pub area: &'a super::run::StagingArea,
    /// Paths fetched this run (collected only for kinds that ask, see
    /// [`Source::wants_fetched_paths`]).
    pub fetched: &'a HashSet<RelPath>,
    /// The files fetched by size alone, with their validators.
    pub unverified: &'a [(RelPath, Entry, Validators)],
    /// Paths whose failure was tolerated, with the published entry kept, if any.
    pub tolerated: &'a [(RelPath, Option<Entry>)],
    pub tally: Tally,
}

/// A kind of mirror, as the shared run sees it.
#[allow(async_fn_in_trait)] // used with concrete kinds only; their futures stay Send
pub trait Source {
    /// Fetches and verifies what upstream offers.
    async fn offer(&mut self, run: &Run<'_>) -> anyhow::Result<Offer>;

    /// Checks over the staged tree and the files to write last (trace files); called
    /// after the content and [`Changes::metadata`] are staged.
    async fn finish(&mut self, run: &Run<'_>, staged: &Staged<'_>) -> anyhow::Result<Vec<NewFile>>;

    /// Records what the next run needs. `state` is None when nothing was published.
    fn record(&mut self, run: &Run<'_>, state: Option<&mut MirrorState>);

    /// Files whose failure to stage does not fail the run.
    fn tolerate(&self) -> &GlobSet;

    /// What the content is called in a failure: "fetching pool files: 3 failed".
    fn content_noun(&self) -> &'static str;

    /// Whether a removal counts for the mass-deletion guard.
    fn counts_for_guard(&self, _path: &RelPath) -> bool {
        true
    }

    /// Files whose content never changes under their name (apt pool files, by-hash
    /// objects): new content under such a name is upstream rewriting history.
    fn fixed_content(&self, _path: &RelPath) -> bool {
        false
    }

    /// Files never kept for grace once upstream drops them.
    fn never_in_grace(&self, _path: &RelPath) -> bool {
        false
    }

    fn wants_fetched_paths(&self) -> bool {
        false
    }
}
