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

use super::http::{FamilyClient, ProbeHttpError};
use super::{Check, FamilyReport, ProbeOptions};
use crate::images::listing::{self, EntryKind};
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

/// The top listing and a sample of `.sha256` sidecars; returns the OS lists
/// (`os_list*.json`) the top listing shows.
async fn sidecars(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
    report: &mut FamilyReport,
) -> Vec<Url> {
    let mut os_lists = Vec::new();
    // Breadth first, newest names first (dated directories sort last), until enough
    // sidecars are found.
    let mut queue: VecDeque<Url> = VecDeque::from([base.clone()]);
    let mut listings = 0;
    let mut sidecars: Vec<(Url, Option<u64>)> = Vec::new();
    let mut sizes: Vec<(Url, Option<u64>)> = Vec::new();
    while let Some(dir) = queue.pop_front() {
        if listings >= MAX_LISTINGS || sidecars.len() >= opts.samples.max(1) {
            break;
        }
        listings += 1;
        let got = match client.get(&dir, true).await {
            Ok(g) => g,
            Err(e) => {
                if dir == *base {
                    report.checks.push(Check::fail("listing", e.to_string()));
                    return os_lists;
                }
                continue;
            }
        };
        let entries = match listing::parse_listing(&got.body, None, &dir, 100_000) {
            Ok(e) => e,
            Err(e) => {
                if dir == *base {
                    report
                        .checks
                        .push(Check::fail("listing", format!("{}: {e}", redact(base))));
                    return os_lists;
                }
                continue;
            }
        };
        if dir == *base {
            if entries.is_empty() {
                report
                    .checks
                    .push(Check::fail("listing", "the top listing is empty"));
                return os_lists;
            }
            report.checks.push(Check::pass(
                "listing",
                format!("top listing shows {} entries", entries.len()),
            ));
        }
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
                EntryKind::File if e.name.ends_with(".sha256") => sidecars.push((url, None)),
                EntryKind::File => {
                    if dir == *base && is_os_list(&e.name) {
                        os_lists.push(url.clone());
                    }
                    sizes.push((url, e.size))
                }
            }
        }
        queue.extend(dirs);
    }
    if sidecars.is_empty() {
        report.checks.push(Check::pass(
            "images",
            format!("no .sha256 sidecars found in {listings} listings"),
        ));
        return os_lists;
    }
    let upstream_client = FamilyClient::any(opts.timeout).ok();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (sidecar, _) in sidecars.into_iter().take(opts.samples.max(1)) {
        let got = match client.get(&sidecar, false).await {
            Ok(g) => g,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let text = String::from_utf8_lossy(&got.body);
        let lines = match sums::parse_sums(&text, &redact(&sidecar)) {
            Ok(l) => l,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let image_name = sidecar
            .path()
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".sha256"))
            .unwrap_or("")
            .to_string();
        let Some(line) = lines.first() else {
            problems.push(format!("{}: empty", redact(&sidecar)));
            continue;
        };
        let name = if line.name.is_empty() {
            percent_encoding::percent_decode_str(&image_name)
                .decode_utf8_lossy()
                .into_owned()
        } else {
            line.name.clone()
        };
        let Ok(image) = sidecar.join(&crate::fetch::encode_path(&name)) else {
            continue;
        };
        let size = match client.head(&image).await {
            Ok(s) => s,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        // The size to expect: the upstream's, else what the listing said exactly.
        let expected = match (&opts.upstream, &upstream_client) {
            (Some(up), Some(c)) => match image
                .as_str()
                .strip_prefix(base.as_str())
                .map(|rel| up.join(rel))
            {
                Some(Ok(u)) => c.head(&u).await.ok().flatten(),
                _ => None,
            },
            _ => sizes
                .iter()
                .find(|(u, _)| *u == image)
                .and_then(|(_, s)| *s),
        };
        match (size, expected) {
            (Some(a), Some(b)) if a != b => {
                problems.push(format!("{}: {a} bytes, expected {b}", redact(&image)))
            }
            (None, _) => problems.push(format!("{}: no size given", redact(&image))),
            _ => checked += 1,
        }
    }
    report.checks.push(if problems.is_empty() {
        Check::pass(
            "images",
            format!("{checked} image(s) named by .sha256 sidecars present with the right size"),
        )
    } else {
        Check::fail("images", problems.join("; "))
    });
    os_lists
}

fn is_os_list(name: &str) -> bool {
    name.starts_with("os_list") && name.ends_with(".json")
}

/// `url` as a path under `base` when it is on this mirror: same scheme, host and
/// port, under the probed path.
fn on_mirror<'a>(base: &Url, url: &'a Url) -> Option<&'a str> {
    url.as_str().strip_prefix(base.as_str())
}

/// The OS list documents and a sample of the images they point at on this mirror.
async fn os_lists(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
    listed: &[Url],
    report: &mut FamilyReport,
) {
    let upstream = opts.upstream.as_ref().map(|u| {
        let mut u = u.clone();
        if !u.path().ends_with('/') {
            u.set_path(&format!("{}/", u.path()));
        }
        u
    });
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
    let mut read: Vec<String> = Vec::new();
    let mut not_read = 0;
    let mut problems: Vec<String> = Vec::new();
    // (document, entry) for each image on this mirror, each URL once.
    let mut mine: Vec<(String, ImageRef)> = Vec::new();
    let mut mine_urls: HashSet<Url> = HashSet::new();
    let mut elsewhere = 0;
    let mut at_upstream: Vec<String> = Vec::new();
    let mut attempts = 0;
    while let Some(url) = linked.pop().or_else(|| others.pop_front()) {
        if attempts >= MAX_OS_LISTS {
            not_read = 1 + linked.len() + others.len();
            break;
        }
        attempts += 1;
        let name = on_mirror(base, &url)
            .map(str::to_string)
            .unwrap_or_else(|| redact(&url));
        let got = match client.get(&url, false).await {
            Ok(g) => g,
            // Not published and not listed: this mirror has no OS list.
            Err(ProbeHttpError::Missing { .. })
                if Some(&url) == imager.as_ref() && !listed.contains(&url) =>
            {
                continue;
            }
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let parsed = OsList::parse(&got.body, &name).and_then(|list| {
            let images = list.images()?;
            let subitems = list.subitems_urls()?;
            Ok((images, subitems))
        });
        let (images, subitems) = match parsed {
            Ok(p) => p,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        read.push(name.clone());
        let points_upstream = |u: &Url| {
            on_mirror(base, u).is_none()
                && upstream
                    .as_ref()
                    .is_some_and(|up| u.as_str().starts_with(up.as_str()))
        };
        for image in images {
            if points_upstream(&image.url) {
                at_upstream.push(format!("{name} {}: {}", image.at, redact(&image.url)));
            } else if on_mirror(base, &image.url).is_some() {
                if mine_urls.insert(image.url.clone()) {
                    mine.push((name.clone(), image));
                }
            } else {
                elsewhere += 1;
            }
        }
        // Pushed in reverse: popped in document order.
        for sub in subitems.into_iter().rev() {
            if points_upstream(&sub) {
                at_upstream.push(format!("{name} subitems_url: {}", redact(&sub)));
            } else if on_mirror(base, &sub).is_some() && seen.insert(sub.clone()) {
                linked.push(sub);
            }
        }
    }
    if read.is_empty() && problems.is_empty() {
        // No OS list published: nothing to check.
        return;
    }

    // First, middle, last...: spread over the lists, the same every time.
    let n = opts.samples.max(1).min(mine.len());
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
    report.checks.push(if problems.is_empty() {
        let docs = match read.len() {
            1 => format!("{} parses", read[0]),
            n => format!("{} and {} more OS list(s) parse", read[0], n - 1),
        };
        let unread = if not_read > 0 {
            format!(" ({not_read} more not read: at most {MAX_OS_LISTS})")
        } else {
            String::new()
        };
        let sampled = if mine.is_empty() {
            "no image on this mirror".to_string()
        } else {
            format!(
                "{} of {} image(s) on this mirror sampled, all present with the right size",
                picks.len(),
                mine.len()
            )
        };
        Check::pass(
            "os list",
            format!("{docs}{unread}; {sampled}; {elsewhere} on other hosts"),
        )
    } else {
        Check::fail("os list", problems.join("; "))
    });
    if let Some(up) = upstream.as_ref().filter(|_| !read.is_empty()) {
        let shown = redact(up);
        report.checks.push(if at_upstream.is_empty() {
            Check::pass(
                "os list: upstream",
                format!("no image or subitems_url points at the upstream {shown}"),
            )
        } else {
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
        });
    }
}
