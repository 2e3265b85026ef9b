//! A sync run: take the lock, run each mirror, record what happened.
//!
//! One failed mirror does not stop the others; each result is recorded in its
//! `state.json` and handed back for the exit code. One mirror's run is the shared
//! [`crate::pipeline`] with its kind (`apt::sync`, `images::sync`).

use std::time::Instant;

use anyhow::Context;

use crate::config::{Config, Mirror, MirrorKind};
use crate::lock::{LockError, RunLock};
use crate::report::Reporter;
use crate::snapshot::MirrorDirs;
use crate::state::{MirrorState, RunRecord};
use crate::trace::Trigger;

pub use crate::pipeline::{MirrorReport, RunContext, RunOutcome, SyncOptions};

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
            Err(LockError::Held { .. }) if options.trigger == Trigger::Push => {
                // ftpsync-style push mirroring: the upstream says "new content now";
                // the running sync may have started before it, so it must go again.
                let names: Vec<String> = selected.iter().map(|m| m.name.clone()).collect();
                // A queue that cannot be written loses the push: a failure, not "held".
                queue_rerun(&config.global.root, &names).map_err(|source| LockError::Io {
                    path: queue_path(&config.global.root),
                    source,
                })?;
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
        if let Err(e) = crate::page::write(config) {
            tracing::warn!(error = %e, "could not write the status page");
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
        if let Ok(report) = &result {
            log_outcome(report);
        }
        results.push(MirrorResult {
            name: mirror.name.clone(),
            result,
        });
    }
}

/// One info line per mirror and run, so the journal holds the mirror's history
/// (the mirror's span names it; a failure is the caller's to report, as an error).
fn log_outcome(r: &MirrorReport) {
    let snapshot = r.snapshot.as_deref().unwrap_or("-");
    match r.outcome {
        RunOutcome::Published => tracing::info!(
            snapshot,
            files_fetched = r.files_fetched,
            bytes_fetched = r.bytes_fetched,
            files_total = r.files_total,
            seconds = r.seconds,
            "published snapshot {snapshot}: fetched {} file(s), {} byte(s); serving {} file(s)",
            r.files_fetched,
            r.bytes_fetched,
            r.files_total
        ),
        RunOutcome::Unchanged => tracing::info!(
            snapshot,
            seconds = r.seconds,
            "upstream unchanged; still serving snapshot {snapshot}"
        ),
        RunOutcome::DryRun => tracing::info!(
            fetch_files = r.plan.fetch_files,
            fetch_bytes = r.plan.fetch_bytes,
            "dry run: would fetch {} file(s), {} byte(s)",
            r.plan.fetch_files,
            r.plan.fetch_bytes
        ),
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
    let clock = Instant::now();
    let mut report = match &mirror.kind {
        MirrorKind::Apt(apt) => crate::apt::sync::sync_apt(ctx, mirror, apt).await?,
        MirrorKind::Images(images) => crate::images::sync::sync_images(ctx, mirror, images).await?,
    };
    // Every attempt of the kind counts (apt waits for a busy upstream).
    report.seconds = clock.elapsed().as_secs_f64();
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
            (rec.files_total, rec.bytes_total) = match (r.outcome, &state.last_success) {
                (RunOutcome::Published, _) => (r.files_total, r.bytes_total),
                (_, Some(last)) => (last.files_total, last.bytes_total),
                (_, None) => (0, 0),
            };
            state.last_success = Some(rec.clone());
        }
        Err(e) => {
            rec.result = "failed".into();
            rec.error = Some(format!("{e:#}"));
        }
    }
    if let Err(e) = crate::history::append(&dirs.base, &rec) {
        tracing::warn!(error = %e, "could not record the run in history.jsonl");
    }
    state.last_run = Some(rec);
    if let Err(e) = state.save(&dirs.base) {
        tracing::warn!(error = %e, "could not record the run in state.json");
    }
}
