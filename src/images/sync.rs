//! One run of one image-tree mirror: listings -> checksums -> plan -> fetch -> publish.
//!
//! 1. The listings are crawled (only where the include patterns can match).
//! 2. Checksum files (`.sha256` sidecars, `SHA256SUMS`), signatures and OS list JSON
//!    are read; each file they vouch for gets its SHA256 (and size, from the OS list).
//!    Files the OS list references are mirrored even if no listing shows them.
//! 3. `keep_latest` drops old dated release directories the OS list no longer names.
//! 4. Files with a checksum are linked when the published snapshot has that content,
//!    else fetched and verified. Files without one are linked when the listing still
//!    shows the same size/date text, or a HEAD shows the same size and ETag or
//!    Last-Modified; else fetched and counted as unverified.
//! 5. Detached signatures are checked over the staged files (with `keyring`), the OS
//!    list copies are rewritten for `rewrite_base`, and the snapshot is published with
//!    one rename, exactly as for apt.
//!
//! Any failure before the rename leaves the served tree untouched; partial downloads
//! stay in `partial/` and resume next time, with If-Range.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use url::Url;

use super::crawl::{self, Found, Scope};
use super::oslist::OsList;
use super::records::{Record, Records};
use super::retain;
use super::sums;
use crate::apt::signature::{self, Keyring};
use crate::config::{ImagesMirror, Mirror};
use crate::fetch::{Placed, Stager, encode_path};
use crate::manifest::{Entry, Manifest};
use crate::plan::{self, PlanSummary, Wanted, WantedSet};
use crate::relpath::RelPath;
use crate::snapshot::{self, MirrorDirs};
use crate::state::MirrorState;
use crate::sync::{MirrorReport, RunContext, RunOutcome, failed};
use crate::upstream::{Expected, FetchError, Meta, Upstream, Validators, redact};

/// Checksum files, signatures and OS lists are read into memory; none is this big.
const MAX_META_BYTES: u64 = 64 << 20;

/// Nested `subitems_url` documents followed at most.
const MAX_OS_LISTS: usize = 64;

/// What vouches for a file's content.
#[derive(Debug, Clone)]
struct Vouch {
    sha256: [u8; 32],
    size: Option<u64>,
    /// Where the checksum came from, for a conflict message.
    from: String,
}

/// A small file read into memory this run.
struct MetaFile {
    /// As upstream serves it.
    bytes: Bytes,
    /// As this mirror publishes it (an OS list rewritten for `rewrite_base`).
    publish: Bytes,
    mtime: Option<SystemTime>,
    validators: Validators,
    /// Fetched this run (not read back from the published snapshot).
    fetched: bool,
}

/// A file no checksum vouches for, to be fetched.
struct Unverified {
    path: RelPath,
    size: u64,
}

pub async fn sync_images(
    ctx: &RunContext<'_>,
    mirror: &Mirror,
    images: &ImagesMirror,
) -> anyhow::Result<MirrorReport> {
    let started = Instant::now();
    let opts = ctx.options;
    let dirs = MirrorDirs::new(&ctx.global.root, &mirror.name);
    let current = dirs.current()?;
    let state = MirrorState::load(&dirs.base)?;
    let records = Records::load(&dirs.base);
    let upstream = Upstream::new(&mirror.network)?;
    let keyring = match &images.keyring {
        Some(p) => Some(std::sync::Arc::new(
            Keyring::from_file(p)?.with_policy(images.signature_policy.clone()),
        )),
        None => None,
    };
    let empty = Manifest::default();
    let published = current.as_ref().map_or(&empty, |c| &c.manifest);
    let concurrency = mirror.network.concurrency.get();
    let mut warnings = Vec::new();

    // 1. Listings.
    let scope = Scope {
        include: &images.include,
        include_set: &images.include_set,
        exclude_set: &images.exclude_set,
    };
    let phase = Instant::now();
    let (crawled, base) =
        crawl_root(&upstream, &mirror.upstream, &scope, images, concurrency).await?;
    if base != mirror.upstream {
        let w = format!(
            "upstream {} redirects to {}: mirrored from there; name it as upstream in the config",
            redact(&mirror.upstream),
            redact(&base)
        );
        ctx.reporter.on_warning(&mirror.name, &w);
        warnings.push(w);
    }
    let base = &base;
    // Names OS-list URLs may use for this tree: where it is, where the config says
    // it is, and the other names the operator declared.
    let bases: Vec<Url> = [base.clone(), mirror.upstream.clone()]
        .into_iter()
        .chain(images.aliases.iter().cloned())
        .collect();
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        listings = crawled.listings,
        files = crawled.files.len(),
        "crawled"
    );
    for w in crawled.warnings {
        ctx.reporter.on_warning(&mirror.name, &w);
        warnings.push(w);
    }
    let mut found: BTreeMap<RelPath, Found> = crawled
        .files
        .into_iter()
        .map(|f| (f.path.clone(), f))
        .collect();

    // 2. OS lists, checksum files and signatures.
    let reader = MetaReader {
        upstream: &upstream,
        base,
        current: current.as_ref().map(|c| (c.dir.as_path(), &c.manifest)),
        records: &records,
        verify_all: opts.verify_all,
        copies: upstream_copies(&dirs),
    };
    let mut meta: BTreeMap<RelPath, MetaFile> = BTreeMap::new();
    let mut vouched: HashMap<RelPath, Vouch> = HashMap::new();
    let mut os_lists: Vec<(RelPath, OsList)> = Vec::new();
    // Every image an OS list points at (kept by keep_latest), and the sizes the lists
    // give for those without a digest.
    let mut listed: HashSet<RelPath> = HashSet::new();
    let mut list_sizes: HashMap<RelPath, (u64, String)> = HashMap::new();
    let mut queue: Vec<RelPath> = found.keys().filter(|p| is_os_list(p)).cloned().collect();
    let mut seen_lists: HashSet<RelPath> = queue.iter().cloned().collect();
    while let Some(path) = queue.pop() {
        if os_lists.len() >= MAX_OS_LISTS {
            bail!("more than {MAX_OS_LISTS} OS list documents linked by subitems_url");
        }
        // Asked for every run (the published copy may be rewritten for this mirror,
        // so upstream's own is kept aside to answer a 304 with).
        let file = reader.fetch_os_list(&path).await?;
        let list = OsList::parse(&file.bytes, path.as_str())?;
        for image in list.images()? {
            // The operator's excludes hold for what the OS list offers too; its
            // copy then keeps pointing at upstream for that image.
            let Some(p) =
                under_base(&bases, &image.url).filter(|p| !images.exclude_set.is_match(p.as_str()))
            else {
                continue;
            };
            let from = format!("{} {}", path, image.at);
            listed.insert(p.clone());
            found
                .entry(p.clone())
                .or_insert_with(|| unlisted(&p, image.size));
            match image.sha256 {
                Some(sha256) => vouch(
                    &mut vouched,
                    p.clone(),
                    Vouch {
                        sha256,
                        size: image.size,
                        from,
                    },
                )?,
                // The real list gives only the size; the `.sha256` beside the image
                // is what vouches for its content (read below, a 404 allowed).
                None => {
                    if let Some(size) = image.size {
                        list_sizes.entry(p.clone()).or_insert((size, from));
                    }
                }
            }
        }
        for url in list.subitems_urls()? {
            match under_base(&bases, &url) {
                Some(p) if seen_lists.insert(p.clone()) => {
                    found.entry(p.clone()).or_insert_with(|| unlisted(&p, None));
                    queue.push(p);
                }
                Some(_) => {}
                None => {
                    tracing::info!(url = %redact(&url), "subitems_url outside upstream; not mirrored")
                }
            }
        }
        meta.insert(path.clone(), file);
        os_lists.push((path, list));
    }
    let list_paths: Vec<RelPath> = os_lists.iter().map(|(p, _)| p.clone()).collect();

    // 3. keep_latest, before any checksum file of a release it lets go is read. No
    // release an OS list points at is let go, digest or not.
    if let Some(keep) = images.keep_latest {
        let pinned: HashSet<&str> = listed.iter().map(RelPath::as_str).collect();
        let drop =
            retain::dated_dirs_to_drop(found.keys().map(RelPath::as_str), keep.get(), &pinned);
        if !drop.is_empty() {
            tracing::info!(dirs = drop.len(), "keep_latest leaves out older releases");
            found.retain(|p, _| !retain::under_any(p.as_str(), &drop));
            meta.retain(|p, _| !retain::under_any(p.as_str(), &drop));
        }
    }

    // The `.sha256` beside each list image no listing showed: read like any checksum
    // file, and mirrored beside the image when upstream has one.
    let mut optional: HashSet<RelPath> = HashSet::new();
    for p in &listed {
        let Ok(sidecar) = RelPath::new(&format!("{}.sha256", p.as_str())) else {
            continue;
        };
        if found.contains_key(p) && !found.contains_key(&sidecar) {
            let hint = found[p].hint.clone();
            found.insert(
                sidecar.clone(),
                Found {
                    path: sidecar.clone(),
                    hint,
                    size: None,
                },
            );
            optional.insert(sidecar);
        }
    }
    // A sidecar found missing last time, for an image the list still describes the
    // same way, is not asked for again.
    let mut absent: Vec<(RelPath, String)> = Vec::new();
    optional.retain(|p| {
        let hint = found.get(p).map(|f| f.hint.clone()).unwrap_or_default();
        let known_absent = !opts.verify_all
            && !hint.is_empty()
            && records
                .files
                .get(p.as_str())
                .is_some_and(|r| r.absent && r.hint == hint);
        if known_absent {
            found.remove(p);
            absent.push((p.clone(), hint));
        }
        !known_absent
    });
    let small: Vec<RelPath> = found
        .keys()
        .filter(|p| is_sums(p) || (keyring.is_some() && is_signature(p)))
        .cloned()
        .collect();
    let read: Vec<(RelPath, anyhow::Result<MetaFile>)> = futures_util::stream::iter(small)
        .map(|p| {
            let reader = &reader;
            let hint = found.get(&p).map(|f| f.hint.as_str()).unwrap_or("");
            async move {
                let file = reader.get(&p, hint).await;
                (p, file)
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    for (path, file) in read {
        let path = &path;
        let file = match file {
            Err(e) if optional.contains(path) && is_not_found(&e) => {
                if let Some(f) = found.remove(path) {
                    absent.push((path.clone(), f.hint));
                }
                continue;
            }
            other => other?,
        };
        if is_sums(path) {
            let text = std::str::from_utf8(&file.bytes)
                .map_err(|_| anyhow!("{path}: a checksum file that is not text"))?;
            let dir = path.parent().unwrap_or("");
            let sidecar_of = path.as_str().strip_suffix(".sha256");
            for line in sums::parse_sums(text, path.as_str())? {
                let target = match (line.name.as_str(), sidecar_of) {
                    ("", Some(of)) => of.to_string(),
                    ("", None) => continue,
                    (name, _) if dir.is_empty() => name.to_string(),
                    (name, _) => format!("{dir}/{name}"),
                };
                let Ok(target) = RelPath::new(&target) else {
                    bail!(
                        "{path} line {}: names {:?}, outside the tree",
                        line.line,
                        line.name
                    );
                };
                if !found.contains_key(&target) {
                    continue;
                }
                vouch(
                    &mut vouched,
                    target,
                    Vouch {
                        sha256: line.sha256,
                        size: None,
                        from: format!("{path} line {}", line.line),
                    },
                )?;
            }
        }
        meta.insert(path.clone(), file);
    }

    // The sizes OS lists give hold whatever else vouches for the image.
    for (p, (size, from)) in &list_sizes {
        if let Some(exact) = found.get(p).and_then(|f| f.size)
            && exact != *size
        {
            bail!("{p}: the listing says {exact} bytes, {from} says {size}");
        }
        if let Some(v) = vouched.get_mut(p) {
            v.size.get_or_insert(*size);
        }
    }

    // 4. Plan every file: link or fetch.
    let by_digest = published.by_digest();
    let mut wanted = WantedSet::default();
    let mut unverified: Vec<Unverified> = Vec::new();
    let mut kept_unverified = 0u64;
    let mut new_records: BTreeMap<String, Record> = BTreeMap::new();
    let mut recheck: HashSet<RelPath> = HashSet::new();
    for (path, hint) in absent {
        new_records.insert(
            path.to_string(),
            Record {
                hint,
                absent: true,
                ..Record::default()
            },
        );
    }
    // What only a HEAD can tell, asked `concurrency` at a time: the size of a
    // checksummed file the listing rounds, and whether a file no checksum vouches
    // for changed although its listing text did.
    let to_head: Vec<RelPath> = found
        .iter()
        .filter(|(path, f)| {
            if meta.contains_key(*path) {
                return false;
            }
            if let Some(v) = vouched.get(*path) {
                return v.size.or(f.size).is_none() && !by_digest.contains_key(&v.sha256);
            }
            let prior = records.files.get(path.as_str());
            let held = published.files.get(*path);
            match (prior, held) {
                (Some(r), Some(_)) => opts.verify_all || f.hint.is_empty() || r.hint != f.hint,
                // Held, but what it was taken with is lost: ask before fetching again.
                (None, Some(_)) => true,
                // Never held: fetched anyway, and the GET gives the validators.
                _ => f.size.is_none(),
            }
        })
        .map(|(p, _)| p.clone())
        .collect();
    let mut heads: HashMap<RelPath, crate::upstream::Head> = futures_util::stream::iter(to_head)
        .map(|p| {
            let upstream = &upstream;
            async move {
                let url = file_url(base, &p)?;
                let head = upstream.head(&url).await?;
                anyhow::Ok((p, head))
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let size_of = |head: &crate::upstream::Head| {
        head.size
            .ok_or_else(|| anyhow!("{}: upstream states no size", redact(&head.url)))
    };
    for (path, f) in &found {
        let record = Record {
            hint: f.hint.clone(),
            ..Record::default()
        };
        if let Some(m) = meta.get_mut(path) {
            // Read this run: its content is known exactly.
            let sha256: [u8; 32] = Sha256::digest(&m.bytes).into();
            if let Some(v) = vouched.get(path)
                && v.sha256 != sha256
            {
                bail!(
                    "{path}: {} says SHA256 {}, upstream serves {}",
                    v.from,
                    hex::encode(v.sha256),
                    hex::encode(sha256)
                );
            }
            new_records.insert(
                path.to_string(),
                Record {
                    etag: m.validators.etag.clone(),
                    last_modified: m.validators.last_modified.clone(),
                    ..record
                },
            );
            if let (Some(to), Some((_, list))) = (
                &images.rewrite_base,
                os_lists.iter().find(|(p, _)| p == path),
            ) {
                m.publish = Bytes::from(list.rewrite(&|u: &Url| {
                    let p = under_base(&bases, u)?;
                    found
                        .contains_key(&p)
                        .then(|| format!("{to}{}", encode_path(p.as_str())))
                }));
            }
            let publish_sha: [u8; 32] = Sha256::digest(&m.publish).into();
            if !m.fetched
                || published
                    .files
                    .get(path)
                    .is_some_and(|e| e.sha256 == publish_sha)
            {
                // Unchanged: linked like any other file.
                m.fetched = false;
                wanted.insert(Wanted {
                    path: path.clone(),
                    size: m.publish.len() as u64,
                    sha256: publish_sha,
                    source: path.clone(),
                })?;
            }
            continue;
        }
        if let Some(v) = vouched.get(path) {
            // Upstream changed the file (its listing text did) while its checksum
            // stayed: fetch it again, so that bytes the checksum no longer covers are
            // refused instead of going unnoticed behind the published copy.
            if records
                .files
                .get(path.as_str())
                .is_some_and(|r| !f.hint.is_empty() && !r.hint.is_empty() && r.hint != f.hint)
            {
                recheck.insert(path.clone());
            }
            let size = match v.size.or(f.size) {
                Some(s) => s,
                None => match (by_digest.get(&v.sha256), heads.get(path)) {
                    (Some(p), _) => published.files[*p].size,
                    (None, Some(head)) => size_of(head)?,
                    (None, None) => bail!("{path}: no size known"),
                },
            };
            if let Some(exact) = f.size
                && exact != size
            {
                bail!(
                    "{path}: the listing says {exact} bytes, {} says {size}",
                    v.from
                );
            }
            wanted.insert(Wanted {
                path: path.clone(),
                size,
                sha256: v.sha256,
                source: path.clone(),
            })?;
            new_records.insert(path.to_string(), record);
            continue;
        }
        // No checksum anywhere: compare what the listing and the server say.
        let prior = records.files.get(path.as_str());
        let held = published.files.get(path);
        if let (Some(r), Some(e)) = (prior, held)
            && !opts.verify_all
            && !f.hint.is_empty()
            && r.hint == f.hint
        {
            wanted.insert(Wanted {
                path: path.clone(),
                size: e.size,
                sha256: e.sha256,
                source: path.clone(),
            })?;
            new_records.insert(path.to_string(), r.clone());
            kept_unverified += 1;
            continue;
        }
        let Some(head) = heads.remove(path) else {
            // Not held before and its exact size listed: fetch; the GET's
            // validators are recorded.
            let Some(size) = f.size else {
                bail!("{path}: no size known");
            };
            unverified.push(Unverified {
                path: path.clone(),
                size,
            });
            new_records.insert(path.to_string(), record);
            continue;
        };
        let size = size_of(&head)?;
        let record = Record {
            etag: head.validators.etag.clone(),
            last_modified: head.validators.last_modified.clone(),
            ..record
        };
        match (prior, held) {
            (Some(r), Some(e)) if e.size == size && r.same_validators(&head.validators) => {
                wanted.insert(Wanted {
                    path: path.clone(),
                    size,
                    sha256: e.sha256,
                    source: path.clone(),
                })?;
                kept_unverified += 1;
            }
            _ => unverified.push(Unverified {
                path: path.clone(),
                size,
            }),
        }
        new_records.insert(path.to_string(), record);
    }
    let actions: Vec<plan::Action> = plan::plan_files(wanted.iter(), published, &by_digest)
        .into_iter()
        .map(|a| match a {
            plan::Action::Link { to, .. } if recheck.contains(&to.path) => plan::Action::Fetch(to),
            other => other,
        })
        .collect();
    drop(by_digest);
    let mut summary = PlanSummary::default();
    summary.add_actions(&actions);
    summary.fetch_files += unverified.len() as u64;
    summary.fetch_bytes += unverified.iter().map(|u| u.size).sum::<u64>();
    for m in meta.values().filter(|m| m.fetched) {
        summary.fetch_files += 1;
        summary.fetch_bytes += m.publish.len() as u64;
    }

    // What upstream no longer has (or keep_latest let go).
    let keep: HashSet<&RelPath> = found.keys().collect();
    let removals = plan::plan_removals(&keep, published, ctx.now.as_second(), ctx.global.grace);
    summary.add_removals(&removals);
    ctx.reporter.on_plan(&mirror.name, &summary);
    if let Some(why) =
        plan::deletes_too_much(&removals, published, ctx.global.max_delete_ratio, &|_| true)
        && !opts.allow_mass_delete
    {
        bail!(
            "{why}; refusing to publish (rerun with --allow-mass-delete if upstream really removed them)"
        );
    }
    let files_unverified = unverified.len() as u64 + kept_unverified;
    if !unverified.is_empty() {
        let w = unverified_warning(&unverified);
        ctx.reporter.on_warning(&mirror.name, &w);
        warnings.push(w);
    }
    if opts.dry_run {
        return Ok(MirrorReport {
            name: mirror.name.clone(),
            outcome: RunOutcome::DryRun,
            plan: summary,
            grace: removals.grace_ends(ctx.global.grace),
            requests: upstream.requests(),
            seconds: started.elapsed().as_secs_f64(),
            files_unverified,
            warnings,
            ..MirrorReport::default()
        });
    }
    // Files that were in grace already stay as they were: still the same snapshot.
    let nothing_changed = summary.fetch_files == 0
        && removals.newly_gone.is_empty()
        && removals.dropped.is_empty()
        && current.is_some()
        && !opts.verify_all;
    if nothing_changed {
        save_records(&dirs, new_records);
        save_upstream_copies(&dirs, &meta, &list_paths);
        return Ok(MirrorReport {
            name: mirror.name.clone(),
            outcome: RunOutcome::Unchanged,
            snapshot: current.map(|c| c.id),
            requests: upstream.requests(),
            seconds: started.elapsed().as_secs_f64(),
            files_unverified,
            warnings,
            ..MirrorReport::default()
        });
    }

    // 5. Stage.
    dirs.create()?;
    let staging = dirs.staging.clone();
    snapshot::check_free_space(
        &staging,
        plan::fetch_bytes(&actions) + unverified.iter().map(|u| u.size).sum::<u64>(),
    )?;
    let stager = Stager {
        upstream: &upstream,
        base_url: base,
        staging: &staging,
        partial: &dirs.partial,
        published: current.as_ref().map(|c| c.dir.as_path()),
        concurrency,
        reporter: ctx.reporter,
        verify_links: opts.verify_all,
    };
    let mut received = 0u64;
    let mut fetched_files = 0u64;
    let mut fetched_paths: HashSet<RelPath> = HashSet::new();
    let mut errors = Vec::new();
    let mut tolerated: Vec<RelPath> = Vec::new();
    stager
        .run_each(actions, &mut |o| match o.result {
            Ok(Placed::Fetched { received: n }) => {
                received += n;
                fetched_files += 1;
                fetched_paths.insert(o.wanted.path);
            }
            Ok(_) => {}
            Err(e) if images.tolerate.is_match(o.wanted.path.as_str()) => {
                tolerated.push(o.wanted.path.clone());
                warnings.push(format!("tolerated failure: {}: {e}", o.wanted.path));
            }
            Err(e) => errors.push(format!("{}: {}", o.wanted.path, crate::sync::chain(&e))),
        })
        .await;
    let mut manifest = Manifest::default();
    let results = fetch_unverified(&upstream, base, &dirs, ctx, concurrency, unverified).await;
    for (path, result) in results {
        match result {
            Ok((n, sha256, size, v)) => {
                received += n;
                fetched_files += 1;
                fetched_paths.insert(path.clone());
                if let Some(r) = new_records.get_mut(path.as_str()) {
                    r.etag = v.etag;
                    r.last_modified = v.last_modified;
                }
                manifest.files.insert(
                    path,
                    Entry {
                        size,
                        sha256,
                        gone_since: None,
                    },
                );
            }
            Err(e) if images.tolerate.is_match(path.as_str()) => {
                warnings.push(format!("tolerated failure: {path}: {e}"));
                tolerated.push(path);
            }
            Err(e) => errors.push(format!("{path}: {e:#}")),
        }
    }
    if !errors.is_empty() {
        return Err(failed("fetching images", errors));
    }
    for path in &tolerated {
        wanted.remove(path);
        new_records.remove(path.as_str());
        if let (Some(c), Some(e)) = (&current, published.files.get(path)) {
            snapshot::link_file(&path.under(&c.dir), &path.under(&staging))?;
            manifest.files.insert(path.clone(), e.clone());
        }
    }
    for w in wanted.iter() {
        manifest.files.insert(w.path.clone(), Entry::from(w));
    }
    if let Some(c) = &current {
        for (p, _) in &removals.kept {
            snapshot::link_file(&p.under(&c.dir), &p.under(&staging))?;
        }
    }
    for (p, e) in &removals.kept {
        manifest.files.insert(p.clone(), e.clone());
    }

    // Small files read this run, OS lists rewritten for this mirror.
    for (path, m) in &meta {
        if !m.fetched {
            continue;
        }
        let bytes = &m.publish;
        snapshot::write_file(&path.under(&staging), bytes, m.mtime)?;
        received += m.bytes.len() as u64;
        fetched_files += 1;
        fetched_paths.insert(path.clone());
        manifest.files.insert(
            path.clone(),
            Entry {
                size: bytes.len() as u64,
                sha256: Sha256::digest(bytes).into(),
                gone_since: None,
            },
        );
    }
    // Detached signatures over what changed.
    if let Some(keyring) = &keyring {
        check_signatures(
            keyring,
            &meta,
            &manifest,
            &fetched_paths,
            &staging,
            opts.verify_all,
        )
        .await?;
    }

    let id = dirs.new_id(ctx.now);
    let files_total = manifest.files.len() as u64;
    snapshot::publish_staging(&dirs, &id, manifest).await?;
    let pruned = snapshot::prune(&dirs, ctx.global.keep_snapshots.get())?;
    let _ = std::fs::remove_dir_all(&dirs.partial)
        .and_then(|()| std::fs::create_dir_all(&dirs.partial));
    save_records(&dirs, new_records);
    save_upstream_copies(&dirs, &meta, &list_paths);
    let mut new_state = state;
    new_state.config_fingerprint = None;
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
        files_unverified,
        requests: upstream.requests(),
        seconds: started.elapsed().as_secs_f64(),
        warnings,
        pruned,
        upstream_date: None,
        grace: removals.grace_ends(ctx.global.grace),
    })
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

fn save_records(dirs: &MirrorDirs, files: BTreeMap<String, Record>) {
    if let Err(e) = (Records { files }).save(&dirs.base) {
        tracing::warn!(error = %e, "could not record the listing hints; next run checks every file again");
    }
}

/// Adds a checksum for `path`, refusing two sources that disagree.
fn vouch(vouched: &mut HashMap<RelPath, Vouch>, path: RelPath, v: Vouch) -> anyhow::Result<()> {
    match vouched.get_mut(&path) {
        Some(have) if have.sha256 != v.sha256 => bail!(
            "{path}: {} says SHA256 {} but {} says {}",
            have.from,
            hex::encode(have.sha256),
            v.from,
            hex::encode(v.sha256)
        ),
        Some(have) => {
            if have.size.is_none() {
                have.size = v.size;
            }
        }
        None => {
            vouched.insert(path, v);
        }
    }
    Ok(())
}

/// A file referenced (by an OS list) that no listing showed. What the list says of
/// it stands in for a listing's size/date text: while the list says the same, the
/// published copy is the one the list means, and costs no request.
fn unlisted(path: &RelPath, listed_size: Option<u64>) -> Found {
    let hint = listed_size.map_or_else(String::new, |size| format!("OS list: {size} bytes"));
    Found {
        path: path.clone(),
        hint,
        size: listed_size,
    }
}

/// A 404 (or an HTML page standing in for one).
fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<FetchError>()
        .is_some_and(FetchError::is_not_found)
}

fn is_os_list(p: &RelPath) -> bool {
    let name = p.file_name();
    name.starts_with("os_list") && name.ends_with(".json")
}

fn is_sums(p: &RelPath) -> bool {
    let name = p.file_name();
    name.ends_with(".sha256") || matches!(name, "SHA256SUMS" | "sha256sums" | "SHA256SUMS.txt")
}

fn is_signature(p: &RelPath) -> bool {
    let name = p.file_name();
    [".sig", ".gpg", ".asc"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The path of `url` below the first of `bases` it is below.
fn under_base(bases: &[Url], url: &Url) -> Option<RelPath> {
    bases.iter().find_map(|b| path_under(b, url))
}

/// Crawls the tree; a root that redirects to another place (a host rename such as
/// downloads.raspberrypi.org -> .com) is followed once, and that place becomes the
/// base for listings and files. Returns the crawl and the base used.
async fn crawl_root(
    upstream: &Upstream,
    configured: &Url,
    scope: &Scope<'_>,
    images: &ImagesMirror,
    concurrency: usize,
) -> anyhow::Result<(crawl::Crawl, Url)> {
    match crawl::crawl(upstream, configured, scope, images.max_files, concurrency).await {
        Err(crawl::CrawlError::Escaped { url, target, .. }) if url == redact(configured) => {
            let mut moved = *target;
            moved.set_query(None);
            moved.set_fragment(None);
            if !moved.path().ends_with('/') {
                let path = format!("{}/", moved.path());
                moved.set_path(&path);
            }
            let crawled =
                crawl::crawl(upstream, &moved, scope, images.max_files, concurrency).await?;
            Ok((crawled, moved))
        }
        other => Ok((other?, configured.clone())),
    }
}

/// The path of `url` below `base`, if it is below it.
fn path_under(base: &Url, url: &Url) -> Option<RelPath> {
    if url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    let rest = url.as_str().strip_prefix(base.as_str())?;
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()?;
    RelPath::new(&decoded).ok()
}

fn file_url(base: &Url, path: &RelPath) -> anyhow::Result<Url> {
    base.join(&encode_path(path.as_str()))
        .with_context(|| format!("joining {path} to {}", redact(base)))
}

/// Reads small files: from the published snapshot when the listing shows them
/// unchanged, else from upstream.
struct MetaReader<'a> {
    upstream: &'a Upstream,
    base: &'a Url,
    current: Option<(&'a std::path::Path, &'a Manifest)>,
    records: &'a Records,
    verify_all: bool,
    /// Upstream's own copies of the OS lists, as the last publish took them.
    copies: std::path::PathBuf,
}

/// Where upstream's OS lists are kept between runs, named by path digest.
fn upstream_copies(dirs: &MirrorDirs) -> std::path::PathBuf {
    dirs.base.join("os-lists")
}

fn copy_name(path: &RelPath) -> String {
    hex::encode(Sha256::digest(path.as_str()))
}

/// True if a conditional request on these validators can be trusted: web servers
/// date files (and derive ETags) to the second, so a file changed within the same
/// second as the copy we kept would still answer 304. Only a Last-Modified clearly
/// older than our copy vouches for it.
fn validators_settled(r: &Record, kept: &std::path::Path) -> bool {
    let Some(lm) = r
        .last_modified
        .as_deref()
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    std::fs::metadata(kept)
        .and_then(|m| m.modified())
        .is_ok_and(|taken| lm + std::time::Duration::from_secs(2) < taken)
}

/// Keeps upstream's OS lists for the next run's conditional requests; written only
/// after a publish, so they always match the validators recorded with it.
fn save_upstream_copies(dirs: &MirrorDirs, meta: &BTreeMap<RelPath, MetaFile>, lists: &[RelPath]) {
    let dir = upstream_copies(dirs);
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    for path in lists {
        if let Some(m) = meta.get(path) {
            let _ = std::fs::write(dir.join(copy_name(path)), &m.bytes);
        }
    }
}

impl MetaReader<'_> {
    /// An OS list: conditionally, when upstream's copy from the last publish is kept.
    async fn fetch_os_list(&self, path: &RelPath) -> anyhow::Result<MetaFile> {
        let kept = self.copies.join(copy_name(path));
        if !self.verify_all
            && let Some(r) = self.records.files.get(path.as_str())
            && validators_settled(r, &kept)
            && let Ok(bytes) = std::fs::read(&kept)
        {
            let known = Validators {
                etag: r.etag.clone(),
                last_modified: r.last_modified.clone(),
                content_sha256: None,
            };
            let url = file_url(self.base, path)?;
            let answer = self
                .upstream
                .get_meta(&url, MAX_META_BYTES, Some(&known))
                .await?;
            if let Meta::NotModified = answer {
                let bytes = Bytes::from(bytes);
                return Ok(MetaFile {
                    publish: bytes.clone(),
                    bytes,
                    mtime: None,
                    validators: known,
                    // Compared with the published copy after rewriting, as if fetched.
                    fetched: true,
                });
            }
            return meta_file(path, &url, answer);
        }
        self.fetch(path).await
    }

    /// A small file; the published copy serves while the listing (or OS list) shows
    /// the same `hint` it showed when that copy was taken.
    async fn get(&self, path: &RelPath, hint: &str) -> anyhow::Result<MetaFile> {
        if !self.verify_all
            && let Some((dir, manifest)) = self.current
            && let Some(entry) = manifest.files.get(path)
            && let Some(r) = self.records.files.get(path.as_str())
            && !r.hint.is_empty()
            && r.hint == hint
        {
            let file = path.under(dir);
            if let Ok(bytes) = std::fs::read(&file)
                && bytes.len() as u64 == entry.size
                && <[u8; 32]>::from(Sha256::digest(&bytes)) == entry.sha256
            {
                let bytes = Bytes::from(bytes);
                return Ok(MetaFile {
                    publish: bytes.clone(),
                    bytes,
                    mtime: None,
                    validators: Validators {
                        etag: r.etag.clone(),
                        last_modified: r.last_modified.clone(),
                        content_sha256: None,
                    },
                    fetched: false,
                });
            }
        }
        self.fetch(path).await
    }

    async fn fetch(&self, path: &RelPath) -> anyhow::Result<MetaFile> {
        let url = file_url(self.base, path)?;
        let answer = self.upstream.get_meta(&url, MAX_META_BYTES, None).await?;
        meta_file(path, &url, answer)
    }
}

/// A small file as a GET brought it.
fn meta_file(path: &RelPath, url: &Url, answer: Meta) -> anyhow::Result<MetaFile> {
    match answer {
        Meta::Body {
            body,
            validators,
            last_modified,
            content_type,
            ..
        } => {
            if content_type.is_some_and(|t| t.starts_with("text/html"))
                && !path.as_str().ends_with(".html")
            {
                return Err(FetchError::SoftNotFound { url: redact(url) }.into());
            }
            Ok(MetaFile {
                publish: body.clone(),
                bytes: body,
                mtime: last_modified,
                validators,
                fetched: true,
            })
        }
        Meta::NotModified => bail!("{}: 304 to an unconditional request", redact(url)),
    }
}

type FetchResult = anyhow::Result<(u64, [u8; 32], u64, Validators)>;

/// Downloads files no checksum vouches for, `concurrency` at a time; partial files
/// are named by path and resumed only when If-Range vouches for them.
async fn fetch_unverified(
    upstream: &Upstream,
    base: &Url,
    dirs: &MirrorDirs,
    ctx: &RunContext<'_>,
    concurrency: usize,
    files: Vec<Unverified>,
) -> Vec<(RelPath, FetchResult)> {
    let out = Mutex::new(Vec::new());
    futures_util::stream::iter(files)
        .for_each_concurrent(concurrency.max(1), |u| {
            let out = &out;
            async move {
                let result = async {
                    let url = file_url(base, &u.path)?;
                    let tmp = dirs.partial.join(format!(
                        "u-{}",
                        hex::encode(Sha256::digest(u.path.as_str()))
                    ));
                    ctx.reporter.on_fetch_start(u.path.as_str(), u.size);
                    let reporter = ctx.reporter;
                    let progress = move |n: u64| reporter.on_progress(n);
                    let d = upstream
                        .download(
                            &url,
                            &tmp,
                            Expected {
                                size: u.size,
                                sha256: None,
                            },
                            &progress,
                        )
                        .await?;
                    let dest = u.path.under(&dirs.staging);
                    tokio::task::spawn_blocking(move || snapshot::install_file(&tmp, &dest))
                        .await
                        .map_err(|e| anyhow!("staging task: {e}"))??;
                    ctx.reporter.on_fetch_done(u.path.as_str());
                    Ok((d.received, d.sha256, u.size, d.validators))
                }
                .await;
                out.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((u.path, result));
            }
        })
        .await;
    out.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Checks each detached signature (`X.sig`, `X.gpg`, `X.asc`) whose file `X` is
/// mirrored, where either changed this run (or all, with --verify-all).
async fn check_signatures(
    keyring: &std::sync::Arc<Keyring>,
    meta: &BTreeMap<RelPath, MetaFile>,
    manifest: &Manifest,
    fetched: &HashSet<RelPath>,
    staging: &std::path::Path,
    verify_all: bool,
) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for (sig_path, sig) in meta {
        if !is_signature(sig_path) {
            continue;
        }
        let Some(target) = [".sig", ".gpg", ".asc"]
            .iter()
            .find_map(|ext| sig_path.as_str().strip_suffix(ext))
            .and_then(|t| RelPath::new(t).ok())
        else {
            continue;
        };
        if !manifest.files.contains_key(&target) {
            continue;
        }
        if !verify_all && !fetched.contains(&target) && !fetched.contains(sig_path) {
            continue;
        }
        let file = target.under(staging);
        let bytes = sig.bytes.clone();
        let keyring = keyring.clone();
        let result = tokio::task::spawn_blocking(move || {
            signature::verify_detached_file(&keyring, &file, &bytes)
        })
        .await
        .map_err(|e| anyhow!("signature check task: {e}"))?;
        match result {
            Ok(signer) => tracing::debug!(path = %target, %signer, "signature good"),
            Err(e) => errors.push(format!("{target}: {sig_path}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(failed("checking signatures", errors))
    }
}
