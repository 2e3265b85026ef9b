//! The image-tree kind of mirror, as the shared run sees it: listings -> OS lists
//! and checksum files -> a decision per file; detached signatures are checked over
//! the staged tree, and the hints and validators recorded for the next run.

use std::collections::BTreeMap;
use std::sync::Arc;

use globset::GlobSet;
use url::Url;

use super::base::crawl_root;
use super::crawl::Scope;
use super::decide::{self, Decisions};
use super::meta::{MetaFile, MetaReader, save_upstream_copies, upstream_copies};
use super::records::{Record, Records};
use super::signatures::check_signatures;
use super::vouch::{self, Tree};
use crate::apt::signature::Keyring;
use crate::config::ImagesMirror;
use crate::manifest::Entry;
use crate::pipeline::{Changes, Content, NewFile, Offer, Run, Source, Staged, Unverified};
use crate::relpath::RelPath;
use crate::state::MirrorState;
use crate::upstream::redact;

pub(super) struct ImagesSource<'a> {
    images: &'a ImagesMirror,
    keyring: Option<Arc<Keyring>>,
    /// Small files read this run (OS lists, checksum files, signatures).
    meta: BTreeMap<RelPath, MetaFile>,
    os_list_paths: Vec<RelPath>,
    records: BTreeMap<String, Record>,
}

impl<'a> ImagesSource<'a> {
    pub fn new(images: &'a ImagesMirror) -> anyhow::Result<ImagesSource<'a>> {
        let keyring = match &images.keyring {
            Some(p) => Some(Arc::new(
                Keyring::from_file(p)?.with_policy(images.signature_policy.clone()),
            )),
            None => None,
        };
        Ok(ImagesSource {
            images,
            keyring,
            meta: BTreeMap::new(),
            os_list_paths: Vec::new(),
            records: BTreeMap::new(),
        })
    }

    /// Crawls the listings (only where the include patterns can match), from where
    /// the root really is.
    async fn crawl(&self, run: &Run<'_>) -> anyhow::Result<(Tree, Url)> {
        let images = self.images;
        let scope = Scope {
            include: &images.include,
            include_set: &images.include_set,
            exclude_set: &images.exclude_set,
        };
        let phase = std::time::Instant::now();
        let concurrency = run.mirror.network.concurrency.get();
        let configured = &run.mirror.upstream;
        let (crawled, base) =
            crawl_root(&run.upstream, configured, &scope, images, concurrency).await?;
        if &base != configured {
            run.warn(format!(
                "upstream {} redirects to {}: mirrored from there; name it as upstream in the config",
                redact(configured),
                redact(&base)
            ));
        }
        tracing::info!(
            seconds = phase.elapsed().as_secs_f64(),
            listings = crawled.listings,
            files = crawled.files.len(),
            "crawled"
        );
        for w in crawled.warnings {
            run.warn(w);
        }
        let tree = Tree {
            found: crawled
                .files
                .into_iter()
                .map(|f| (f.path.clone(), f))
                .collect(),
            // Names OS-list URLs may use for this tree: where it is, where the config
            // says it is, and the other names the operator declared.
            bases: [base.clone(), configured.clone()]
                .into_iter()
                .chain(images.aliases.iter().cloned())
                .collect(),
            ..Tree::default()
        };
        Ok((tree, base))
    }

    /// Everything that vouches for the tree's files, read.
    async fn read_tree(
        &self,
        run: &Run<'_>,
        tree: &mut Tree,
        base: &Url,
        records: &Records,
    ) -> anyhow::Result<()> {
        let verify_all = run.ctx.options.verify_all;
        let reader = MetaReader {
            upstream: &run.upstream,
            base,
            current: run.current.as_ref().map(|c| (c.dir.as_path(), &c.manifest)),
            records,
            verify_all,
            copies: upstream_copies(&run.dirs),
        };
        vouch::read_os_lists(&reader, tree, self.images).await?;
        vouch::keep_latest(tree, self.images);
        let optional = vouch::sidecars(tree, records, verify_all);
        let concurrency = run.mirror.network.concurrency.get();
        let signatures = self.keyring.is_some();
        vouch::read_small_files(&reader, tree, &optional, signatures, concurrency).await?;
        vouch::apply_list_sizes(tree)
    }
}

impl Source for ImagesSource<'_> {
    async fn offer(&mut self, run: &Run<'_>) -> anyhow::Result<Offer> {
        let records = Records::load(&run.dirs.base);
        let (mut tree, base) = self.crawl(run).await?;
        self.read_tree(run, &mut tree, &base, &records).await?;
        let decisions = decide::decide(run, &mut tree, &records, self.images, &base).await?;
        let Decisions {
            wanted,
            unverified,
            kept_unverified,
            recheck,
            records: new_records,
        } = decisions;
        self.records = new_records;
        self.os_list_paths = tree.os_lists.iter().map(|(p, _)| p.clone()).collect();
        self.meta = std::mem::take(&mut tree.meta);
        let mut changes = Changes {
            base: Some(base),
            content: Content::Map(
                wanted
                    .iter()
                    .map(|w| (w.path.clone(), Entry::from(w)))
                    .collect(),
            ),
            kept_unverified,
            recheck,
            publish_only_on_change: true,
            ..Changes::default()
        };
        // Small files read this run go in after the content (OS lists rewritten).
        for (path, m) in self.meta.iter().filter(|(_, m)| m.fetched) {
            changes.summary.fetch_files += 1;
            changes.summary.fetch_bytes += m.publish.len() as u64;
            changes.tally.files += 1;
            changes.tally.bytes += m.bytes.len() as u64;
            changes.metadata.push(NewFile {
                path: path.clone(),
                bytes: m.publish.clone(),
                mtime: m.mtime,
            });
        }
        if !unverified.is_empty() {
            changes.notices.push(unverified_warning(&unverified));
        }
        changes.unverified = unverified;
        Ok(Offer::Changed(Box::new(changes)))
    }

    /// Detached signatures over what changed; the validators of what was fetched by
    /// size alone go into the records, tolerated failures out of them.
    async fn finish(&mut self, run: &Run<'_>, staged: &Staged<'_>) -> anyhow::Result<Vec<NewFile>> {
        for (path, _, v) in staged.unverified {
            if let Some(r) = self.records.get_mut(path.as_str()) {
                r.etag = v.etag.clone();
                r.last_modified = v.last_modified.clone();
            }
        }
        for (path, _) in staged.tolerated {
            self.records.remove(path.as_str());
        }
        if let Some(keyring) = &self.keyring {
            // What changed this run: fetched into staging, or small files read.
            let meta = &self.meta;
            let fetched =
                |p: &RelPath| staged.fetched.contains(p) || meta.get(p).is_some_and(|m| m.fetched);
            let verify_all = run.ctx.options.verify_all;
            // An image tree is small: its manifest is looked at whole.
            let manifest = staged.manifest.to_manifest()?;
            check_signatures(
                keyring,
                meta,
                &manifest,
                &fetched,
                &|p: &RelPath| staged.area.shared.read_path(p),
                verify_all,
            )
            .await?;
        }
        Ok(Vec::new())
    }

    /// The listing hints and validators, and upstream's own OS lists for the next
    /// run's conditional requests; also when nothing was published.
    fn record(&mut self, run: &Run<'_>, state: Option<&mut MirrorState>) {
        let files = std::mem::take(&mut self.records);
        if let Err(e) = (Records { files }).save(&run.dirs.base) {
            tracing::warn!(error = %e, "could not record the listing hints; next run checks every file again");
        }
        save_upstream_copies(&run.dirs, &self.meta, &self.os_list_paths);
        if let Some(state) = state {
            state.config_fingerprint = None;
        }
    }

    fn tolerate(&self) -> &GlobSet {
        &self.images.tolerate
    }

    fn content_noun(&self) -> &'static str {
        "images"
    }

    /// A dated release directory's files never change once published (a new
    /// release is a new directory).
    fn fixed_content(&self, p: &RelPath) -> bool {
        crate::shared::Rule::Images.root_of(p.as_str()).is_some()
    }

    fn wants_fetched_paths(&self) -> bool {
        self.keyring.is_some()
    }
}

/// Names the files fetched with no checksum anywhere (the first few of them).
fn unverified_warning(files: &[Unverified]) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<&str> = files.iter().take(SHOWN).map(|u| u.path.as_str()).collect();
    let more = files.len().saturating_sub(SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    names.sort_unstable();
    format!(
        "{} file(s) with no checksum upstream, fetched and checked by size only (unverified): {}{more}",
        files.len(),
        names.join(", ")
    )
}
