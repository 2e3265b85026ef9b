//! Staging: the plan carried out into the staging tree, then the files in grace and
//! the metadata the kind writes itself. No file the published tree lists is touched:
//! new shared files go into the shared content (no served index names them), and
//! replacements of shared files are held aside until the publish.

use std::collections::HashSet;
use std::sync::Mutex;

use anyhow::anyhow;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::next::NextManifest;
use super::plan::Plan;
use super::run::{Run, StagingArea};
use super::source::{NewFile, Source, Tally, Unverified};
use crate::failures::{chain, failed};
use crate::fetch::{Placed, file_url};
use crate::manifest::Entry;
use crate::plan::Action;
use crate::relpath::RelPath;
use crate::snapshot;
use crate::upstream::{Expected, Validators};

/// What staging the content is to do.
pub struct Work {
    pub actions: Vec<Action>,
    /// Files no checksum vouches for, fetched by size.
    pub unverified: Vec<Unverified>,
    /// Files fetched from upstream even where a copy with the same checksum is at
    /// hand (upstream changed them under an unchanged checksum file).
    pub recheck: HashSet<RelPath>,
    /// What the kind already fetched.
    pub tally: Tally,
}

/// What staging the content did.
#[derive(Default)]
pub struct Content {
    pub tally: Tally,
    pub fetched: HashSet<RelPath>,
    /// Files fetched by size alone, with what they were fetched as.
    pub unverified: Vec<(RelPath, Entry, Validators)>,
    /// Failures the operator tolerates, with the published entry kept, if any.
    pub tolerated: Vec<(RelPath, Option<Entry>)>,
}

/// Links and fetches the planned content, then the files no checksum vouches for.
/// Fails, naming the first few, if any file that is not tolerated failed.
pub async fn content<S: Source>(
    run: &Run<'_>,
    source: &S,
    area: &StagingArea,
    base: &url::Url,
    work: Work,
) -> anyhow::Result<Content> {
    let Work {
        actions,
        unverified,
        recheck,
        mut tally,
    } = work;
    let mut out = Content::default();
    let mut errors = Vec::new();
    let mut missing = Vec::new();
    let mut failures = Vec::new();
    let keep_paths = source.wants_fetched_paths();
    let phase = std::time::Instant::now();
    run.stager(area, base)
        .refetching(&recheck)
        .run_each(actions, &mut |o| match o.result {
            Ok(Placed::Fetched { received }) => {
                tally.bytes += received;
                tally.files += 1;
                if keep_paths {
                    out.fetched.insert(o.wanted.path);
                }
            }
            Ok(_) => {}
            Err(e) if source.tolerate().is_match(o.wanted.path.as_str()) => {
                failures.push((o.wanted.path, e.to_string()));
            }
            Err(e) => {
                if e.is_not_found() {
                    missing.push(o.wanted.path.clone());
                }
                errors.push(format!("{}: {}", o.wanted.path, chain(&e)));
            }
        })
        .await;
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "content staged");
    for (path, result) in fetch_by_size(run, area, base, unverified).await {
        match result {
            Ok((received, entry, validators)) => {
                tally.bytes += received;
                tally.files += 1;
                if keep_paths {
                    out.fetched.insert(path.clone());
                }
                out.unverified.push((path, entry, validators));
            }
            Err(e) if source.tolerate().is_match(path.as_str()) => {
                failures.push((path, format!("{e:#}")));
            }
            Err(e) => errors.push(format!("{path}: {e:#}")),
        }
    }
    out.tally = tally;
    out.tolerated = tolerated(run, failures)?;
    if !errors.is_empty() {
        let err = failed(&format!("fetching {}", source.content_noun()), errors);
        return Err(match tolerate_hint(&missing) {
            Some(hint) => anyhow!("{err}\n{hint}"),
            None => err,
        });
    }
    Ok(out)
}

/// For files the upstream itself answers 404 for although its signed index lists
/// them: the way out, as the exact line the mirror's section needs.
fn tolerate_hint(missing: &[RelPath]) -> Option<String> {
    const SHOWN: usize = 20;
    if missing.is_empty() {
        return None;
    }
    let globs: Vec<String> = missing
        .iter()
        .take(SHOWN)
        .map(|p| format!("{:?}", globset::escape(p.as_str())))
        .collect();
    let more = if missing.len() > SHOWN {
        format!(" (the first {SHOWN} of {})", missing.len())
    } else {
        String::new()
    };
    Some(format!(
        "the upstream does not have {} file(s) its own index lists (404); to publish the rest \
         without them, add to the mirror's section{more}:\n  tolerate = [{}]",
        missing.len(),
        globs.join(", ")
    ))
}

/// Tolerated failures: the last good copy of each is kept if there is one, and said.
fn tolerated(
    run: &Run<'_>,
    failures: Vec<(RelPath, String)>,
) -> anyhow::Result<Vec<(RelPath, Option<Entry>)>> {
    if failures.is_empty() {
        return Ok(Vec::new());
    }
    let paths: Vec<RelPath> = failures.iter().map(|(p, _)| p.clone()).collect();
    let mut published = run.published_entries(&paths)?;
    let mut out = Vec::with_capacity(failures.len());
    for (path, error) in failures {
        // A suspect's published entry may not match its bytes: left out, not kept.
        let previous = published
            .remove(&path)
            .filter(|_| !run.suspect.contains(&path));
        let kept = if previous.is_some() {
            "the published copy is kept"
        } else {
            "left out"
        };
        let msg = format!("tolerated failure, {kept}: {path}: {error}");
        tracing::warn!("{msg}");
        run.warn(msg);
        out.push((path, previous));
    }
    Ok(out)
}

type BySize = anyhow::Result<(u64, Entry, Validators)>;

/// Downloads files no checksum vouches for, `concurrency` at a time; partial files
/// are named by path and resumed only when If-Range vouches for them.
pub async fn fetch_by_size(
    run: &Run<'_>,
    area: &StagingArea,
    base: &url::Url,
    files: Vec<Unverified>,
) -> Vec<(RelPath, BySize)> {
    let out = Mutex::new(Vec::new());
    let concurrency = run.mirror.network.concurrency.get().max(1);
    futures_util::stream::iter(files)
        .for_each_concurrent(concurrency, |u| {
            let out = &out;
            async move {
                let result = fetch_one_by_size(run, area, base, &u).await;
                out.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((u.path, result));
            }
        })
        .await;
    out.into_inner().unwrap_or_else(|p| p.into_inner())
}

async fn fetch_one_by_size(
    run: &Run<'_>,
    area: &StagingArea,
    base: &url::Url,
    u: &Unverified,
) -> BySize {
    let reporter = run.ctx.reporter;
    let url = file_url(base, &u.path)?;
    let tmp = area.partial.join(format!(
        "u-{}",
        hex::encode(Sha256::digest(u.path.as_str()))
    ));
    reporter.on_fetch_start(u.path.as_str(), u.size);
    let progress = move |n: u64| reporter.on_progress(n);
    let expected = Expected {
        size: u.size,
        sha256: None,
    };
    let d = run
        .upstream
        .download(&url, &tmp, expected, &progress)
        .await?;
    area.shared.prepare(&u.path)?;
    let dest = area.shared.dest(&u.path);
    tokio::task::spawn_blocking(move || snapshot::install_file(&tmp, &dest))
        .await
        .map_err(|e| anyhow!("staging task: {e}"))??;
    reporter.on_fetch_done(u.path.as_str());
    let entry = Entry {
        size: u.size,
        sha256: d.sha256,
        gone_since: None,
    };
    Ok((d.received, entry, d.validators))
}

/// Links each tolerated file's published copy back into staging.
pub fn keep_tolerated(run: &Run<'_>, area: &StagingArea, content: &Content) -> anyhow::Result<()> {
    if let Some(c) = &run.current {
        for (path, previous) in &content.tolerated {
            if previous.is_some() {
                area.shared.prepare(path)?;
            }
            if previous.is_some() && !area.shared.reached_by(&c.dir, path) {
                snapshot::link_file(&path.under(&c.dir), &path.under(&area.staging))?;
            }
        }
    }
    Ok(())
}

/// Links the files kept for grace from the published snapshot into staging.
pub async fn keep_for_grace(run: &Run<'_>, area: &StagingArea, plan: &Plan) -> anyhow::Result<()> {
    let Some(c) = &run.current else {
        return Ok(());
    };
    let (staging, dir) = (area.staging.clone(), c.dir.clone());
    // Those in the shared content stay where they are, with nothing to link.
    let mut kept = Vec::new();
    for (p, e) in &plan.removals.kept {
        area.shared.prepare(p)?;
        if !area.shared.reached_by(&dir, p) {
            kept.push((p.clone(), e.clone()));
        }
    }
    tokio::task::spawn_blocking(move || -> Result<(), snapshot::SnapshotError> {
        for (p, _) in &kept {
            snapshot::link_file(&p.under(&dir), &p.under(&staging))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| anyhow!("linking files in grace: {e}"))??;
    Ok(())
}

/// Writes files the run made or read itself into staging and the manifest.
pub fn write_files(
    area: &StagingArea,
    files: &[NewFile],
    manifest: &mut NextManifest,
) -> anyhow::Result<()> {
    for f in files {
        area.shared.prepare(&f.path)?;
        snapshot::write_file(&area.shared.dest(&f.path), &f.bytes, f.mtime)?;
        manifest.set(
            f.path.clone(),
            Entry {
                size: f.bytes.len() as u64,
                sha256: Sha256::digest(&f.bytes).into(),
                gone_since: None,
            },
        );
    }
    Ok(())
}
