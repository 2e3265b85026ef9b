//! One mirror's run: what is published, where staging is, and what it said.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::Context;
use url::Url;

use super::context::{MirrorReport, RunContext, RunOutcome};
use crate::config::Mirror;
use crate::fetch::Stager;
use crate::manifest::Manifest;
use crate::shared::{Rule, Shared};
use crate::snapshot::{MirrorDirs, Snapshot};
use crate::state::MirrorState;
use crate::upstream::Upstream;

/// Where a run builds: the mirror's own staging tree, or a scratch one for
/// `--dry-run`, which must write nothing in the mirror.
#[derive(Clone)]
pub struct StagingArea {
    pub staging: PathBuf,
    pub partial: PathBuf,
    /// The content shared by the snapshots (a dry run's scratch tree shares none).
    pub shared: std::sync::Arc<Shared>,
    /// Where a plan's sorted files go: on the mirror's disk, not a tmpfs.
    pub work: PathBuf,
    _scratch: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// The published state of one mirror, loaded once, and the run's client.
pub struct Run<'a> {
    pub ctx: &'a RunContext<'a>,
    pub mirror: &'a Mirror,
    pub dirs: MirrorDirs,
    pub current: Option<Snapshot>,
    pub state: MirrorState,
    pub upstream: Upstream,
    /// Shared files a run that died while publishing may have replaced: fetched
    /// again, not trusted to be what the published manifest says.
    pub suspect: std::collections::HashSet<crate::relpath::RelPath>,
    empty: Manifest,
    area: OnceLock<StagingArea>,
    warnings: Mutex<Vec<String>>,
}

impl<'a> Run<'a> {
    /// Loads the published snapshot and state.json.
    pub fn load(ctx: &'a RunContext<'a>, mirror: &'a Mirror) -> anyhow::Result<Run<'a>> {
        let dirs = MirrorDirs::new(&ctx.global.root, &mirror.name);
        Ok(Run {
            current: dirs.current_held(Rule::for_kind(&mirror.kind))?,
            state: MirrorState::load(&dirs.base)?,
            suspect: crate::shared::suspects(&dirs.replacing),
            upstream: Upstream::new(&mirror.network)?.with_auth(mirror.auth.clone()),
            dirs,
            ctx,
            mirror,
            empty: Manifest::default(),
            area: OnceLock::new(),
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// The published entries of `paths`, those held in memory and the rest in one
    /// pass over the manifest on disk.
    pub fn published_entries(
        &self,
        paths: &[crate::relpath::RelPath],
    ) -> anyhow::Result<std::collections::HashMap<crate::relpath::RelPath, crate::manifest::Entry>>
    {
        let mut out = std::collections::HashMap::new();
        let Some(c) = &self.current else {
            return Ok(out);
        };
        let mut rest = std::collections::HashSet::new();
        for p in paths {
            match c.manifest.files.get(p) {
                Some(e) => {
                    out.insert(p.clone(), e.clone());
                }
                None => {
                    rest.insert(p.clone());
                }
            }
        }
        if !rest.is_empty() {
            for item in crate::manifest::Reader::open(&c.manifest_path)? {
                let (p, e) = item?;
                if rest.contains(&p) {
                    out.insert(p, e);
                }
            }
        }
        Ok(out)
    }

    /// The published manifest's files held in memory (empty before the first
    /// publish): all of them, or for apt all but the pool (see
    /// [`crate::shared::Rule::streams`]).
    pub fn published(&self) -> &Manifest {
        self.current.as_ref().map_or(&self.empty, |c| &c.manifest)
    }

    pub fn dry_run(&self) -> bool {
        self.ctx.options.dry_run
    }

    /// Tells the operator now (progress display) and in the report.
    pub fn warn(&self, message: String) {
        self.ctx.reporter.on_warning(&self.mirror.name, &message);
        self.note(message);
    }

    /// Into the report only (already shown, or said in the log).
    pub fn note(&self, message: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    /// The staging area, made on first use.
    pub fn area(&self) -> anyhow::Result<&StagingArea> {
        if let Some(a) = self.area.get() {
            return Ok(a);
        }
        let area = if self.dry_run() {
            let scratch = tempfile::Builder::new()
                .prefix("mirrorsync-dry-run-")
                .tempdir()
                .context("creating a scratch directory for --dry-run")?;
            let at = scratch.path();
            StagingArea {
                staging: at.join("staging"),
                partial: at.join("partial"),
                shared: std::sync::Arc::new(Shared::new(
                    Rule::Nothing,
                    &at.join("content"),
                    &at.join("staging"),
                    &at.join("held"),
                )),
                work: scratch.path().to_path_buf(),
                _scratch: Some(std::sync::Arc::new(scratch)),
            }
        } else {
            self.dirs.create()?;
            StagingArea {
                staging: self.dirs.staging.clone(),
                partial: self.dirs.partial.clone(),
                shared: std::sync::Arc::new(Shared::new(
                    Rule::for_kind(&self.mirror.kind),
                    &self.dirs.content,
                    &self.dirs.staging,
                    &self.dirs.held,
                )),
                work: self.dirs.base.clone(),
                _scratch: None,
            }
        };
        std::fs::create_dir_all(&area.partial)
            .with_context(|| format!("creating {}", area.partial.display()))?;
        Ok(self.area.get_or_init(|| area))
    }

    /// A stager into `area`, fetching from `base`.
    pub fn stager<'s>(&'s self, area: &'s StagingArea, base: &'s Url) -> Stager<'s> {
        Stager {
            upstream: &self.upstream,
            base_url: base,
            staging: &area.staging,
            partial: &area.partial,
            shared: area.shared.clone(),
            published: self.current.as_ref().map(|c| c.dir.as_path()),
            concurrency: self.mirror.network.concurrency.get(),
            reporter: self.ctx.reporter,
            verify_links: self.ctx.options.verify_all,
            refetch: None,
        }
    }

    /// A report of this run so far (`seconds` is the caller's: it counts every
    /// attempt of the kind).
    pub fn report(&self, outcome: RunOutcome) -> MirrorReport {
        MirrorReport {
            name: self.mirror.name.clone(),
            outcome,
            requests: self.upstream.requests(),
            warnings: self
                .warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            ..MirrorReport::default()
        }
    }
}
