//! What vouches for each file of an image tree: the OS lists (digests and sizes, and
//! the images they point at), `SHA256SUMS` files and `.sha256` sidecars. Two sources
//! that disagree stop the run.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{anyhow, bail};
use futures_util::StreamExt;
use url::Url;

use super::base::under_base;
use super::crawl::Found;
use super::meta::{MetaFile, MetaReader};
use super::oslist::OsList;
use super::records::Records;
use super::retain;
use super::signatures::is_signature;
use super::sums;
use crate::config::ImagesMirror;
use crate::relpath::RelPath;
use crate::upstream::{FetchError, redact};

/// What the run learns of the tree before deciding file by file.
#[derive(Default)]
pub(super) struct Tree {
    /// Every file the next snapshot may hold: listed, or pointed at by an OS list.
    pub found: BTreeMap<RelPath, Found>,
    /// Small files read this run.
    pub meta: BTreeMap<RelPath, MetaFile>,
    pub vouched: HashMap<RelPath, Vouch>,
    pub os_lists: Vec<(RelPath, OsList)>,
    /// Every image an OS list points at (kept by keep_latest).
    pub listed: HashSet<RelPath>,
    /// The sizes the lists give for images without a digest, and which list says so.
    pub list_sizes: HashMap<RelPath, (u64, String)>,
    /// Sidecars upstream does not have, with the hint they were missing under.
    pub absent: Vec<(RelPath, String)>,
    /// Names OS-list URLs may use for this tree.
    pub bases: Vec<Url>,
}

/// Nested `subitems_url` documents followed at most.
const MAX_OS_LISTS: usize = 64;

/// What vouches for a file's content.
#[derive(Debug, Clone)]
pub(super) struct Vouch {
    pub sha256: [u8; 32],
    pub size: Option<u64>,
    /// Where the checksum came from, for a conflict message.
    pub from: String,
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

pub(super) fn is_os_list(p: &RelPath) -> bool {
    let name = p.file_name();
    name.starts_with("os_list") && name.ends_with(".json")
}

pub(super) fn is_sums(p: &RelPath) -> bool {
    let name = p.file_name();
    name.ends_with(".sha256") || matches!(name, "SHA256SUMS" | "sha256sums" | "SHA256SUMS.txt")
}

/// Reads every OS list (and those their `subitems_url` link), adding the images they
/// point at to the tree and vouching for those with a digest.
pub(super) async fn read_os_lists(
    reader: &MetaReader<'_>,
    tree: &mut Tree,
    images: &ImagesMirror,
) -> anyhow::Result<()> {
    let mut queue: Vec<RelPath> = tree
        .found
        .keys()
        .filter(|p| is_os_list(p))
        .cloned()
        .collect();
    let mut seen: HashSet<RelPath> = queue.iter().cloned().collect();
    while let Some(path) = queue.pop() {
        if tree.os_lists.len() >= MAX_OS_LISTS {
            bail!("more than {MAX_OS_LISTS} OS list documents linked by subitems_url");
        }
        // Asked for every run (the published copy may be rewritten for this mirror,
        // so upstream's own is kept aside to answer a 304 with).
        let file = reader.fetch_os_list(&path).await?;
        let list = OsList::parse(&file.bytes, path.as_str())?;
        add_list_images(tree, &path, &list, images)?;
        for url in list.subitems_urls()? {
            match under_base(&tree.bases, &url) {
                Some(p) if seen.insert(p.clone()) => {
                    tree.found
                        .entry(p.clone())
                        .or_insert_with(|| unlisted(&p, None));
                    queue.push(p);
                }
                Some(_) => {}
                None => {
                    tracing::info!(url = %redact(&url), "subitems_url outside upstream; not mirrored")
                }
            }
        }
        tree.meta.insert(path.clone(), file);
        tree.os_lists.push((path, list));
    }
    Ok(())
}

/// The images one OS list points at.
fn add_list_images(
    tree: &mut Tree,
    path: &RelPath,
    list: &OsList,
    images: &ImagesMirror,
) -> anyhow::Result<()> {
    for image in list.images()? {
        // The operator's excludes hold for what the OS list offers too; its copy
        // then keeps pointing at upstream for that image.
        let Some(p) = under_base(&tree.bases, &image.url)
            .filter(|p| !images.exclude_set.is_match(p.as_str()))
        else {
            continue;
        };
        let from = format!("{} {}", path, image.at);
        tree.listed.insert(p.clone());
        tree.found
            .entry(p.clone())
            .or_insert_with(|| unlisted(&p, image.size));
        match image.sha256 {
            Some(sha256) => vouch(
                &mut tree.vouched,
                p.clone(),
                Vouch {
                    sha256,
                    size: image.size,
                    from,
                },
            )?,
            // The real list gives only the size; the `.sha256` beside the image is
            // what vouches for its content (read below, a 404 allowed).
            None => {
                if let Some(size) = image.size {
                    tree.list_sizes.entry(p.clone()).or_insert((size, from));
                }
            }
        }
    }
    Ok(())
}

/// `keep_latest`, before any checksum file of a release it lets go is read. No
/// release an OS list points at is let go, digest or not.
pub(super) fn keep_latest(tree: &mut Tree, images: &ImagesMirror) {
    let Some(keep) = images.keep_latest else {
        return;
    };
    let pinned: HashSet<&str> = tree.listed.iter().map(RelPath::as_str).collect();
    let drop =
        retain::dated_dirs_to_drop(tree.found.keys().map(RelPath::as_str), keep.get(), &pinned);
    if !drop.is_empty() {
        tracing::info!(dirs = drop.len(), "keep_latest leaves out older releases");
        tree.found
            .retain(|p, _| !retain::under_any(p.as_str(), &drop));
        tree.meta
            .retain(|p, _| !retain::under_any(p.as_str(), &drop));
    }
}

/// The `.sha256` beside each list image no listing showed: read like any checksum
/// file, and mirrored beside the image when upstream has one. Returns those still to
/// ask for; a sidecar found missing last time, for an image the list still describes
/// the same way, is not asked for again.
pub(super) fn sidecars(tree: &mut Tree, records: &Records, verify_all: bool) -> HashSet<RelPath> {
    let mut optional: HashSet<RelPath> = HashSet::new();
    for p in &tree.listed {
        let Ok(sidecar) = RelPath::new(&format!("{}.sha256", p.as_str())) else {
            continue;
        };
        if let Some(image) = tree.found.get(p)
            && !tree.found.contains_key(&sidecar)
        {
            let hint = image.hint.clone();
            tree.found.insert(
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
    optional.retain(|p| {
        let hint = tree
            .found
            .get(p)
            .map(|f| f.hint.clone())
            .unwrap_or_default();
        let known_absent = !verify_all
            && !hint.is_empty()
            && records
                .files
                .get(p.as_str())
                .is_some_and(|r| r.absent && r.hint == hint);
        if known_absent {
            tree.found.remove(p);
            tree.absent.push((p.clone(), hint));
        }
        !known_absent
    });
    optional
}

/// Reads the checksum files (and, with a keyring, the signatures), `concurrency` at
/// a time, and vouches for what each names. A missing optional sidecar is noted.
pub(super) async fn read_small_files(
    reader: &MetaReader<'_>,
    tree: &mut Tree,
    optional: &HashSet<RelPath>,
    signatures: bool,
    concurrency: usize,
) -> anyhow::Result<()> {
    let small: Vec<RelPath> = tree
        .found
        .keys()
        .filter(|p| is_sums(p) || (signatures && is_signature(p)))
        .cloned()
        .collect();
    let found = &tree.found;
    let read: Vec<(RelPath, anyhow::Result<MetaFile>)> = futures_util::stream::iter(small)
        .map(|p| {
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
        let file = match file {
            Err(e) if optional.contains(&path) && is_not_found(&e) => {
                if let Some(f) = tree.found.remove(&path) {
                    tree.absent.push((path.clone(), f.hint));
                }
                continue;
            }
            other => other?,
        };
        if is_sums(&path) {
            vouch_from_sums(tree, &path, &file)?;
        }
        tree.meta.insert(path, file);
    }
    Ok(())
}

/// Vouches for each file a checksum file names that the tree holds.
fn vouch_from_sums(tree: &mut Tree, path: &RelPath, file: &MetaFile) -> anyhow::Result<()> {
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
        if !tree.found.contains_key(&target) {
            continue;
        }
        vouch(
            &mut tree.vouched,
            target,
            Vouch {
                sha256: line.sha256,
                size: None,
                from: format!("{path} line {}", line.line),
            },
        )?;
    }
    Ok(())
}

/// The sizes OS lists give hold whatever else vouches for the image.
pub(super) fn apply_list_sizes(tree: &mut Tree) -> anyhow::Result<()> {
    for (p, (size, from)) in &tree.list_sizes {
        if let Some(exact) = tree.found.get(p).and_then(|f| f.size)
            && exact != *size
        {
            bail!("{p}: the listing says {exact} bytes, {from} says {size}");
        }
        if let Some(v) = tree.vouched.get_mut(p) {
            v.size.get_or_insert(*size);
        }
    }
    Ok(())
}
