//! A suite's indices (Packages, Sources, Contents...): the ones the config wants,
//! staged with their by-hash twins, and read for the pool they list.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use url::Url;

use super::packages::{self, Compression, IndexKind, Listed};
use super::retry::UpstreamMoved;
use super::suite::{MAX_RELEASE_BYTES, Suite};
use crate::config::AptMirror;
use crate::failures::{chain, failed};
use crate::fetch::{Placed, StageError, file_url};
use crate::manifest::Entry;
use crate::merge::{Sorted, Spill};
use crate::pipeline::{Run, StagingArea, Tally, Unverified, fetch_by_size};
use crate::plan::{self, Action, PlanSummary, Wanted, WantedSet};
use crate::relpath::RelPath;
use crate::upstream::{FetchError, Meta, Upstream, redact};

/// The indices to stage, and which index each is a variant of (Packages.xz and
/// Packages.gz are variants of Packages; a by-hash copy is a variant of its index).
#[derive(Default)]
pub(super) struct Indices {
    pub wanted: WantedSet,
    variant_of: HashMap<RelPath, String>,
    /// An unsigned repository's indices its Release lists without SHA256: fetched by
    /// size alone, and counted as unverified.
    size_only: Vec<Unverified>,
}

/// The indices after staging.
pub(super) struct StagedIndices {
    /// Where each staged (or, for a dry run, published) index can be read.
    pub located: HashMap<RelPath, PathBuf>,
    pub summary: PlanSummary,
    pub tally: Tally,
    /// Indices fetched by size alone.
    pub unverified: u64,
}

/// The pool the indices list.
pub(super) struct Pool {
    pub sorted: Sorted,
    /// Pool files an unsigned repository lists without SHA256 and the mirror does not
    /// hold at that size: fetched by size.
    pub unverified: Vec<Unverified>,
    /// Those it holds at the listed size (names are versioned): kept.
    pub kept_unverified: u64,
}

impl Indices {
    fn add(&mut self, w: Wanted, variant: &str) -> anyhow::Result<()> {
        self.variant_of.insert(w.path.clone(), variant.to_string());
        self.wanted.insert(w)?;
        Ok(())
    }
}

/// The indices each suite's Release lists that the config wants, with the by-hash
/// copies apt asks for when the Release says Acquire-By-Hash; and the files an
/// unchanged suite carries over.
pub(super) fn wanted(suites: &[Suite], apt: &AptMirror) -> anyhow::Result<Indices> {
    let mut out = Indices::default();
    for s in suites {
        check_offered(s, apt)?;
        for w in &s.kept_files {
            out.wanted.insert(w.clone())?;
        }
        for f in s
            .release
            .wanted_indices(&apt.components, &apt.architectures, apt.sources)
        {
            let path = s.dir.file(f.path.as_str())?;
            let key = variant_key(path.as_str());
            let Some(sha256) = f.sha256 else {
                if apt.keyring.is_none() {
                    // An unsigned Release vouches for nothing anyway; apt takes it
                    // with a warning, and so does the mirror (counted unverified).
                    out.variant_of.insert(path.clone(), key);
                    out.size_only.push(Unverified { path, size: f.size });
                    continue;
                }
                bail!(
                    "suite {}: Release lists {} without a SHA256 checksum; MD5 and SHA1 are not trusted",
                    s.name,
                    f.path
                );
            };
            let file = |p: &RelPath| Wanted {
                path: p.clone(),
                size: f.size,
                sha256,
                source: p.clone(),
            };
            let source = if s.release.acquire_by_hash {
                // A flat repository's indices sit at the top: "by-hash/...".
                let dir = path.parent().map_or(String::new(), |d| format!("{d}/"));
                let by_hash =
                    RelPath::new(&format!("{dir}by-hash/SHA256/{}", hex::encode(sha256)))?;
                out.add(file(&by_hash), &key)?;
                // apt asks for the strongest hash Release lists: serve that by-hash
                // copy too (same content, verified by its SHA256).
                if let Some(sha512) = &f.sha512 {
                    let strong = RelPath::new(&format!("{dir}by-hash/SHA512/{sha512}"))?;
                    out.add(file(&strong), &key)?;
                }
                by_hash
            } else {
                path.clone()
            };
            out.add(
                Wanted {
                    source,
                    ..file(&path)
                },
                &key,
            )?;
        }
    }
    Ok(out)
}

/// A configured component or architecture the suite's Release does not offer is an
/// error naming what it does offer (apt only warns, but a mirror must not publish an
/// empty copy), and so is a suite of which no Packages or Sources index is wanted.
fn check_offered(s: &Suite, apt: &AptMirror) -> anyhow::Result<()> {
    let r = &s.release;
    // A security archive's Release says "updates/main" where sources.list says "main".
    let offers = |c: &str| {
        r.components
            .iter()
            .any(|o| o == c || o.rsplit('/').next() == Some(c))
    };
    // A Release without the field (a flat repository) is not judged by it.
    let refuse =
        |what: &str, configured: &[String], offered: &[String], ok: &dyn Fn(&str) -> bool| {
            let missing: Vec<&str> = configured
                .iter()
                .map(String::as_str)
                .filter(|c| !offered.is_empty() && !ok(c))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            Err(anyhow!(
                "suite {}: its Release does not offer {what} {} (it offers: {})",
                s.name,
                missing.join(", "),
                offered.join(" ")
            ))
        };
    refuse("component", &apt.components, &r.components, &offers)?;
    let arch_ok = |a: &str| a == "all" || r.architectures.iter().any(|o| o == a);
    refuse(
        "architecture",
        &apt.architectures,
        &r.architectures,
        &arch_ok,
    )?;
    let indices = r.wanted_indices(&apt.components, &apt.architectures, apt.sources);
    let lists_pool = |f: &&super::release::IndexFile| {
        let name = f.path.file_name();
        name.starts_with("Packages") || name.starts_with("Sources")
    };
    if !indices.iter().any(lists_pool) {
        bail!(
            "suite {}: its Release lists no Packages index for components {} and architectures {}; \
             nothing would be mirrored",
            s.name,
            apt.components.join(" "),
            apt.architectures.join(" ")
        );
    }
    Ok(())
}

/// Stages the wanted indices. A dry run reads linked indices where they are
/// published and fetches only the changed ones, into its scratch area.
pub(super) async fn stage(
    run: &Run<'_>,
    area: &StagingArea,
    suites: &[Suite],
    indices: &mut Indices,
) -> anyhow::Result<StagedIndices> {
    let actions = plan::plan_owned(indices.wanted.iter().cloned(), run.published());
    let mut summary = PlanSummary::default();
    summary.add_actions(&actions);
    let mut located: HashMap<RelPath, PathBuf> = HashMap::new();
    let mut ok_variants: HashSet<String> = HashSet::new();
    let to_run = if run.dry_run() {
        let mut fetches = Vec::new();
        for a in actions {
            match a {
                Action::Link { from, to } => {
                    if let Some(c) = &run.current {
                        if let Some(k) = indices.variant_of.get(&to.path) {
                            ok_variants.insert(k.clone());
                        }
                        located.insert(to.path, from.under(&c.dir));
                    }
                }
                fetch => fetches.push(fetch),
            }
        }
        fetches
    } else {
        actions
    };
    let phase = std::time::Instant::now();
    let outcomes = run.stager(area, &run.mirror.upstream).run(to_run).await;
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "indices staged");
    let mut failures = Vec::new();
    let mut tally = Tally::default();
    for o in outcomes {
        match o.result {
            Ok(placed) => {
                if let Placed::Fetched { received } = placed {
                    tally.bytes += received;
                    tally.files += 1;
                }
                if let Some(k) = indices.variant_of.get(&o.wanted.path) {
                    ok_variants.insert(k.clone());
                }
                located.insert(o.wanted.path.clone(), o.wanted.path.under(&area.staging));
            }
            Err(e) => failures.push((o.wanted, e)),
        }
    }
    let fetched_by_size = indices.size_only.len() as u64;
    let size_only = SizeOnly {
        located: &mut located,
        ok_variants: &mut ok_variants,
        tally: &mut tally,
    };
    stage_size_only(run, area, indices, size_only).await?;
    judge_failures(run, suites, indices, &ok_variants, failures).await?;
    Ok(StagedIndices {
        located,
        summary,
        tally,
        unverified: fetched_by_size,
    })
}

/// Where staging an unsigned repository's size-only indices records what it did.
struct SizeOnly<'a> {
    located: &'a mut HashMap<RelPath, PathBuf>,
    ok_variants: &'a mut HashSet<String>,
    tally: &'a mut Tally,
}

/// An unsigned repository's indices without SHA256: fetched by size, then listed
/// with the digest of what arrived. A variant upstream does not serve is dropped
/// while another variant of the index is there, as for checked ones.
async fn stage_size_only(
    run: &Run<'_>,
    area: &StagingArea,
    indices: &mut Indices,
    out: SizeOnly<'_>,
) -> anyhow::Result<()> {
    let files = std::mem::take(&mut indices.size_only);
    let mut failed_paths = Vec::new();
    for (path, result) in fetch_by_size(run, area, &run.mirror.upstream, files).await {
        match result {
            Ok((received, entry, _)) => {
                out.tally.bytes += received;
                out.tally.files += 1;
                if let Some(k) = indices.variant_of.get(&path) {
                    out.ok_variants.insert(k.clone());
                }
                out.located
                    .insert(path.clone(), area.shared.read_path(&path));
                indices.wanted.insert(Wanted {
                    path: path.clone(),
                    size: entry.size,
                    sha256: entry.sha256,
                    source: path,
                })?;
            }
            Err(e) => failed_paths.push((path, e)),
        }
    }
    let mut errors = Vec::new();
    for (path, e) in failed_paths {
        let not_found = e
            .downcast_ref::<FetchError>()
            .is_some_and(FetchError::is_not_found);
        let other = indices.variant_of.get(&path);
        if not_found && other.is_some_and(|k| out.ok_variants.contains(k)) {
            continue;
        }
        errors.push(format!("{path}: {e:#}"));
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(failed("fetching indices", errors))
}

/// Index failures fail the run, except a listed variant upstream does not serve
/// while another variant of the same index is there. Checksum failures while the
/// upstream's Release moved on are the move, not damage.
async fn judge_failures(
    run: &Run<'_>,
    suites: &[Suite],
    indices: &mut Indices,
    ok_variants: &HashSet<String>,
    failures: Vec<(Wanted, StageError)>,
) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    let mut moved_suspect = false;
    for (w, e) in failures {
        let key = indices.variant_of.get(&w.path);
        if e.is_not_found() && key.is_some_and(|k| ok_variants.contains(k)) {
            // Debian lists uncompressed Packages it does not serve; apt copes, as
            // long as one listed variant of the index is there and verified.
            tracing::debug!(path = %w.path, "listed in Release but not served; another variant is");
            indices.wanted.remove(&w.path);
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
        errors.push(format!("{}: {}", w.path, chain(&e)));
    }
    if errors.is_empty() {
        return Ok(());
    }
    if moved_suspect {
        check_moved(&run.upstream, &run.mirror.upstream, suites).await?;
    }
    Err(failed("fetching indices", errors))
}

/// Pool entries sorted in memory before a run of them goes to disk: about 5 MB.
const SPILL_CHUNK: usize = 32_768;

/// The pool the staged Packages and Sources list, sorted by path through files in
/// `work` (the same path twice is one file if the entries agree, an error if not):
/// memory is a chunk of entries, whatever the size of the archive. The indices are
/// read on two threads at most (each holds a decompressor: a Pi's memory, not its
/// cores, is what runs out).
pub(super) async fn pool(
    run: &Run<'_>,
    work: &std::path::Path,
    suites: &[Suite],
    located: &HashMap<RelPath, PathBuf>,
    indices: &WantedSet,
    size_only_ok: bool,
) -> anyhow::Result<Pool> {
    let mut jobs: Vec<(String, IndexKind, PathBuf)> = Vec::new();
    for s in suites {
        for (kind, path) in indices_to_parse(s, located) {
            if let Some(file) = located.get(&path) {
                jobs.push((format!("suite {}: {}", s.name, path), kind, file.clone()));
            }
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, Vec<Listed>)>(8);
    let mut parsers = Vec::new();
    for t in 0..threads {
        let mine: Vec<(usize, (String, IndexKind, PathBuf))> = jobs
            .iter()
            .cloned()
            .enumerate()
            .filter(|(i, _)| i % threads == t)
            .collect();
        let tx = tx.clone();
        parsers.push(tokio::task::spawn_blocking(move || {
            parse_indices(mine, size_only_ok, &tx)
        }));
    }
    drop(tx);
    let mut spill = Spill::new(work, SPILL_CHUNK)?;
    let mut size_only = SizeOnlyPool {
        track: size_only_ok,
        ..SizeOnlyPool::default()
    };
    while let Some((job, batch)) = rx.recv().await {
        for listed in batch {
            let (path, size) = match &listed {
                Listed::Checked(f) => (&f.path, f.size),
                Listed::SizeOnly { path, size, .. } => (path, *size),
            };
            if let Some(have) = indices.get(path)
                && (have.size != size
                    || !matches!(&listed, Listed::Checked(f) if f.sha256 == have.sha256))
            {
                bail!("{path} is both an index and a pool file with other contents");
            }
            let f = match listed {
                Listed::Checked(f) => f,
                Listed::SizeOnly { path, size, md5 } => {
                    size_only
                        .add(path, size, md5)
                        .with_context(|| jobs[job].0.clone())?;
                    continue;
                }
            };
            size_only.checked(&f.path);
            let entry = Entry {
                size: f.size,
                sha256: f.sha256,
                gone_since: None,
            };
            spill
                .push(f.path, entry)
                .with_context(|| jobs[job].0.clone())?;
        }
    }
    for p in parsers {
        p.await.map_err(|e| anyhow!("index parser task: {e}"))??;
    }
    let (unverified, kept_unverified) = keep_size_only(run, &mut spill, size_only)?;
    Ok(Pool {
        sorted: spill.finish()?,
        unverified,
        kept_unverified,
    })
}

/// The pool files an unsigned repository lists without SHA256. In such a repository
/// the paths listed with one are remembered too (a path each: unsigned repositories
/// are vendors' small ones), so that a path listed both ways is the checked listing.
#[derive(Default)]
struct SizeOnlyPool {
    track: bool,
    files: HashMap<RelPath, (u64, Option<[u8; 16]>)>,
    checked: HashSet<RelPath>,
}

impl SizeOnlyPool {
    fn add(&mut self, path: RelPath, size: u64, md5: Option<[u8; 16]>) -> anyhow::Result<()> {
        if self.checked.contains(&path) {
            return Ok(());
        }
        match self.files.get(&path) {
            Some((other, _)) if *other != size => {
                bail!("{path} is listed with size {other} and {size}")
            }
            _ => {
                self.files.insert(path, (size, md5));
            }
        }
        Ok(())
    }

    fn checked(&mut self, path: &RelPath) {
        if self.track {
            self.files.remove(path);
            self.checked.insert(path.clone());
        }
    }
}

/// Pool files listed by size alone: the published copy is kept when its MD5 is the
/// one listed (a rebuilt package under the same name has another), the rest is
/// fetched by size. A file a crashed publish may have swapped in is never kept.
fn keep_size_only(
    run: &Run<'_>,
    spill: &mut Spill,
    size_only: SizeOnlyPool,
) -> anyhow::Result<(Vec<Unverified>, u64)> {
    let files = size_only.files;
    let paths: Vec<RelPath> = files.keys().cloned().collect();
    let published = run.published_entries(&paths)?;
    let mut fetch = Vec::new();
    let mut kept = 0;
    for (path, (size, md5)) in files {
        let held = published
            .get(&path)
            .filter(|e| e.size == size && !run.suspect.contains(&path))
            .filter(|_| md5.is_some_and(|m| published_md5(run, &path) == Some(m)));
        match held {
            Some(e) => {
                let entry = Entry {
                    gone_since: None,
                    ..e.clone()
                };
                spill.push(path, entry)?;
                kept += 1;
            }
            None => fetch.push(Unverified { path, size }),
        }
    }
    fetch.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((fetch, kept))
}

/// The MD5 of the published copy of `path`, if it can be read.
fn published_md5(run: &Run<'_>, path: &RelPath) -> Option<[u8; 16]> {
    use md5::{Digest, Md5};
    let c = run.current.as_ref()?;
    let mut file = std::fs::File::open(path.under(&c.dir)).ok()?;
    let mut hasher = Md5::new();
    std::io::copy(&mut file, &mut hasher).ok()?;
    Some(hasher.finalize().into())
}

/// Reads each index of `jobs` in turn, sending its pool files in batches.
fn parse_indices(
    jobs: Vec<(usize, (String, IndexKind, PathBuf))>,
    size_only_ok: bool,
    tx: &tokio::sync::mpsc::Sender<(usize, Vec<Listed>)>,
) -> anyhow::Result<()> {
    const BATCH: usize = 1024;
    for (job, (name, kind, file)) in jobs {
        let mut batch = Vec::with_capacity(BATCH);
        packages::listing_of(&file, kind, &name, size_only_ok, |f| {
            batch.push(f);
            if batch.len() == BATCH {
                // A closed channel: the reader stopped at an error of its own.
                let _ = tx.blocking_send((job, std::mem::take(&mut batch)));
            }
        })?;
        if !batch.is_empty() {
            let _ = tx.blocking_send((job, batch));
        }
    }
    Ok(())
}

/// If the upstream's signed Release differs from the one this run started from,
/// the index failures are the upstream moving, not damage.
async fn check_moved(upstream: &Upstream, base: &Url, suites: &[Suite]) -> anyhow::Result<()> {
    for s in suites {
        let url = file_url(base, &s.signed_path)?;
        if let Ok(Meta::Body { body, .. }) = upstream.get_meta(&url, MAX_RELEASE_BYTES, None).await
            && body != s.signed_bytes
        {
            return Err(UpstreamMoved { url: redact(&url) }.into());
        }
    }
    Ok(())
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
        // A flat repository's (or a hybrid suite's) indices sit beside its Release.
        let kind = if name.starts_with("Packages") && (dir.contains("binary-") || dir.is_empty()) {
            IndexKind::Packages
        } else if name.starts_with("Sources") && (dir.ends_with("source") || dir.is_empty()) {
            IndexKind::Sources
        } else {
            continue;
        };
        let Some(compression) = Compression::of(name) else {
            continue;
        };
        let Ok(path) = s.dir.file(f.path.as_str()) else {
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
