//! Checks of an image tree over one address family: the top listing is served and
//! parses, and a sample of `.sha256` sidecars name images that are there, with the
//! size the upstream (or the listing) gives them.

use std::collections::VecDeque;

use url::Url;

use super::http::FamilyClient;
use super::{Check, FamilyReport, ProbeOptions};
use crate::images::listing::{self, EntryKind};
use crate::images::sums;
use crate::upstream::redact;

/// Listings read at most while looking for sidecars.
const MAX_LISTINGS: usize = 40;

pub async fn check(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
    report: &mut FamilyReport,
) {
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
                    return;
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
                    return;
                }
                continue;
            }
        };
        if dir == *base {
            if entries.is_empty() {
                report
                    .checks
                    .push(Check::fail("listing", "the top listing is empty"));
                return;
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
                EntryKind::File => sizes.push((url, e.size)),
            }
        }
        queue.extend(dirs);
    }
    if sidecars.is_empty() {
        report.checks.push(Check::pass(
            "images",
            format!("no .sha256 sidecars found in {listings} listings"),
        ));
        return;
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
}
