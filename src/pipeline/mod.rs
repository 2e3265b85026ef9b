//! The run of one mirror, written once for every kind of mirror.
//!
//! ```text
//!            kind (apt, images)                 shared run (this module)
//!  ┌──────────────────────────────────┐
//!  │ offer: fetch + verify metadata,  │──Offer──▶ plan (pure) ──▶ guard: mass delete
//!  │ say what the snapshot must hold  │                 │
//!  └──────────────────────────────────┘                 ▼
//!                                             stage: link / fetch / by size
//!                                                       │
//!                                             keep files in grace, write metadata
//!  ┌──────────────────────────────────┐                 │
//!  │ finish: check staged files,      │◀────────────────┘
//!  │ files to write last (traces)     │──▶ publish (one rename) ──▶ prune
//!  └──────────────────────────────────┘                 │
//!  ┌──────────────────────────────────┐                 ▼
//!  │ record: validators, hints        │◀──── state.json
//!  └──────────────────────────────────┘
//! ```
//!
//! Any failure before the rename leaves the served tree untouched; staged, verified
//! files stay for the next run. What a kind needs beyond this (apt's wait for a busy
//! upstream and restart when it moves, images' OS list rewriting) stays in the kind.

mod context;
mod guard;
mod next;
mod plan;
mod run;
mod source;
mod stage;

use anyhow::Context;

pub use context::{MirrorReport, RunContext, RunOutcome, SyncOptions};
pub use next::NextManifest;
pub use run::{Run, StagingArea};
pub use source::{Changes, Content, NewFile, Offer, Source, Staged, Tally, Unverified};
pub use stage::fetch_by_size;

use crate::config::Mirror;
use crate::manifest::Manifest;
use crate::snapshot;

/// Runs one mirror of kind `source`: offer -> plan -> guard -> stage -> grace ->
/// publish -> record.
pub async fn run<S: Source>(
    ctx: &RunContext<'_>,
    mirror: &Mirror,
    mut source: S,
) -> anyhow::Result<MirrorReport> {
    let mut run = Run::load(ctx, mirror)?;
    let changes = match source.offer(&run).await? {
        Offer::Unchanged { upstream_date } => {
            return Ok(MirrorReport {
                snapshot: run.current.as_ref().map(|c| c.id.clone()),
                upstream_date,
                ..run.report(RunOutcome::Unchanged)
            });
        }
        Offer::Changed(changes) => *changes,
    };
    let mut changes = changes;
    let content = std::mem::take(&mut changes.content);
    let mut plan = plan::plan(&run, &source, &changes, content)?;
    ctx.reporter.on_plan(&mirror.name, &plan.summary);
    guard::mass_delete(&run, &source, &plan)?;
    for notice in &changes.notices {
        run.warn(notice.clone());
    }
    if let Some(w) = plan::rewritten_warning(&plan.rewritten) {
        tracing::warn!("{w}");
        run.warn(w);
    }
    let files_unverified = changes.unverified.len() as u64 + changes.kept_unverified;
    if run.dry_run() {
        return Ok(MirrorReport {
            plan: plan.summary,
            grace: plan.removals.grace_ends(ctx.global.grace),
            upstream_date: changes.upstream_date,
            files_unverified,
            ..run.report(RunOutcome::DryRun)
        });
    }
    if changes.publish_only_on_change && nothing_changed(&run, &plan) {
        source.record(&run, None);
        return Ok(MirrorReport {
            snapshot: run.current.as_ref().map(|c| c.id.clone()),
            files_unverified,
            ..run.report(RunOutcome::Unchanged)
        });
    }
    let actions = std::mem::take(&mut plan.actions);
    let published = stage_and_publish(&mut run, &mut source, changes, actions, &mut plan).await?;
    let mut state = std::mem::take(&mut run.state);
    source.record(&run, Some(&mut state));
    state.save(&run.dirs.base).context("recording the run")?;
    Ok(MirrorReport {
        snapshot: Some(published.id),
        plan: plan.summary,
        files_fetched: published.tally.files,
        bytes_fetched: published.tally.bytes,
        files_total: published.totals.files,
        bytes_total: published.totals.bytes,
        files_unverified,
        pruned: published.pruned,
        upstream_date: published.upstream_date,
        grace: plan.removals.grace_ends(ctx.global.grace),
        ..run.report(RunOutcome::Published)
    })
}

/// Nothing fetched and nothing newly gone: the published snapshot is still upstream's
/// tree (files already in grace stay as they were).
fn nothing_changed(run: &Run<'_>, plan: &plan::Plan) -> bool {
    plan.summary.fetch_files == 0
        && plan.removals.newly_gone.is_empty()
        && plan.removals.dropped.is_empty()
        && run.current.is_some()
        && !run.ctx.options.verify_all
}

/// What publishing made.
struct Published {
    id: String,
    tally: Tally,
    totals: next::Totals,
    pruned: Vec<String>,
    upstream_date: Option<String>,
}

/// Stages the content, the files in grace and the metadata, then publishes.
async fn stage_and_publish<S: Source>(
    run: &mut Run<'_>,
    source: &mut S,
    changes: Changes,
    actions: Vec<crate::plan::Action>,
    plan: &mut plan::Plan,
) -> anyhow::Result<Published> {
    let area = run.area()?.clone();
    guard::free_space(&area, plan)?;
    for path in &plan.shared_roots {
        area.shared.prepare(path)?;
    }
    let base = changes
        .base
        .clone()
        .unwrap_or_else(|| run.mirror.upstream.clone());
    let tally = changes.tally;
    let mut recheck = changes.recheck;
    recheck.extend(run.suspect.iter().cloned());
    let work = stage::Work {
        actions,
        unverified: changes.unverified,
        recheck,
        tally,
    };
    let staged = stage::content(run, source, &area, &base, work).await?;
    stage::keep_tolerated(run, &area, &staged)?;
    let mut next = plan
        .next
        .take()
        .ok_or_else(|| anyhow::anyhow!("the plan's manifest was taken twice"))?;
    complete_next(&mut next, changes.staged, &staged);
    stage::keep_for_grace(run, &area, plan).await?;
    stage::write_files(&area, &changes.metadata, &mut next)?;
    let last = finish(run, source, &area, &next, &staged).await?;
    stage::write_files(&area, &last, &mut next)?;
    let (id, totals, pruned) = publish(run, next).await?;
    Ok(Published {
        id,
        tally: staged.tally,
        totals,
        pruned,
        upstream_date: changes.upstream_date,
    })
}

/// Hands the staged tree to the kind for its checks and last files.
async fn finish<S: Source>(
    run: &Run<'_>,
    source: &mut S,
    area: &StagingArea,
    manifest: &NextManifest,
    staged: &stage::Content,
) -> anyhow::Result<Vec<NewFile>> {
    let view = Staged {
        manifest,
        area,
        fetched: &staged.fetched,
        unverified: &staged.unverified,
        tolerated: &staged.tolerated,
        tally: staged.tally,
    };
    source.finish(run, &view).await
}

/// Publishes the staging tree as a new snapshot with one rename, then prunes.
async fn publish(
    run: &Run<'_>,
    next: NextManifest,
) -> anyhow::Result<(String, next::Totals, Vec<String>)> {
    let ctx = run.ctx;
    let id = run.dirs.new_id(ctx.now);
    let phase = std::time::Instant::now();
    let dirs = run.dirs.clone();
    let totals = tokio::task::spawn_blocking({
        let id = id.clone();
        move || publish_staging(&dirs, &id, &next)
    })
    .await
    .map_err(|e| anyhow::anyhow!("publishing: {e}"))??;
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), snapshot = %id, "published");
    // The new snapshot is served: what follows tidies up, and a failure of it is said,
    // not taken for a failed run (the next run tries again).
    let pruned = snapshot::prune(&run.dirs, ctx.global.keep_snapshots.get()).unwrap_or_else(|e| {
        run.warn(format!(
            "pruning old snapshots: {:#}",
            anyhow::Error::from(e)
        ));
        Vec::new()
    });
    if ctx.options.verify_all
        && let Err(e) = sweep_shared(&run.dirs)
    {
        run.warn(format!("{e:#}"));
    }
    let partial = &run.dirs.partial;
    let _ = std::fs::remove_dir_all(partial).and_then(|()| std::fs::create_dir_all(partial));
    Ok((id, totals, pruned))
}

/// With `--verify-all`, which reads the whole tree anyway: clears the shared content
/// of files no kept snapshot lists (left by runs that failed after fetching them).
fn sweep_shared(dirs: &snapshot::MirrorDirs) -> anyhow::Result<()> {
    let kept: Vec<std::path::PathBuf> = dirs
        .snapshot_ids()?
        .iter()
        .map(|id| dirs.manifest_path(id))
        .collect();
    if kept.iter().any(|m| !m.is_file()) {
        return Ok(());
    }
    let swept = crate::shared::sweep_unlisted(&dirs.content, &kept, &dirs.base)
        .context("clearing the shared content")?;
    if swept > 0 {
        tracing::info!(files = swept, "shared files no snapshot lists removed");
    }
    Ok(())
}

/// Drops from staging what `next` does not list, then publishes it as `id` with
/// `next` as its manifest. Returns the number of files.
fn publish_staging(
    dirs: &snapshot::MirrorDirs,
    id: &str,
    next: &NextManifest,
) -> anyhow::Result<next::Totals> {
    let mut staged = snapshot::staged_files(&dirs.staging).context("listing staging")?;
    let held = snapshot::staged_files(&dirs.held).context("listing held files")?;
    staged.extend(held.iter().cloned());
    // One pass writes the manifest and says which of the staged files it lists.
    let manifest = snapshot::new_manifest(dirs, id)?;
    let mut listed = std::collections::HashSet::new();
    let totals = next.write_into(&manifest, &mut |p| {
        if staged.contains(p) {
            listed.insert(p.clone());
        }
    })?;
    snapshot::clean_staging(&dirs.staging, &|p| {
        crate::relpath::RelPath::new(p).is_ok_and(|p| listed.contains(&p))
    })
    .context("cleaning staging")?;
    // Replacements of served shared files go in only now, past every check, just
    // before the switch, their data on disk first.
    snapshot::sync_filesystem(&dirs.staging)?;
    let moved: Vec<_> = held.into_iter().filter(|p| listed.contains(p)).collect();
    crate::shared::apply_held(&dirs.held, &dirs.content, &dirs.replacing, &moved)?;
    if !moved.is_empty() {
        tracing::info!(files = moved.len(), "replaced shared files");
    }
    snapshot::publish_written(dirs, id, manifest)?;
    // Published: what the journal named is what the served manifest says.
    let _ = std::fs::remove_file(&dirs.replacing);
    Ok(totals)
}

/// The next snapshot's manifest beyond the plan's: less what failed and was
/// tolerated (its published entry kept, if any), plus what the kind staged and what
/// was fetched by size.
fn complete_next(next: &mut NextManifest, kind_staged: Manifest, staged: &stage::Content) {
    for (path, previous) in &staged.tolerated {
        match previous {
            Some(e) => next.set(path.clone(), e.clone()),
            None => next.remove(path.clone()),
        }
    }
    for (p, e) in kind_staged.files {
        next.set(p, e);
    }
    for (p, e, _) in &staged.unverified {
        next.set(p.clone(), e.clone());
    }
}
