//! A sync run: take the lock, run each mirror, record what happened.
//!
//! One failed mirror does not stop the others; each result is recorded in its
//! `state.json` and handed back for the exit code. The per-kind work lives in
//! `apt::sync` (and `images` for image trees).

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::config::{Config, Global, Mirror, MirrorKind};
use crate::lock::{LockError, RunLock};
use crate::plan::PlanSummary;
use crate::report::Reporter;
use crate::snapshot::MirrorDirs;
use crate::state::{MirrorState, RunRecord};
use crate::trace::Trigger;

/// How a run was asked to behave.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub verify_all: bool,
    pub allow_mass_delete: bool,
    pub trigger: Trigger,
}

/// Shared by the mirrors of one run.
pub struct RunContext<'a> {
    pub global: &'a Global,
    pub options: &'a SyncOptions,
    pub reporter: &'a dyn Reporter,
    /// The run's start, used for snapshot ids, grace and expiry checks.
    pub now: jiff::Timestamp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Upstream unchanged; nothing fetched or published.
    #[default]
    Unchanged,
    Published,
    DryRun,
}

/// What one mirror's run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorReport {
    pub name: String,
    pub outcome: RunOutcome,
    pub snapshot: Option<String>,
    pub plan: PlanSummary,
    pub files_fetched: u64,
    pub bytes_fetched: u64,
    pub files_total: u64,
    /// Image-tree files no checksum vouches for (compared by size and ETag/date).
    pub files_unverified: u64,
    pub requests: u64,
    pub seconds: f64,
    pub warnings: Vec<String>,
    pub pruned: Vec<String>,
    /// Newest upstream Release Date, RFC 3339.
    pub upstream_date: Option<String>,
    /// Files kept for grace, with the Unix time they go.
    pub grace: Vec<(String, i64)>,
    /// What publishing to the mirror's bucket did; None without `publish`, or when
    /// the bucket already held the snapshot.
    pub bucket: Option<crate::s3::BucketReport>,
}

/// The result of one mirror in a run.
pub struct MirrorResult {
    pub name: String,
    pub result: anyhow::Result<MirrorReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Locked(#[from] LockError),
    /// A push trigger arrived during another run; that run will sync again.
    #[error("another run is in progress; it will sync {} again when it ends", .0.join(", "))]
    Queued(Vec<String>),
    #[error("no mirror named {0:?} in the config")]
    UnknownMirror(String),
}

/// Syncs the named mirrors (all when `names` is empty).
pub async fn run(
    config: &Config,
    names: &[String],
    options: &SyncOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<MirrorResult>, RunError> {
    let selected = select(config, names)?;
    // --dry-run writes nothing, not even the lock file.
    let _lock = if options.dry_run {
        None
    } else {
        match RunLock::acquire(&config.global.root) {
            Ok(lock) => Some(lock),
            Err(e @ LockError::Held { .. }) if options.trigger == Trigger::Push => {
                // ftpsync-style push mirroring: the upstream says "new content now";
                // the running sync may have started before it, so it must go again.
                let names: Vec<String> = selected.iter().map(|m| m.name.clone()).collect();
                queue_rerun(&config.global.root, &names).map_err(|_| e)?;
                return Err(RunError::Queued(names));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut results = Vec::new();
    let mut batch = selected;
    loop {
        let ctx = RunContext {
            global: &config.global,
            options,
            reporter,
            now: jiff::Timestamp::now(),
        };
        run_batch(&ctx, &batch, &mut results).await;
        if options.dry_run {
            break;
        }
        // Push triggers that arrived while we ran: once more for those mirrors.
        let queued = take_queued(&config.global.root);
        if queued.is_empty() {
            break;
        }
        batch = config
            .mirrors
            .iter()
            .filter(|m| queued.contains(&m.name))
            .collect();
        if batch.is_empty() {
            break;
        }
        tracing::info!(mirrors = ?queued, "push trigger arrived during the run; syncing again");
    }
    if !options.dry_run {
        let all: Vec<&Mirror> = config.mirrors.iter().collect();
        if let Err(e) = crate::metrics::write(&config.global.root, &all) {
            tracing::warn!(error = %e, "could not write metrics.prom");
        }
    }
    Ok(results)
}

/// The file push triggers leave for the run holding the lock.
fn queue_path(root: &std::path::Path) -> std::path::PathBuf {
    root.join(".mirrorsync").join("push-queue")
}

fn queue_rerun(root: &std::path::Path, names: &[String]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::options()
        .create(true)
        .append(true)
        .open(queue_path(root))?;
    for n in names {
        writeln!(f, "{n}")?;
    }
    f.sync_all()
}

/// Reads and clears the queued reruns (called with the lock held).
fn take_queued(root: &std::path::Path) -> Vec<String> {
    let path = queue_path(root);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(&path);
    let mut names: Vec<String> = text.lines().map(str::to_string).collect();
    names.sort();
    names.dedup();
    names
}

async fn run_batch(ctx: &RunContext<'_>, selected: &[&Mirror], results: &mut Vec<MirrorResult>) {
    let (options, reporter) = (ctx.options, ctx.reporter);
    for mirror in selected.iter().copied() {
        let span = tracing::info_span!("mirror", name = %mirror.name);
        let _enter = span.enter();
        reporter.on_mirror_start(&mirror.name);
        let started = jiff::Timestamp::now();
        let clock = Instant::now();
        let result = sync_mirror(ctx, mirror).await.with_context(|| {
            format!(
                "mirror {:?} ({})",
                mirror.name,
                crate::upstream::redact(&mirror.upstream)
            )
        });
        if !options.dry_run {
            record(ctx, mirror, started, clock, &result);
        }
        results.push(MirrorResult {
            name: mirror.name.clone(),
            result,
        });
    }
}

pub fn select<'c>(config: &'c Config, names: &[String]) -> Result<Vec<&'c Mirror>, RunError> {
    if names.is_empty() {
        return Ok(config.mirrors.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            config
                .mirrors
                .iter()
                .find(|m| &m.name == n)
                .ok_or_else(|| RunError::UnknownMirror(n.clone()))
        })
        .collect()
}

async fn sync_mirror(ctx: &RunContext<'_>, mirror: &Mirror) -> anyhow::Result<MirrorReport> {
    let mut report = match &mirror.kind {
        MirrorKind::Apt(apt) => crate::apt::sync::sync_apt(ctx, mirror, apt).await?,
        MirrorKind::Images(images) => crate::images::sync::sync_images(ctx, mirror, images).await?,
    };
    // Also when upstream was unchanged: a bucket left behind by a failed publish
    // catches up on the next run.
    if let Some(target) = &mirror.publish
        && !ctx.options.dry_run
    {
        report.bucket = crate::s3::publish_mirror(
            &ctx.global.root,
            mirror,
            target,
            ctx.options.verify_all,
            &[],
        )
        .await?;
    }
    Ok(report)
}

/// Writes the run into state.json. A failure to record is logged, not fatal: the
/// mirror itself is already published or untouched.
fn record(
    ctx: &RunContext<'_>,
    mirror: &Mirror,
    started: jiff::Timestamp,
    clock: Instant,
    result: &anyhow::Result<MirrorReport>,
) {
    let dirs = MirrorDirs::new(&ctx.global.root, &mirror.name);
    if std::fs::create_dir_all(&dirs.base).is_err() {
        return;
    }
    let mut state = match MirrorState::load(&dirs.base) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "state.json unreadable; starting it afresh");
            MirrorState::default()
        }
    };
    let mut rec = RunRecord {
        started: started.to_string(),
        finished: jiff::Timestamp::now().to_string(),
        seconds: clock.elapsed().as_secs_f64(),
        trigger: ctx.options.trigger.as_str().to_string(),
        ..RunRecord::default()
    };
    match result {
        Ok(r) => {
            rec.result = match r.outcome {
                RunOutcome::Published => "published",
                RunOutcome::Unchanged => "unchanged",
                RunOutcome::DryRun => "dry-run",
            }
            .into();
            rec.snapshot = r.snapshot.clone();
            rec.files_fetched = r.files_fetched;
            rec.bytes_fetched = r.bytes_fetched;
            rec.files_linked = r.plan.link_files;
            rec.files_deleted = r.plan.delete_files;
            rec.files_in_grace = r.plan.grace_files;
            rec.requests = r.requests;
            rec.upstream_date = r.upstream_date.clone();
            state.last_success = Some(rec.clone());
        }
        Err(e) => {
            rec.result = "failed".into();
            rec.error = Some(format!("{e:#}"));
        }
    }
    state.last_run = Some(rec);
    if let Err(e) = state.save(&dirs.base) {
        tracing::warn!(error = %e, "could not record the run in state.json");
    }
}

/// One error for many failed files, the first few named.
pub(crate) fn failed(what: &str, errors: Vec<String>) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} failed{}", errors.len(), first_failures(&errors))
}

/// The first few of many failures, one per indented line, and how many more.
pub(crate) fn first_failures(errors: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut out = String::new();
    for e in errors.iter().take(SHOWN) {
        out.push_str("\n  ");
        out.push_str(e);
    }
    if errors.len() > SHOWN {
        out.push_str(&format!("\n  ... and {} more", errors.len() - SHOWN));
    }
    out
}

/// An error with its causes, "a: b: c", for messages that list many failures (the
/// cause is often the part that helps: "No space left on device").
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Transparent wrappers repeat their source's message.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
