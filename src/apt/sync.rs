//! One run of one apt mirror: signed Release files -> indices -> pool -> publish.
//!
//! 1. Each suite's InRelease (else Release + Release.gpg) is fetched, conditionally
//!    when the config is unchanged, and verified; an expired or rolled-back Release is
//!    refused. If every suite is unchanged the run ends there: one request per suite.
//! 2. The indices the config wants are planned against the published snapshot and
//!    staged; by-hash twins are staged with them.
//! 3. Packages and Sources are streamed into the pool plan, which is staged the same way.
//! 4. Removed files stay for `grace`; the mass-deletion guard refuses a wipe-out.
//! 5. The Release files go in last and the snapshot is published with one rename.
//!
//! Any failure before the rename leaves the served tree untouched; staged, verified
//! files stay for the next run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use url::Url;

use super::packages::{self, Compression, IndexKind};
use super::release::{self, Release};
use super::signature::{self, Keyring};
use crate::config::{AptMirror, Mirror};
use crate::fetch::{Placed, StageError, Stager, encode_path};
use crate::manifest::{Entry, Manifest};
use crate::plan::{self, Action, PlanSummary, Wanted, WantedSet};
use crate::relpath::RelPath;
use crate::snapshot::{self, MirrorDirs, Snapshot};
use crate::state::MirrorState;
use crate::sync::{MirrorReport, RunContext, RunOutcome};
use crate::trace;
use crate::trace::TraceInput;
use crate::upstream::{FetchError, Meta, Upstream, Validators, redact};

/// Large enough for any real Release (Debian's main suite is ~200 KB, ~2,000 files),
/// small enough that a hostile upstream cannot fill a Raspberry Pi's memory with one:
/// a Release is held, verified and parsed in memory (a 10^6-entry one, 109 MB, would
/// take ~500 MB).
const MAX_RELEASE_BYTES: u64 = 16 << 20;

/// The upstream published a new Release while we fetched its indices.
#[derive(Debug, thiserror::Error)]
#[error("upstream {url} changed while this run was fetching its indices")]
struct UpstreamMoved {
    url: String,
}

/// The upstream is itself mid-update (ftpsync's Archive-Update-in-Progress marker).
#[derive(Debug, thiserror::Error)]
#[error("upstream is in the middle of an update ({marker} is present)")]
struct UpstreamBusy {
    marker: String,
}

/// Polls for the end of an upstream update at most this far apart.
const MAX_BUSY_POLL: Duration = Duration::from_secs(60);

/// A suite's signed metadata, as it goes into the next snapshot.
struct Suite {
    name: String,
    release: Release,
    /// Files fetched in this run, written into staging last.
    new_files: Vec<(RelPath, Bytes, Option<SystemTime>)>,
    /// Files carried over from the published snapshot (suite unchanged).
    kept_files: Vec<Wanted>,
    unchanged: bool,
    /// The InRelease (or Release) bytes this run works from, to notice upstream moves.
    signed_bytes: Bytes,
    signed_path: RelPath,
    validators: Option<Validators>,
}

pub async fn sync_apt(
    ctx: &RunContext<'_>,
    mirror: &Mirror,
    apt: &AptMirror,
) -> anyhow::Result<MirrorReport> {
    let started = Instant::now();
    let mut restarted = false;
    let mut waited = Duration::ZERO;
    let mut polls = 0u32;
    loop {
        match sync_once(ctx, mirror, apt, started).await {
            Err(e) if e.downcast_ref::<UpstreamBusy>().is_some() => {
                // Copying an archive mid-update copies its half state; wait for it
                // within the budget instead.
                let budget = ctx.global.upstream_busy_wait;
                if waited >= budget {
                    return Err(e.context(format!(
                        "waited {} for it to finish (upstream_busy_wait)",
                        humantime::format_duration(budget)
                    )));
                }
                let delay = mirror
                    .network
                    .retry_delay
                    .saturating_mul(1 << polls.min(16))
                    .min(MAX_BUSY_POLL)
                    .min(budget - waited);
                tracing::warn!(mirror = %mirror.name, "{e}; waiting {delay:?}");
                ctx.reporter
                    .on_warning(&mirror.name, &format!("{e}; waiting"));
                tokio::time::sleep(delay).await;
                waited += delay;
                polls += 1;
            }
            Err(e) if !restarted && e.downcast_ref::<UpstreamMoved>().is_some() => {
                // Publishing a mix of two upstream states is what gives clients hash
                // sum mismatches; start over, once, from the new Release.
                tracing::warn!(mirror = %mirror.name, "{e}; restarting from the new Release");
                ctx.reporter.on_warning(
                    &mirror.name,
                    &format!("{e}; restarted from the new Release"),
                );
                restarted = true;
            }
            other => return other,
        }
    }
}

async fn sync_once(
    ctx: &RunContext<'_>,
    mirror: &Mirror,
    apt: &AptMirror,
    started: Instant,
) -> anyhow::Result<MirrorReport> {
    let opts = ctx.options;
    let dirs = MirrorDirs::new(&ctx.global.root, &mirror.name);
    let mut current = dirs.current()?;
    let state = MirrorState::load(&dirs.base)?;
    let upstream = Upstream::new(&mirror.network)?;
    let keyring = match &apt.keyring {
        Some(p) => Some(Keyring::from_file(p)?.with_policy(apt.signature_policy.clone())),
        None => None,
    };
    let fingerprint = config_fingerprint(mirror, apt);
    let shortcut_ok = !opts.verify_all
        && current.is_some()
        && state.config_fingerprint.as_deref() == Some(fingerprint.as_str());
    let mut warnings = Vec::new();

    // 1. Release files.
    let mut suites = Vec::new();
    for name in &apt.suites {
        let mut notes = Vec::new();
        let suite = fetch_suite(
            &upstream,
            mirror,
            apt,
            name,
            keyring.as_ref(),
            current.as_ref(),
            shortcut_ok.then_some(&state),
            &state.release_dates,
            ctx.now,
            &mut notes,
        )
        .await
        .with_context(|| format!("suite {name}"));
        // Said even when the suite fails: an operator wants to know the published
        // copy was edited behind the mirror's back.
        for note in notes {
            ctx.reporter.on_warning(&mirror.name, &note);
            warnings.push(note);
        }
        suites.push(suite?);
    }
    if shortcut_ok && suites.iter().all(|s| s.unchanged) {
        return Ok(MirrorReport {
            name: mirror.name.clone(),
            outcome: RunOutcome::Unchanged,
            snapshot: current.map(|c| c.id),
            requests: upstream.requests(),
            seconds: started.elapsed().as_secs_f64(),
            upstream_date: newest_date(&suites),
            ..MirrorReport::default()
        });
    }

    if !opts.dry_run
        && let Some(marker) = update_in_progress(&upstream, &mirror.upstream).await
    {
        return Err(UpstreamBusy { marker }.into());
    }

    // Where this run builds: the real staging tree, or a scratch one for --dry-run
    // that holds only the indices needed to plan the pool.
    let scratch;
    let (staging, partial) = if opts.dry_run {
        scratch = tempfile::Builder::new()
            .prefix("mirrorsync-dry-run-")
            .tempdir()
            .context("creating a scratch directory for --dry-run")?;
        (
            scratch.path().join("staging"),
            scratch.path().join("partial"),
        )
    } else {
        dirs.create()?;
        (dirs.staging.clone(), dirs.partial.clone())
    };
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;

    let empty = Manifest::default();
    let published = current.as_ref().map_or(&empty, |c| &c.manifest);
    let stager = Stager {
        upstream: &upstream,
        base_url: &mirror.upstream,
        staging: &staging,
        partial: &partial,
        published: current.as_ref().map(|c| c.dir.as_path()),
        concurrency: mirror.network.concurrency.get(),
        reporter: ctx.reporter,
        verify_links: opts.verify_all,
    };
    let mut summary = PlanSummary::default();

    // 2. Indices.
    let mut wanted = WantedSet::default();
    let mut variant_of: HashMap<RelPath, String> = HashMap::new();
    for s in &suites {
        for w in &s.kept_files {
            wanted.insert(w.clone())?;
        }
        for f in s
            .release
            .wanted_indices(&apt.components, &apt.architectures, apt.sources)
        {
            let path = RelPath::new(&format!("dists/{}/{}", s.name, f.path))?;
            let Some(sha256) = f.sha256 else {
                bail!(
                    "suite {}: Release lists {} without a SHA256 checksum; MD5 and SHA1 are not trusted",
                    s.name,
                    f.path
                );
            };
            let key = variant_key(path.as_str());
            let source = if s.release.acquire_by_hash {
                let dir = path.parent().unwrap_or("");
                let by_hash =
                    RelPath::new(&format!("{dir}/by-hash/SHA256/{}", hex::encode(sha256)))?;
                wanted.insert(Wanted {
                    path: by_hash.clone(),
                    size: f.size,
                    sha256,
                    source: by_hash.clone(),
                })?;
                variant_of.insert(by_hash.clone(), key.clone());
                // apt asks for the strongest hash Release lists: serve that by-hash
                // copy too (same content, verified by its SHA256).
                if let Some(sha512) = &f.sha512 {
                    let strong = RelPath::new(&format!("{dir}/by-hash/SHA512/{sha512}"))?;
                    wanted.insert(Wanted {
                        path: strong.clone(),
                        size: f.size,
                        sha256,
                        source: strong.clone(),
                    })?;
                    variant_of.insert(strong, key.clone());
                }
                by_hash
            } else {
                path.clone()
            };
            wanted.insert(Wanted {
                path: path.clone(),
                size: f.size,
                sha256,
                source,
            })?;
            variant_of.insert(path, key);
        }
    }
    let index_actions = plan::plan_owned(wanted.iter().cloned(), published);
    summary.add_actions(&index_actions);
    let mut located: HashMap<RelPath, PathBuf> = HashMap::new();
    let mut dry_ok_variants = Vec::new();
    let to_run = if opts.dry_run {
        // Read linked indices where they are published; fetch only the changed ones.
        let mut fetches = Vec::new();
        for a in index_actions {
            match a {
                Action::Link { from, to } => {
                    if let Some(c) = &current {
                        if let Some(k) = variant_of.get(&to.path) {
                            dry_ok_variants.push(k.clone());
                        }
                        located.insert(to.path, from.under(&c.dir));
                    }
                }
                fetch => fetches.push(fetch),
            }
        }
        fetches
    } else {
        index_actions
    };
    let phase = Instant::now();
    let outcomes = stager.run(to_run).await;
    tracing::info!(seconds = phase.elapsed().as_secs_f64(), "indices staged");
    let mut ok_variants: HashSet<String> = dry_ok_variants.into_iter().collect();
    let mut failures = Vec::new();
    let mut received = 0u64;
    let mut fetched_files = 0u64;
    for o in outcomes {
        match o.result {
            Ok(placed) => {
                if let Placed::Fetched { received: n } = placed {
                    received += n;
                    fetched_files += 1;
                }
                if let Some(k) = variant_of.get(&o.wanted.path) {
                    ok_variants.insert(k.clone());
                }
                located.insert(o.wanted.path.clone(), o.wanted.path.under(&staging));
            }
            Err(e) => failures.push((o.wanted, e)),
        }
    }
    let mut errors = Vec::new();
    let mut moved_suspect = false;
    for (w, e) in failures {
        let key = variant_of.get(&w.path);
        if e.is_not_found() && key.is_some_and(|k| ok_variants.contains(k)) {
            // Debian lists uncompressed Packages it does not serve; apt copes, as
            // long as one listed variant of the index is there and verified.
            tracing::info!(path = %w.path, "listed in Release but not served; another variant is");
            wanted.remove(&w.path);
            continue;
        }
        moved_suspect |= matches!(
            &e,
            StageError::Fetch(
                FetchError::ChecksumMismatch { .. }
                    | FetchError::WrongLength { .. }
                    | FetchError::TooLong { .. }
            )
        );
        errors.push(format!("{}: {}", w.path, crate::sync::chain(&e)));
    }
    if !errors.is_empty() {
        if moved_suspect {
            check_moved(&upstream, &mirror.upstream, &suites).await?;
        }
        return Err(crate::sync::failed("fetching indices", errors));
    }

    // The upstream's trace files go into the snapshot with ours.
    let upstream_traces = trace::fetch_upstream(&upstream, &mirror.upstream).await;

    // 3. The pool, from Packages and Sources: path -> entry, as the next manifest lists
    // it, so it becomes that manifest instead of being copied into one (at Debian scale
    // each copy is 10 MB).
    let mut pool: HashMap<RelPath, Entry> = HashMap::new();
    for s in &suites {
        for (kind, path) in indices_to_parse(s, &located) {
            let Some(file) = located.get(&path).cloned() else {
                continue;
            };
            let index_name = format!("{} {}", s.name, path);
            let files = tokio::task::spawn_blocking(move || {
                let mut files = Vec::new();
                packages::pool_files_of(&file, kind, &index_name, |f| files.push(f)).map(|_| files)
            })
            .await
            .map_err(|e| anyhow!("index parser task: {e}"))??;
            for f in files {
                // The published manifest's copy of the path, when it has one: 65,000
                // paths are then held once, not once per manifest.
                let p = published
                    .files
                    .get_key_value(&f.path)
                    .map_or(f.path, |(p, _)| p.clone());
                plan::insert_entry(&mut pool, p, f.size, f.sha256)
                    .with_context(|| format!("suite {}: {}", s.name, path))?;
            }
        }
    }
    for (path, e) in &pool {
        if let Some(have) = wanted.get(path)
            && (have.size != e.size || have.sha256 != e.sha256)
        {
            bail!("{path} is both an index and a pool file with other contents");
        }
    }
    let pool_actions = plan::plan_owned(
        pool.iter().map(|(p, e)| Wanted {
            path: p.clone(),
            size: e.size,
            sha256: e.sha256,
            source: p.clone(),
        }),
        published,
    );
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        pool_files = pool.len(),
        "pool planned"
    );
    summary.add_actions(&pool_actions);

    // 4. What upstream no longer lists.
    let mut keep: HashSet<&RelPath> = wanted.iter().map(|w| &w.path).collect();
    keep.extend(pool.keys());
    let meta_paths: Vec<RelPath> = suites
        .iter()
        .flat_map(|s| s.new_files.iter().map(|(p, _, _)| p.clone()))
        .chain(upstream_traces.paths(&ctx.global.hostname))
        .collect();
    keep.extend(meta_paths.iter());
    let mut removals = plan::plan_removals(&keep, published, ctx.now.as_second(), ctx.global.grace);
    // Signed metadata is never kept for grace: an old InRelease next to a new Release
    // (upstream dropped InRelease) is exactly the mix that gives clients mismatches.
    let (stale, kept): (Vec<_>, Vec<_>) = removals
        .kept
        .into_iter()
        .partition(|(p, _)| is_signed_metadata(p));
    removals.kept = kept;
    removals
        .dropped
        .extend(stale.into_iter().map(|(p, e)| (p, e.size)));
    summary.add_removals(&removals);
    // Planning is done: free its indexes before the pool is staged (at Debian scale
    // they are megabytes a Raspberry Pi wants back).
    drop(keep);
    drop(located);
    ctx.reporter.on_plan(&mirror.name, &summary);
    // Pool files weigh; indices and traces turn over with every publish.
    let content =
        |p: &RelPath| !p.as_str().starts_with("dists/") && !p.as_str().starts_with("project/");
    if let Some(why) =
        plan::deletes_too_much(&removals, published, ctx.global.max_delete_ratio, &content)
        && !opts.allow_mass_delete
    {
        bail!(
            "{why}; refusing to publish (rerun with --allow-mass-delete if upstream really removed them)"
        );
    }
    if opts.dry_run {
        return Ok(MirrorReport {
            name: mirror.name.clone(),
            outcome: RunOutcome::DryRun,
            plan: summary,
            grace: removals.grace_ends(ctx.global.grace),
            requests: upstream.requests(),
            seconds: started.elapsed().as_secs_f64(),
            upstream_date: newest_date(&suites),
            ..MirrorReport::default()
        });
    }

    snapshot::check_free_space(&staging, plan::fetch_bytes(&pool_actions))?;
    let phase = Instant::now();
    let mut errors = Vec::new();
    let mut tolerated: Vec<(RelPath, Option<Entry>)> = Vec::new();
    let mut pool_warnings = Vec::new();
    stager
        .run_each(pool_actions, &mut |o| match o.result {
            Ok(Placed::Fetched { received: n }) => {
                received += n;
                fetched_files += 1;
            }
            Ok(_) => {}
            Err(e) if apt.tolerate.is_match(o.wanted.path.as_str()) => {
                // The operator knows this file is broken upstream: keep the last
                // good copy if there is one, and say so.
                let previous = current
                    .as_ref()
                    .and_then(|c| c.manifest.files.get(&o.wanted.path).cloned());
                let kept = if previous.is_some() {
                    "the published copy is kept"
                } else {
                    "left out"
                };
                pool_warnings.push(format!("tolerated failure, {kept}: {}: {e}", o.wanted.path));
                tolerated.push((o.wanted.path, previous));
            }
            Err(e) => errors.push(format!("{}: {}", o.wanted.path, crate::sync::chain(&e))),
        })
        .await;
    tracing::info!(seconds = phase.elapsed().as_secs_f64(), "pool staged");
    // The published manifest has served (planning, tolerated failures); its table goes
    // before the next one is completed. Its paths live on in the pool.
    if let Some(c) = &mut current {
        c.manifest.files = HashMap::new();
    }
    for msg in pool_warnings {
        tracing::warn!("{msg}");
        ctx.reporter.on_warning(&mirror.name, &msg);
        warnings.push(msg);
    }
    if !errors.is_empty() {
        return Err(crate::sync::failed("fetching pool files", errors));
    }
    for (path, previous) in &tolerated {
        pool.remove(path);
        if let (Some(c), Some(_)) = (&current, previous) {
            snapshot::link_file(&path.under(&c.dir), &path.under(&staging))?;
        }
    }
    let mut manifest = Manifest { files: pool };
    for (path, previous) in tolerated {
        if let Some(e) = previous {
            manifest.files.insert(path, e);
        }
    }
    for w in wanted.iter() {
        manifest.files.insert(w.path.clone(), Entry::from(w));
    }
    if let Some(c) = &current {
        let staging = staging.clone();
        let dir = c.dir.clone();
        let kept = removals.kept.clone();
        tokio::task::spawn_blocking(move || -> Result<(), snapshot::SnapshotError> {
            for (p, _) in &kept {
                snapshot::link_file(&p.under(&dir), &p.under(&staging))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| anyhow!("linking files in grace: {e}"))??;
    }
    for (p, e) in &removals.kept {
        manifest.files.insert(p.clone(), e.clone());
    }

    // 5. Release files last, then the trace, then publish.
    for s in &suites {
        for (path, bytes, mtime) in &s.new_files {
            snapshot::write_file(&path.under(&staging), bytes, *mtime)?;
            manifest.files.insert(
                path.clone(),
                Entry {
                    size: bytes.len() as u64,
                    sha256: Sha256::digest(bytes).into(),
                    gone_since: None,
                },
            );
        }
    }
    let architectures = architectures_held(apt, &suites);
    let trace_files = trace::render(
        &TraceInput {
            hostname: &ctx.global.hostname,
            upstream: &mirror.upstream,
            started: ctx.now,
            finished: jiff::Timestamp::now(),
            bytes_received: received,
            architectures: &architectures,
            configured: &apt.architectures,
            sources: apt.sources,
            trigger: opts.trigger,
        },
        &upstream_traces,
    );
    for (path, bytes) in &trace_files {
        snapshot::write_file(&path.under(&staging), bytes, None)?;
        manifest.files.insert(
            path.clone(),
            Entry {
                size: bytes.len() as u64,
                sha256: Sha256::digest(bytes).into(),
                gone_since: None,
            },
        );
    }
    // The Release may have moved on while the pool downloaded; a mix is still
    // consistent (its own indices and pool), so publish it and catch up next run.
    let id = dirs.new_id(ctx.now);
    let phase = Instant::now();
    let files_total = manifest.files.len() as u64;
    snapshot::publish_staging(&dirs, &id, manifest).await?;
    tracing::info!(seconds = phase.elapsed().as_secs_f64(), snapshot = %id, "published");
    let pruned = snapshot::prune(&dirs, ctx.global.keep_snapshots.get())?;
    let _ = std::fs::remove_dir_all(&partial).and_then(|()| std::fs::create_dir_all(&partial));

    let mut new_state = state;
    new_state.config_fingerprint = Some(fingerprint);
    for s in &suites {
        if let Some(date) = s.release.date {
            new_state
                .release_dates
                .insert(s.name.clone(), date.to_string());
        }
        if let Some(v) = &s.validators {
            let mut v = v.clone();
            v.content_sha256 = Some(hex::encode(Sha256::digest(&s.signed_bytes)));
            new_state.validators.insert(s.signed_path.to_string(), v);
        }
    }
    new_state.save(&dirs.base).context("recording the run")?;
    Ok(MirrorReport {
        name: mirror.name.clone(),
        outcome: RunOutcome::Published,
        bucket: None,
        snapshot: Some(id),
        plan: summary,
        files_fetched: fetched_files,
        bytes_fetched: received,
        files_total,
        files_unverified: 0,
        requests: upstream.requests(),
        seconds: started.elapsed().as_secs_f64(),
        warnings,
        pruned,
        upstream_date: newest_date(&suites),
        grace: removals.grace_ends(ctx.global.grace),
    })
}

/// Fetches and verifies one suite's Release files.
#[allow(clippy::too_many_arguments)]
async fn fetch_suite(
    upstream: &Upstream,
    mirror: &Mirror,
    apt: &AptMirror,
    name: &str,
    keyring: Option<&Keyring>,
    current: Option<&Snapshot>,
    shortcut: Option<&MirrorState>,
    recorded: &BTreeMap<String, String>,
    now: jiff::Timestamp,
    notes: &mut Vec<String>,
) -> anyhow::Result<Suite> {
    let inrelease = RelPath::new(&format!("dists/{name}/InRelease"))?;
    let release_path = RelPath::new(&format!("dists/{name}/Release"))?;
    let gpg_path = RelPath::new(&format!("dists/{name}/Release.gpg"))?;
    let url = |p: &RelPath| -> anyhow::Result<Url> {
        Ok(mirror.upstream.join(&encode_path(p.as_str()))?)
    };
    let published_inrelease =
        current.and_then(|c| c.manifest.files.get(&inrelease).map(|e| (c, e.sha256)));
    // Validators count only for the content they were taken with: after a manual
    // rollback of the served link, a 304 must not pin the older tree.
    let known = shortcut.and_then(|s| {
        let (_, sha) = published_inrelease?;
        s.validators
            .get(inrelease.as_str())
            .filter(|v| v.content_sha256.as_deref() == Some(hex::encode(sha).as_str()))
    });

    let in_url = url(&inrelease)?;
    let shown = redact(&in_url);
    let mut fetched = match upstream.get_meta(&in_url, MAX_RELEASE_BYTES, known).await {
        Ok(Meta::NotModified) => None,
        Ok(Meta::Body {
            body,
            validators,
            last_modified,
            ..
        }) => Some((body, validators, last_modified)),
        Err(e) if e.is_not_found() => {
            return fetch_release_gpg(
                upstream, mirror, apt, name, keyring, current, shortcut, recorded, now, notes,
            )
            .await;
        }
        Err(e) => return Err(e).context("fetching InRelease"),
    };
    if let (Some((c, sha)), true) = (published_inrelease, shortcut.is_some()) {
        let same = match &fetched {
            None => true,
            Some((body, _, _)) => sha == <[u8; 32]>::from(Sha256::digest(body)),
        };
        if same {
            let carry = ["InRelease", "Release", "Release.gpg"];
            match published_suite(name, c, &inrelease, &carry, keyring) {
                Ok(mut suite) => {
                    check_still_valid(&suite.release, apt, now).with_context(|| shown.clone())?;
                    suite.validators = fetched.map(|(_, v, _)| v).or_else(|| known.cloned());
                    return Ok(suite);
                }
                Err(e) => {
                    // Only verified bytes feed a run: a published copy that no longer
                    // verifies is not trusted for anything, upstream's is fetched anew.
                    notes.push(format!("suite {name}: {e:#}; fetching it again"));
                    if fetched.is_none() {
                        fetched = Some(fetch_unconditionally(upstream, &in_url).await?);
                    }
                }
            }
        }
    }
    let Some((body, validators, last_modified)) = fetched else {
        // A 304 without a published copy cannot happen: we only ask conditionally
        // when we hold one. Treat it as a server bug.
        bail!("{shown}: 304 Not Modified to an unconditional request");
    };
    let text = match keyring {
        // apt refuses an InRelease with anything outside its signed part (the
        // splitter says which line), and so do we: such bytes would be published.
        Some(k) => {
            signature::verify_clearsigned(k, &body)
                .with_context(|| format!("verifying {shown}"))?
                .text
        }
        None => signature::unsigned_text(&body).with_context(|| format!("reading {shown}"))?,
    };
    let release = Release::parse(&text).with_context(|| format!("parsing {shown}"))?;
    let floor = published_floor(current, name, keyring, recorded, notes);
    check_dates(&release, apt, floor, now).with_context(|| shown.clone())?;
    let mut new_files = vec![(inrelease.clone(), body.clone(), last_modified)];
    // Release + Release.gpg too, for clients that do not use InRelease; they must
    // say the same thing or upstream is mid-update.
    let rel = optional(upstream, &url(&release_path)?).await?;
    let gpg = optional(upstream, &url(&gpg_path)?).await?;
    let gpg_shown = redact(&url(&gpg_path)?);
    if let Some((rel_body, rel_mtime)) = rel {
        if rel_body.as_ref() != text.as_bytes() {
            return Err(UpstreamMoved {
                url: redact(&url(&release_path)?),
            }
            .into());
        }
        if let Some((gpg_body, gpg_mtime)) = gpg {
            if let Some(k) = keyring {
                signature::verify_detached(k, &rel_body, &gpg_body)
                    .with_context(|| format!("verifying {gpg_shown}"))?;
            }
            new_files.push((gpg_path.clone(), gpg_body, gpg_mtime));
        }
        new_files.push((release_path.clone(), rel_body, rel_mtime));
    }
    Ok(Suite {
        name: name.to_string(),
        release,
        new_files,
        kept_files: Vec::new(),
        unchanged: false,
        signed_bytes: body,
        signed_path: inrelease,
        validators: Some(validators),
    })
}

/// The old layout: Release signed by a detached Release.gpg.
#[allow(clippy::too_many_arguments)]
async fn fetch_release_gpg(
    upstream: &Upstream,
    mirror: &Mirror,
    apt: &AptMirror,
    name: &str,
    keyring: Option<&Keyring>,
    current: Option<&Snapshot>,
    shortcut: Option<&MirrorState>,
    recorded: &BTreeMap<String, String>,
    now: jiff::Timestamp,
    notes: &mut Vec<String>,
) -> anyhow::Result<Suite> {
    let release_path = RelPath::new(&format!("dists/{name}/Release"))?;
    let gpg_path = RelPath::new(&format!("dists/{name}/Release.gpg"))?;
    let rel_url = mirror.upstream.join(&encode_path(release_path.as_str()))?;
    let gpg_url = mirror.upstream.join(&encode_path(gpg_path.as_str()))?;
    let (rel_shown, gpg_shown) = (redact(&rel_url), redact(&gpg_url));
    let (body, validators, mtime) = match upstream.get_meta(&rel_url, MAX_RELEASE_BYTES, None).await
    {
        Ok(Meta::Body {
            body,
            validators,
            last_modified,
            ..
        }) => (body, validators, last_modified),
        Ok(Meta::NotModified) => {
            bail!("{rel_shown}: 304 Not Modified to an unconditional request")
        }
        Err(e) => {
            return Err(e).context("neither InRelease nor Release could be fetched");
        }
    };
    if shortcut.is_some()
        && let Some(c) = current
        && c.manifest
            .files
            .get(&release_path)
            .is_some_and(|e| e.sha256 == <[u8; 32]>::from(Sha256::digest(&body)))
    {
        // Unchanged. An InRelease published earlier is not carried over: upstream
        // no longer has it, and apt would prefer it to the Release it goes with.
        let carry = ["Release", "Release.gpg"];
        match published_suite(name, c, &release_path, &carry, keyring) {
            Ok(suite) => {
                check_still_valid(&suite.release, apt, now).with_context(|| rel_shown.clone())?;
                return Ok(suite);
            }
            Err(e) => {
                notes.push(format!("suite {name}: {e:#}; verifying upstream's again"));
            }
        }
    }
    let mut new_files = vec![(release_path.clone(), body.clone(), mtime)];
    let text = match keyring {
        Some(k) => {
            let Some((sig, sig_mtime)) = optional(upstream, &gpg_url).await? else {
                bail!("{gpg_shown}: missing, and the Release cannot be trusted without it");
            };
            let verified = signature::verify_detached(k, &body, &sig)
                .with_context(|| format!("verifying {rel_shown} with {gpg_shown}"))?;
            new_files.push((gpg_path.clone(), sig, sig_mtime));
            verified.text
        }
        None => String::from_utf8(body.to_vec())
            .map_err(|_| anyhow!("{rel_shown}: Release is not UTF-8"))?,
    };
    let release = Release::parse(&text).with_context(|| format!("parsing {rel_shown}"))?;
    let floor = published_floor(current, name, keyring, recorded, notes);
    check_dates(&release, apt, floor, now).with_context(|| rel_shown.clone())?;
    Ok(Suite {
        name: name.to_string(),
        release,
        new_files,
        kept_files: Vec::new(),
        unchanged: false,
        signed_bytes: body,
        signed_path: release_path,
        validators: Some(validators),
    })
}

/// GETs a file that may legitimately be missing.
async fn optional(
    upstream: &Upstream,
    url: &Url,
) -> anyhow::Result<Option<(Bytes, Option<SystemTime>)>> {
    match upstream.get_meta(url, MAX_RELEASE_BYTES, None).await {
        Ok(Meta::Body {
            body,
            last_modified,
            ..
        }) => Ok(Some((body, last_modified))),
        Ok(Meta::NotModified) => Ok(None),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A suite whose signed Release is the one already published: carry it over. The
/// published copy is read back only if it still matches the manifest and still
/// verifies, so a file edited after publishing feeds nothing.
fn published_suite(
    name: &str,
    c: &Snapshot,
    signed: &RelPath,
    carry: &[&str],
    keyring: Option<&Keyring>,
) -> anyhow::Result<Suite> {
    let (bytes, text) = read_published(c, signed, keyring)?;
    let file = signed.under(&c.dir);
    let release = Release::parse(&text).with_context(|| format!("parsing {}", file.display()))?;
    let mut kept = Vec::new();
    for f in carry {
        let p = RelPath::new(&format!("dists/{name}/{f}"))?;
        if let Some(e) = c.manifest.files.get(&p) {
            kept.push(Wanted {
                path: p.clone(),
                size: e.size,
                sha256: e.sha256,
                source: p,
            });
        }
    }
    Ok(Suite {
        name: name.to_string(),
        release,
        new_files: Vec::new(),
        kept_files: kept,
        unchanged: true,
        signed_bytes: bytes,
        signed_path: signed.clone(),
        validators: None,
    })
}

/// The bytes of a published file, refused unless they are the ones the manifest
/// recorded when they were verified and published.
fn published_bytes(c: &Snapshot, path: &RelPath) -> anyhow::Result<Bytes> {
    let file = path.under(&c.dir);
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let recorded = c.manifest.files.get(path).map(|e| e.sha256);
    if recorded != Some(<[u8; 32]>::from(Sha256::digest(&bytes))) {
        bail!("{} changed on disk since it was published", file.display());
    }
    Ok(Bytes::from(bytes))
}

/// A published InRelease or Release with its verified text: verified again with the
/// keyring (an InRelease by itself, a Release with its Release.gpg), or split as for
/// verification when the mirror checks no signature.
fn read_published(
    c: &Snapshot,
    signed: &RelPath,
    keyring: Option<&Keyring>,
) -> anyhow::Result<(Bytes, String)> {
    let bytes = published_bytes(c, signed)?;
    let file = signed.under(&c.dir);
    let context = || format!("the published {} no longer verifies", file.display());
    let text = match keyring {
        Some(k) if signed.as_str().ends_with("/InRelease") => {
            signature::verify_clearsigned(k, &bytes)
                .with_context(context)?
                .text
        }
        Some(k) => {
            let gpg = RelPath::new(&format!("{}.gpg", signed.as_str()))?;
            let sig = published_bytes(c, &gpg)?;
            signature::verify_detached(k, &bytes, &sig)
                .with_context(context)?
                .text
        }
        None => signature::unsigned_text(&bytes).with_context(context)?,
    };
    Ok((bytes, text))
}

/// A GET without validators, for when a 304 answered for a published copy that can
/// no longer be trusted.
async fn fetch_unconditionally(
    upstream: &Upstream,
    url: &Url,
) -> anyhow::Result<(Bytes, Validators, Option<SystemTime>)> {
    match upstream.get_meta(url, MAX_RELEASE_BYTES, None).await? {
        Meta::Body {
            body,
            validators,
            last_modified,
            ..
        } => Ok((body, validators, last_modified)),
        Meta::NotModified => bail!(
            "{}: 304 Not Modified to an unconditional request",
            redact(url)
        ),
    }
}

/// The Valid-Until of a Release past it, when the mirror checks it.
fn expired(release: &Release, apt: &AptMirror, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    release
        .valid_until
        .filter(|until| apt.check_valid_until && *until < now)
}

/// An unchanged upstream whose Release has expired leaves a mirror apt refuses: that
/// is a failure to report, not a no-op.
fn check_still_valid(
    release: &Release,
    apt: &AptMirror,
    now: jiff::Timestamp,
) -> anyhow::Result<()> {
    if let Some(until) = expired(release, apt, now) {
        bail!(
            "the published Release expired at {} (Valid-Until) and upstream has not published a new one",
            release::format_release_date(until)
        );
    }
    Ok(())
}

/// The Date a new Release of `suite` must not be older than: the published copy's,
/// verified again; else the one recorded when it was verified and published. Only a
/// mirror with neither (never published) has none: a copy that no longer verifies must
/// not open the way to a rollback.
fn published_floor(
    current: Option<&Snapshot>,
    suite: &str,
    keyring: Option<&Keyring>,
    recorded: &BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> Option<jiff::Timestamp> {
    current
        .and_then(|c| published_date(c, suite, keyring, notes))
        .or_else(|| recorded.get(suite).and_then(|d| d.parse().ok()))
}

/// Refuses an expired Release and one older than what is published (a rollback,
/// which could pin clients to packages with known holes).
fn check_dates(
    release: &Release,
    apt: &AptMirror,
    published: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> anyhow::Result<()> {
    if let Some(until) = expired(release, apt, now) {
        bail!(
            "Release expired: Valid-Until {} is in the past (set check_valid_until = false to mirror it anyway)",
            release::format_release_date(until)
        );
    }
    if apt.allow_rollback {
        return Ok(());
    }
    let (Some(new), Some(old)) = (release.date, published) else {
        return Ok(());
    };
    if new < old {
        bail!(
            "Release Date {} is older than the published {}: refusing a rollback (set allow_rollback = true to accept it)",
            release::format_release_date(new),
            release::format_release_date(old)
        );
    }
    Ok(())
}

/// The Date of the Release this mirror published, from verified bytes only. A copy
/// that no longer verifies (edited on disk, or the keyring changed) gives none (the
/// caller then uses the Date recorded at publishing), with a note saying so.
fn published_date(
    c: &Snapshot,
    suite: &str,
    keyring: Option<&Keyring>,
    notes: &mut Vec<String>,
) -> Option<jiff::Timestamp> {
    ["InRelease", "Release"].iter().find_map(|f| {
        let path = RelPath::new(&format!("dists/{suite}/{f}")).ok()?;
        c.manifest.files.get(&path)?;
        match read_published(c, &path, keyring) {
            Ok((_, text)) => Release::parse(&text).ok()?.date,
            Err(e) => {
                notes.push(format!(
                    "suite {suite}: {e:#}; its Date is not used for the rollback check (the one recorded at publishing is)"
                ));
                None
            }
        }
    })
}

/// If the upstream's signed Release differs from the one this run started from,
/// the index failures are the upstream moving, not damage.
async fn check_moved(upstream: &Upstream, base: &Url, suites: &[Suite]) -> anyhow::Result<()> {
    for s in suites {
        let url = base.join(&encode_path(s.signed_path.as_str()))?;
        if let Ok(Meta::Body { body, .. }) = upstream.get_meta(&url, MAX_RELEASE_BYTES, None).await
            && body != s.signed_bytes
        {
            return Err(UpstreamMoved { url: redact(&url) }.into());
        }
    }
    Ok(())
}

/// The name of an Archive-Update-in-Progress marker at the upstream's root, if any.
/// ftpsync names it after the upstream's own host name; a root listing shows any.
async fn update_in_progress(upstream: &Upstream, base: &Url) -> Option<String> {
    const MARKER: &str = "Archive-Update-in-Progress-";
    if let Ok(Meta::Body { body, .. }) = upstream.get_meta(base, 1 << 20, None).await {
        let text = String::from_utf8_lossy(&body);
        if let Some(at) = text.find(MARKER) {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
                .collect();
            return Some(name);
        }
    }
    let name = format!("{MARKER}{}", base.host_str().unwrap_or_default());
    let url = base.join(&name).ok()?;
    match upstream.exists(&url).await {
        Ok(true) => Some(name),
        Ok(false) => None,
        Err(e) => {
            tracing::debug!(error = %e, "could not check for an update in progress");
            None
        }
    }
}

/// `dists/<suite>/InRelease`, `Release` or `Release.gpg`.
fn is_signed_metadata(p: &RelPath) -> bool {
    let parts: Vec<&str> = p.as_str().split('/').collect();
    parts.len() == 3
        && parts[0] == "dists"
        && matches!(parts[2], "InRelease" | "Release" | "Release.gpg")
}

/// The index a path is a variant of: its path without the compression suffix.
fn variant_key(path: &str) -> String {
    for ext in [".gz", ".xz", ".bz2", ".lzma", ".zst", ".lz4"] {
        if let Some(stem) = path.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    path.to_string()
}

/// The Packages and Sources indices to read for the pool: one variant of each, the
/// cheapest to decompress that was staged.
fn indices_to_parse(s: &Suite, located: &HashMap<RelPath, PathBuf>) -> Vec<(IndexKind, RelPath)> {
    let mut best: HashMap<String, (u8, IndexKind, RelPath)> = HashMap::new();
    for f in s.release.files.values() {
        let name = f.path.file_name();
        let dir = f.path.parent().unwrap_or("");
        let kind = if name.starts_with("Packages") && dir.contains("binary-") {
            IndexKind::Packages
        } else if name.starts_with("Sources") && dir.ends_with("source") {
            IndexKind::Sources
        } else {
            continue;
        };
        let Some(compression) = Compression::of(name) else {
            continue;
        };
        let Ok(path) = RelPath::new(&format!("dists/{}/{}", s.name, f.path)) else {
            continue;
        };
        if !located.contains_key(&path) {
            continue;
        }
        let key = variant_key(path.as_str());
        let rank = compression.preference();
        if best.get(&key).is_none_or(|(r, _, _)| rank < *r) {
            best.insert(key, (rank, kind, path));
        }
    }
    let mut out: Vec<_> = best.into_values().map(|(_, k, p)| (k, p)).collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The architectures this tree really holds, for the trace file.
fn architectures_held(apt: &AptMirror, suites: &[Suite]) -> Vec<String> {
    let mut out: Vec<String> = apt
        .architectures
        .iter()
        .filter(|a| suites.iter().any(|s| s.release.architectures.contains(a)))
        .cloned()
        .collect();
    if apt.sources {
        out.push("source".into());
    }
    out.sort();
    out
}

fn newest_date(suites: &[Suite]) -> Option<String> {
    suites
        .iter()
        .filter_map(|s| s.release.date)
        .max()
        .map(|d| d.to_string())
}

/// What the config asks of this mirror; the no-op shortcut is only taken while it is
/// unchanged (a new architecture must be fetched even if upstream is not).
fn config_fingerprint(mirror: &Mirror, apt: &AptMirror) -> String {
    // The signature policy counts: relaxing or tightening it must judge the
    // published Release files again, not carry them over.
    let weaknesses: Vec<_> = apt.signature_policy.allowed().collect();
    let desc = format!(
        "{}|{:?}|{:?}|{:?}|{}|{:?}",
        mirror.upstream, apt.suites, apt.components, apt.architectures, apt.sources, weaknesses
    );
    hex::encode(Sha256::digest(desc.as_bytes()))
}
