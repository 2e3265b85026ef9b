//! File by file, what the next snapshot takes: a file a checksum vouches for is
//! linked when the published snapshot has that content, else fetched and verified; a
//! file no checksum vouches for is kept while the listing (or a HEAD) shows it
//! unchanged, else fetched by size and counted as unverified.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use url::Url;

use super::base::under_base;
use super::crawl::Found;
use super::records::{Record, Records};
use super::vouch::Tree;
use crate::config::ImagesMirror;
use crate::fetch::encode_path;
use crate::fetch::file_url;
use crate::manifest::Manifest;
use crate::pipeline::{Run, Unverified};
use crate::plan::{Wanted, WantedSet};
use crate::relpath::RelPath;
use crate::upstream::{Head, redact};

/// What the decisions come to.
#[derive(Default)]
pub(super) struct Decisions {
    pub wanted: WantedSet,
    pub unverified: Vec<Unverified>,
    pub kept_unverified: u64,
    /// Fetched again although the published copy matches their checksum.
    pub recheck: HashSet<RelPath>,
    /// What the next run compares with (hints, validators).
    pub records: BTreeMap<String, Record>,
}

/// Decides every file of the tree.
pub(super) async fn decide(
    run: &Run<'_>,
    tree: &mut Tree,
    records: &Records,
    images: &ImagesMirror,
    base: &Url,
) -> anyhow::Result<Decisions> {
    let published = run.published();
    let by_digest = published.by_digest();
    let mut out = Decisions::default();
    for (path, hint) in std::mem::take(&mut tree.absent) {
        let record = Record {
            hint,
            absent: true,
            ..Record::default()
        };
        out.records.insert(path.to_string(), record);
    }
    let verify_all = run.ctx.options.verify_all;
    let to_head = to_head(tree, records, published, &by_digest, verify_all);
    let mut heads = heads(run, base, to_head).await?;
    let found = std::mem::take(&mut tree.found);
    for (path, f) in &found {
        if tree.meta.contains_key(path) {
            small_file(tree, path, f, images, &found, published, &mut out)?;
        } else if tree.vouched.contains_key(path) {
            let size = vouched_size(tree, path, f, published, &by_digest, &heads)?;
            vouched_file(tree, path, f, size, records, &mut out)?;
        } else {
            let head = heads.remove(path);
            unvouched_file(path, f, head, records, published, verify_all, &mut out)?;
        }
    }
    tree.found = found;
    Ok(out)
}

/// What only a HEAD can tell: the size of a checksummed file the listing rounds,
/// and whether a file no checksum vouches for changed although its listing text did.
fn to_head(
    tree: &Tree,
    records: &Records,
    published: &Manifest,
    by_digest: &HashMap<[u8; 32], &RelPath>,
    verify_all: bool,
) -> Vec<RelPath> {
    tree.found
        .iter()
        .filter(|(path, f)| {
            if tree.meta.contains_key(*path) {
                return false;
            }
            if let Some(v) = tree.vouched.get(*path) {
                return v.size.or(f.size).is_none() && !by_digest.contains_key(&v.sha256);
            }
            let prior = records.files.get(path.as_str());
            let held = published.files.get(*path);
            match (prior, held) {
                (Some(r), Some(_)) => verify_all || f.hint.is_empty() || r.hint != f.hint,
                // Held, but what it was taken with is lost: ask before fetching again.
                (None, Some(_)) => true,
                // Never held: fetched anyway, and the GET gives the validators.
                _ => f.size.is_none(),
            }
        })
        .map(|(p, _)| p.clone())
        .collect()
}

/// HEADs, `concurrency` at a time.
async fn heads(
    run: &Run<'_>,
    base: &Url,
    paths: Vec<RelPath>,
) -> anyhow::Result<HashMap<RelPath, Head>> {
    let concurrency = run.mirror.network.concurrency.get();
    futures_util::stream::iter(paths)
        .map(|p| async move {
            let url = file_url(base, &p)?;
            let head = run.upstream.head(&url).await?;
            anyhow::Ok((p, head))
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

fn size_of(head: &Head) -> anyhow::Result<u64> {
    head.size
        .ok_or_else(|| anyhow!("{}: upstream states no size", redact(&head.url)))
}

/// A small file read this run: its content is known exactly. An OS list is
/// rewritten for `rewrite_base`; unchanged, it is linked like any other file.
fn small_file(
    tree: &mut Tree,
    path: &RelPath,
    f: &Found,
    images: &ImagesMirror,
    found: &BTreeMap<RelPath, Found>,
    published: &Manifest,
    out: &mut Decisions,
) -> anyhow::Result<()> {
    let Some(m) = tree.meta.get_mut(path) else {
        return Ok(());
    };
    let sha256: [u8; 32] = Sha256::digest(&m.bytes).into();
    if let Some(v) = tree.vouched.get(path)
        && v.sha256 != sha256
    {
        bail!(
            "{path}: {} says SHA256 {}, upstream serves {}",
            v.from,
            hex::encode(v.sha256),
            hex::encode(sha256)
        );
    }
    let record = Record {
        hint: f.hint.clone(),
        etag: m.validators.etag.clone(),
        last_modified: m.validators.last_modified.clone(),
        ..Record::default()
    };
    out.records.insert(path.to_string(), record);
    if let (Some(to), Some((_, list))) = (
        &images.rewrite_base,
        tree.os_lists.iter().find(|(p, _)| p == path),
    ) {
        let bases = &tree.bases;
        m.publish = Bytes::from(list.rewrite(&|u: &Url| {
            let p = under_base(bases, u)?;
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
        m.fetched = false;
        out.wanted.insert(Wanted {
            path: path.clone(),
            size: m.publish.len() as u64,
            sha256: publish_sha,
            source: path.clone(),
        })?;
    }
    Ok(())
}

/// The size of a file a checksum vouches for: stated, else the published copy's
/// with the same content, else what a HEAD said.
fn vouched_size(
    tree: &Tree,
    path: &RelPath,
    f: &Found,
    published: &Manifest,
    by_digest: &HashMap<[u8; 32], &RelPath>,
    heads: &HashMap<RelPath, Head>,
) -> anyhow::Result<u64> {
    let Some(v) = tree.vouched.get(path) else {
        bail!("{path}: no checksum");
    };
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
    Ok(size)
}

/// A file a checksum vouches for. Upstream changed it (its listing text did) while
/// its checksum stayed: fetch it again, so that bytes the checksum no longer covers
/// are refused instead of going unnoticed behind the published copy.
fn vouched_file(
    tree: &Tree,
    path: &RelPath,
    f: &Found,
    size: u64,
    records: &Records,
    out: &mut Decisions,
) -> anyhow::Result<()> {
    let Some(v) = tree.vouched.get(path) else {
        return Ok(());
    };
    if records
        .files
        .get(path.as_str())
        .is_some_and(|r| !f.hint.is_empty() && !r.hint.is_empty() && r.hint != f.hint)
    {
        out.recheck.insert(path.clone());
    }
    out.wanted.insert(Wanted {
        path: path.clone(),
        size,
        sha256: v.sha256,
        source: path.clone(),
    })?;
    let record = Record {
        hint: f.hint.clone(),
        ..Record::default()
    };
    out.records.insert(path.to_string(), record);
    Ok(())
}

/// No checksum anywhere: compare what the listing and the server say.
fn unvouched_file(
    path: &RelPath,
    f: &Found,
    head: Option<Head>,
    records: &Records,
    published: &Manifest,
    verify_all: bool,
    out: &mut Decisions,
) -> anyhow::Result<()> {
    let prior = records.files.get(path.as_str());
    let held = published.files.get(path);
    let keep = |out: &mut Decisions, size: u64, sha256: [u8; 32]| {
        out.kept_unverified += 1;
        out.wanted.insert(Wanted {
            path: path.clone(),
            size,
            sha256,
            source: path.clone(),
        })
    };
    if let (Some(r), Some(e)) = (prior, held)
        && !verify_all
        && !f.hint.is_empty()
        && r.hint == f.hint
    {
        keep(out, e.size, e.sha256)?;
        out.records.insert(path.to_string(), r.clone());
        return Ok(());
    }
    let record = Record {
        hint: f.hint.clone(),
        ..Record::default()
    };
    let Some(head) = head else {
        // Not held before and its exact size listed: fetch; the GET's validators
        // are recorded.
        let Some(size) = f.size else {
            bail!("{path}: no size known");
        };
        out.unverified.push(Unverified {
            path: path.clone(),
            size,
        });
        out.records.insert(path.to_string(), record);
        return Ok(());
    };
    let size = size_of(&head)?;
    let record = Record {
        etag: head.validators.etag.clone(),
        last_modified: head.validators.last_modified.clone(),
        ..record
    };
    match (prior, held) {
        (Some(r), Some(e)) if e.size == size && r.same_validators(&head.validators) => {
            keep(out, size, e.sha256)?;
        }
        _ => out.unverified.push(Unverified {
            path: path.clone(),
            size,
        }),
    }
    out.records.insert(path.to_string(), record);
    Ok(())
}
