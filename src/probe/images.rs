//! Checks of an image tree over one address family: the top listing is served and
//! parses, a sample of `.sha256` sidecars name images that are there, with the
//! size the upstream (or the listing) gives them, and the Raspberry Pi Imager OS
//! list, when the mirror publishes one, parses and points at images the mirror
//! serves with the size the list gives them.
//!
//! Checks, by name:
//! - `listing`: the top listing is served, parses and is not empty.
//! - `images`: a sample of the images `.sha256` sidecars name are there.
//! - `os list`: the OS list documents (`os_list_imagingutility_v4.json` at the root,
//!   any other `os_list*.json` the top listing shows, and the `subitems_url`
//!   documents they link on this mirror, at most [`MAX_OS_LISTS`]) are served and
//!   parse, and a sample of the images they point at on this mirror are there with
//!   their `image_download_size`. URLs on other hosts are counted, not fetched. Not
//!   added when the mirror publishes no OS list.
//! - `os list: upstream` (with `--upstream`): no image or `subitems_url` in those
//!   documents points at the upstream: the mirror should have rewritten them to
//!   itself (`rewrite_base`), or Imager users pointed at it download upstream.

use std::collections::{HashSet, VecDeque};

use url::Url;

use crate::relpath::RelPath;

use super::http::{FamilyClient, ProbeHttpError};
use super::{Check, FamilyReport, ProbeOptions};
use crate::images::listing::{self, EntryKind, ListingEntry};
use crate::images::oslist::{ImageRef, OsList};
use crate::images::sums;
use crate::upstream::redact;

/// Listings read at most while looking for sidecars.
const MAX_LISTINGS: usize = 40;

/// OS list documents read at most: the Imager's own and those it links first,
/// then the others the top listing shows.
pub const MAX_OS_LISTS: usize = 8;

/// The list the Imager asks for, at the root of a Raspberry Pi download tree.
pub const IMAGER_OS_LIST: &str = "os_list_imagingutility_v4.json";

/// URLs pointing at the upstream named in a failed check at most.
const MAX_NAMED: usize = 5;

pub async fn check(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
    report: &mut FamilyReport,
) {
    let listed = sidecars(client, base, opts, report).await;
    os_lists(client, base, opts, &listed, report).await;
}

/// What the walk of the listings for sidecars found.
#[derive(Default)]
struct Walk {
    /// The OS lists (`os_list*.json`) the top listing shows.
    os_lists: Vec<Url>,
    /// `.sha256` sidecars, in the order found.
    sidecars: Vec<Url>,
    /// Every other file, with the exact size its listing gives, if it does.
    sizes: Vec<(Url, Option<u64>)>,
    listings: usize,
    /// The top listing could not be read, or was empty: the `listing` check failed.
    top_unusable: bool,
}

impl Walk {
    /// Files the entries of `dir`; returns its subdirectories to walk next.
    fn take_entries(&mut self, dir: &Url, top: bool, entries: &[ListingEntry]) -> Vec<Url> {
        let mut dirs = Vec::new();
        for e in entries.iter().rev() {
            let Ok(url) = dir.join(&crate::fetch::encode_path(&e.name)) else {
                continue;
            };
            match e.kind {
                EntryKind::Dir => {
                    if let Ok(u) = dir.join(&format!("{}/", crate::fetch::encode_path(&e.name))) {
                        dirs.push(u);
                    }
                }
                EntryKind::File if e.name.ends_with(".sha256") => self.sidecars.push(url),
                EntryKind::File => {
                    if top && is_os_list(&e.name) {
                        self.os_lists.push(url.clone());
                    }
                    self.sizes.push((url, e.size))
                }
            }
        }
        dirs
    }
}

/// The top listing and a sample of `.sha256` sidecars; returns the OS lists
/// (`os_list*.json`) the top listing shows.
async fn sidecars(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
    report: &mut FamilyReport,
) -> Vec<Url> {
    let walk = walk_listings(client, base, opts, report).await;
    if walk.top_unusable {
        return walk.os_lists;
    }
    if walk.sidecars.is_empty() {
        report.checks.push(Check::pass(
            "images",
            format!("no .sha256 sidecars found in {} listings", walk.listings),
        ));
        return walk.os_lists;
    }
    let check = check_sidecars(client, base, opts, &walk).await;
    report.checks.push(check);
    walk.os_lists
}

/// Walks the listings from `base` for sidecars, adding the `listing` check of the
/// top one.
async fn walk_listings(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
    report: &mut FamilyReport,
) -> Walk {
    let mut walk = Walk::default();
    // Breadth first, newest names first (dated directories sort last), until enough
    // sidecars are found.
    let mut queue: VecDeque<Url> = VecDeque::from([base.clone()]);
    while let Some(dir) = queue.pop_front() {
        if walk.listings >= MAX_LISTINGS || walk.sidecars.len() >= opts.samples.max(1) {
            break;
        }
        walk.listings += 1;
        let top = dir == *base;
        let entries = match read_listing(client, &dir, top).await {
            Ok(e) => e,
            Err(detail) if top => {
                report.checks.push(Check::fail("listing", detail));
                walk.top_unusable = true;
                return walk;
            }
            Err(_) => continue,
        };
        if top {
            report.checks.push(Check::pass(
                "listing",
                format!("top listing shows {} entries", entries.len()),
            ));
        }
        queue.extend(walk.take_entries(&dir, top, &entries));
    }
    walk
}

/// Fetches and parses one listing of the walk; the top one must not be empty.
async fn read_listing(
    client: &FamilyClient,
    dir: &Url,
    top: bool,
) -> Result<Vec<ListingEntry>, String> {
    let got = client.get(dir, true).await.map_err(|e| e.to_string())?;
    let entries = listing::parse_listing(&got.body, None, dir, 100_000)
        .map_err(|e| format!("{}: {e}", redact(dir)))?;
    if top && entries.is_empty() {
        return Err("the top listing is empty".into());
    }
    Ok(entries)
}

/// The `images` check: a sample of the images the sidecars name are there, with the
/// size the upstream (or the listing) gives them.
async fn check_sidecars(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
    walk: &Walk,
) -> Check {
    let upstream_client = FamilyClient::any(opts.timeout).ok();
    let mut problems = Vec::new();
    let mut checked = 0;
    for sidecar in walk.sidecars.iter().take(opts.samples.max(1)) {
        let image = match image_named_by(client, sidecar).await {
            Ok(Some(i)) => i,
            Ok(None) => continue,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let size = match client.head(&image).await {
            Ok(s) => s,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let expected =
            expected_size(base, opts, upstream_client.as_ref(), &walk.sizes, &image).await;
        match (size, expected) {
            (Some(a), Some(b)) if a != b => {
                problems.push(format!("{}: {a} bytes, expected {b}", redact(&image)))
            }
            (None, _) => problems.push(format!("{}: no size given", redact(&image))),
            _ => checked += 1,
        }
    }
    if problems.is_empty() {
        Check::pass(
            "images",
            format!("{checked} image(s) named by .sha256 sidecars present with the right size"),
        )
    } else {
        Check::fail("images", problems.join("; "))
    }
}

/// The image a `.sha256` sidecar names, beside it; None when the name makes no URL.
async fn image_named_by(client: &FamilyClient, sidecar: &Url) -> Result<Option<Url>, String> {
    let got = client
        .get(sidecar, false)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&got.body);
    let lines = sums::parse_sums(&text, &redact(sidecar)).map_err(|e| e.to_string())?;
    let image_name = sidecar
        .path()
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".sha256"))
        .unwrap_or("")
        .to_string();
    let Some(line) = lines.first() else {
        return Err(format!("{}: empty", redact(sidecar)));
    };
    let name = if line.name.is_empty() {
        percent_encoding::percent_decode_str(&image_name)
            .decode_utf8_lossy()
            .into_owned()
    } else {
        line.name.clone()
    };
    // The mirror's own checksum file names the image: only a plain name beside it
    // is followed (`//host/x`, `../x` or `/x` would send the probe elsewhere).
    let Ok(name) = RelPath::new(&name) else {
        return Ok(None);
    };
    if name.as_str().contains('/') {
        return Ok(None);
    }
    Ok(crate::fetch::join_below(sidecar, &name).ok())
}

/// The size to expect of `image`: the upstream's, else what the listing said exactly.
async fn expected_size(
    base: &Url,
    opts: &ProbeOptions,
    upstream_client: Option<&FamilyClient>,
    sizes: &[(Url, Option<u64>)],
    image: &Url,
) -> Option<u64> {
    match (&opts.upstream, upstream_client) {
        (Some(up), Some(c)) => match image
            .as_str()
            .strip_prefix(base.as_str())
            .map(|rel| up.join(rel))
        {
            Some(Ok(u)) => c.head(&u).await.ok().flatten(),
            _ => None,
        },
        _ => sizes.iter().find(|(u, _)| u == image).and_then(|(_, s)| *s),
    }
}

fn is_os_list(name: &str) -> bool {
    name.starts_with("os_list") && name.ends_with(".json")
}

/// `url` as a path under `base` when it is on this mirror: same scheme, host and
/// port, under the probed path.
fn on_mirror<'a>(base: &Url, url: &'a Url) -> Option<&'a str> {
    url.as_str().strip_prefix(base.as_str())
}

/// True for a URL not on this mirror but under the upstream.
fn points_upstream(base: &Url, upstream: Option<&Url>, u: &Url) -> bool {
    on_mirror(base, u).is_none() && upstream.is_some_and(|up| u.as_str().starts_with(up.as_str()))
}

/// What reading the OS list documents found.
#[derive(Default)]
struct OsListsRead {
    /// The documents read and parsed, by name.
    read: Vec<String>,
    /// Documents left unread at [`MAX_OS_LISTS`].
    not_read: usize,
    problems: Vec<String>,
    /// (document, entry) for each image on this mirror, each URL once.
    mine: Vec<(String, ImageRef)>,
    mine_urls: HashSet<Url>,
    /// Images on other hosts.
    elsewhere: usize,
    /// The URLs pointing at the upstream, each with where it is.
    at_upstream: Vec<String>,
}

impl OsListsRead {
    /// Files each image document `name` points at: on this mirror, at the upstream,
    /// or elsewhere.
    fn sort_images(
        &mut self,
        base: &Url,
        upstream: Option<&Url>,
        name: &str,
        images: Vec<ImageRef>,
    ) {
        for image in images {
            if points_upstream(base, upstream, &image.url) {
                self.at_upstream
                    .push(format!("{name} {}: {}", image.at, redact(&image.url)));
            } else if on_mirror(base, &image.url).is_some() {
                if self.mine_urls.insert(image.url.clone()) {
                    self.mine.push((name.to_string(), image));
                }
            } else {
                self.elsewhere += 1;
            }
        }
    }

    /// The `subitems_url` documents of document `name` to read, those on this mirror
    /// not seen yet, last first (a stack pops them in document order); notes those
    /// at the upstream.
    fn subitems_to_read(
        &mut self,
        base: &Url,
        upstream: Option<&Url>,
        name: &str,
        subitems: Vec<Url>,
        seen: &mut HashSet<Url>,
    ) -> Vec<Url> {
        let mut next = Vec::new();
        for sub in subitems.into_iter().rev() {
            if points_upstream(base, upstream, &sub) {
                self.at_upstream
                    .push(format!("{name} subitems_url: {}", redact(&sub)));
            } else if on_mirror(base, &sub).is_some() && seen.insert(sub.clone()) {
                next.push(sub);
            }
        }
        next
    }
}

/// The OS list documents and a sample of the images they point at on this mirror.
async fn os_lists(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
    listed: &[Url],
    report: &mut FamilyReport,
) {
    let upstream = opts
        .upstream
        .as_ref()
        .map(|u| crate::config::with_slash(u.clone()));
    let mut found = read_os_lists(client, base, upstream.as_ref(), listed).await;
    if found.read.is_empty() && found.problems.is_empty() {
        // No OS list published: nothing to check.
        return;
    }
    let sampled = sample_images(client, opts.samples, &found.mine, &mut found.problems).await;
    report.checks.push(os_list_check(&found, sampled));
    if let Some(up) = upstream.as_ref().filter(|_| !found.read.is_empty()) {
        report.checks.push(upstream_check(up, &found.at_upstream));
    }
}

/// Reads the OS list documents, at most [`MAX_OS_LISTS`]: the Imager's and those it
/// links on this mirror, then the others the top listing shows (`listed`).
async fn read_os_lists(
    client: &FamilyClient,
    base: &Url,
    upstream: Option<&Url>,
    listed: &[Url],
) -> OsListsRead {
    let imager = base.join(IMAGER_OS_LIST).ok();
    // The Imager's list and what it links (depth first) come before the other lists
    // the top listing shows: they are what Imager users load.
    let mut linked: Vec<Url> = imager.iter().cloned().collect();
    let mut others: VecDeque<Url> = listed
        .iter()
        .filter(|u| Some(*u) != imager.as_ref())
        .cloned()
        .collect();
    let mut seen: HashSet<Url> = linked.iter().chain(&others).cloned().collect();
    let mut found = OsListsRead::default();
    let mut attempts = 0;
    while let Some(url) = linked.pop().or_else(|| others.pop_front()) {
        if attempts >= MAX_OS_LISTS {
            found.not_read = 1 + linked.len() + others.len();
            break;
        }
        attempts += 1;
        let name = on_mirror(base, &url)
            .map(str::to_string)
            .unwrap_or_else(|| redact(&url));
        // Not published and not listed: this mirror has no OS list.
        let optional = Some(&url) == imager.as_ref() && !listed.contains(&url);
        let (images, subitems) = match fetch_os_list(client, &url, &name, optional).await {
            Ok(Some(parsed)) => parsed,
            Ok(None) => continue,
            Err(e) => {
                found.problems.push(e);
                continue;
            }
        };
        found.read.push(name.clone());
        found.sort_images(base, upstream, &name, images);
        linked.extend(found.subitems_to_read(base, upstream, &name, subitems, &mut seen));
    }
    found
}

/// Fetches and parses one OS list document: the images it points at and the
/// `subitems_url` documents it links. None when it is `optional` and not there.
async fn fetch_os_list(
    client: &FamilyClient,
    url: &Url,
    name: &str,
    optional: bool,
) -> Result<Option<(Vec<ImageRef>, Vec<Url>)>, String> {
    let got = match client.get(url, false).await {
        Ok(g) => g,
        Err(ProbeHttpError::Missing { .. }) if optional => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    OsList::parse(&got.body, name)
        .and_then(|list| {
            let images = list.images()?;
            let subitems = list.subitems_urls()?;
            Ok(Some((images, subitems)))
        })
        .map_err(|e| e.to_string())
}

/// HEADs a sample of the images on this mirror against the size their list gives,
/// adding to `problems`; returns how many were sampled.
async fn sample_images(
    client: &FamilyClient,
    samples: usize,
    mine: &[(String, ImageRef)],
    problems: &mut Vec<String>,
) -> usize {
    // First, middle, last...: spread over the lists, the same every time.
    let n = samples.max(1).min(mine.len());
    let picks: Vec<&(String, ImageRef)> = (0..n)
        .map(|i| &mine[i * (mine.len() - 1) / (n.max(2) - 1)])
        .collect();
    for (list, image) in &picks {
        let shown = redact(&image.url);
        match (client.head(&image.url).await, image.size) {
            (Ok(Some(size)), Some(want)) if size != want => problems.push(format!(
                "{list} {}: {shown}: {size} bytes, the list says {want}",
                image.at
            )),
            (Ok(None), Some(_)) => {
                problems.push(format!("{list} {}: {shown}: no size given", image.at))
            }
            (Ok(_), _) => {}
            (Err(e), _) => problems.push(format!("{list} {}: {e}", image.at)),
        }
    }
    picks.len()
}

/// The `os list` check, `sampled` of the images on this mirror having been HEADed.
fn os_list_check(found: &OsListsRead, sampled: usize) -> Check {
    if !found.problems.is_empty() {
        return Check::fail("os list", found.problems.join("; "));
    }
    let read = &found.read;
    let docs = match read.len() {
        1 => format!("{} parses", read[0]),
        n => format!("{} and {} more OS list(s) parse", read[0], n - 1),
    };
    let unread = if found.not_read > 0 {
        format!(
            " ({} more not read: at most {MAX_OS_LISTS})",
            found.not_read
        )
    } else {
        String::new()
    };
    let images = if found.mine.is_empty() {
        "no image on this mirror".to_string()
    } else {
        format!(
            "{sampled} of {} image(s) on this mirror sampled, all present with the right size",
            found.mine.len()
        )
    };
    Check::pass(
        "os list",
        format!(
            "{docs}{unread}; {images}; {} on other hosts",
            found.elsewhere
        ),
    )
}

/// The `os list: upstream` check: no URL in the documents points at the upstream.
fn upstream_check(up: &Url, at_upstream: &[String]) -> Check {
    let shown = redact(up);
    if at_upstream.is_empty() {
        return Check::pass(
            "os list: upstream",
            format!("no image or subitems_url points at the upstream {shown}"),
        );
    }
    let more = at_upstream.len().saturating_sub(MAX_NAMED);
    let mut detail = format!(
        "{} URL(s) point at the upstream {shown}, not rewritten to this mirror: {}",
        at_upstream.len(),
        at_upstream[..at_upstream.len().min(MAX_NAMED)].join("; ")
    );
    if more > 0 {
        detail.push_str(&format!("; and {more} more"));
    }
    Check::fail("os list: upstream", detail)
}
