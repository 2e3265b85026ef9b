//! Checks of an apt mirror over one address family: trace age, each suite's
//! InRelease (signature, Valid-Until, Date against the upstream), samples of the
//! indices it lists and of the pool files they list, and the two-stage test Debian's
//! redirector uses to catch a sync half done.

use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

use super::http::{FamilyClient, ProbeHttpError};
use super::{Check, FamilyReport, ProbeOptions, UpstreamFacts, band};
use crate::apt::packages::{self, IndexKind};
use crate::apt::release::{self, Release};
use crate::apt::signature::{self, Keyring};
use crate::images::listing::{self, EntryKind};
use crate::upstream::redact;

/// What answered at a mirror URL.
pub enum Kind {
    /// With the master trace's text, if it was there.
    Apt(Option<String>),
    Images,
}

/// Suites discovered from `dists/` are checked up to this many.
const MAX_SUITES: usize = 8;

/// Tells an apt tree from an image tree by what it serves; fails only when nothing
/// answers at all.
pub async fn detect(client: &FamilyClient, base: &Url) -> Result<Kind, ProbeHttpError> {
    match client.get(&join(base, "project/trace/master"), false).await {
        Ok(got) => {
            return Ok(Kind::Apt(Some(
                String::from_utf8_lossy(&got.body).into_owned(),
            )));
        }
        Err(e) if e.is_no_answer() => return Err(e),
        Err(_) => {}
    }
    match client.get(&join(base, "dists/"), true).await {
        Ok(_) => Ok(Kind::Apt(None)),
        Err(e) if e.is_no_answer() => Err(e),
        Err(_) => Ok(Kind::Images),
    }
}

fn join(base: &Url, path: &str) -> Url {
    base.join(&crate::fetch::encode_path(path))
        .unwrap_or_else(|_| base.clone())
}

/// The date a trace file states: its `Date:` field, else its first line as `date -u`
/// prints it.
pub fn trace_date(text: &str) -> Option<jiff::Timestamp> {
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Date:") {
            return release::parse_release_date(v);
        }
    }
    // `date -u` pads the day with a space ("Jan  3"): collapse runs of spaces.
    let first = text
        .lines()
        .next()?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    jiff::fmt::strtime::parse("%a %b %d %H:%M:%S UTC %Y", &first)
        .ok()?
        .to_datetime()
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Suites to check: as given, else the directories `dists/` lists.
async fn suites_of(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
) -> Result<Vec<String>, String> {
    if !opts.suites.is_empty() {
        return Ok(opts.suites.clone());
    }
    let url = join(base, "dists/");
    let got = client
        .get(&url, true)
        .await
        .map_err(|e| format!("{e}; name the suites with --suite"))?;
    let entries = listing::parse_listing(&got.body, None, &url, 10_000)
        .map_err(|e| format!("{}: {e}; name the suites with --suite", redact(&url)))?;
    let mut suites: Vec<String> = entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::Dir)
        .map(|e| e.name)
        .collect();
    suites.sort();
    suites.truncate(MAX_SUITES);
    if suites.is_empty() {
        return Err(format!(
            "{} lists no suites; name them with --suite",
            redact(&url)
        ));
    }
    Ok(suites)
}

/// Fetches and parses (and with a keyring, verifies) a suite's InRelease, falling
/// back to Release + Release.gpg.
pub(super) async fn release_of(
    client: &FamilyClient,
    base: &Url,
    suite: &str,
    keyring: Option<&Keyring>,
) -> Result<Release, String> {
    let inrelease = join(base, &format!("dists/{suite}/InRelease"));
    let text = match client.get(&inrelease, false).await {
        Ok(got) => match keyring {
            Some(k) => {
                signature::verify_clearsigned(k, &got.body)
                    .map_err(|e| format!("{}: {e}", redact(&inrelease)))?
                    .text
            }
            None => signature::unsigned_text(&got.body)
                .map_err(|e| format!("{}: {e}", redact(&inrelease)))?,
        },
        Err(e) if e.is_no_answer() => return Err(e.to_string()),
        Err(_) => {
            let rel = join(base, &format!("dists/{suite}/Release"));
            let got = client.get(&rel, false).await.map_err(|e| e.to_string())?;
            if let Some(k) = keyring {
                let gpg = join(base, &format!("dists/{suite}/Release.gpg"));
                let sig = client.get(&gpg, false).await.map_err(|e| e.to_string())?;
                signature::verify_detached(k, &got.body, &sig.body)
                    .map_err(|e| format!("{}: {e}", redact(&rel)))?;
            }
            String::from_utf8(got.body.to_vec())
                .map_err(|_| format!("{}: not text", redact(&rel)))?
        }
    };
    Release::parse(&text).map_err(|e| format!("dists/{suite}: {e}"))
}

/// What every suite's checks share.
struct SuiteContext<'a> {
    client: &'a FamilyClient,
    base: &'a Url,
    opts: &'a ProbeOptions,
    keyring: Option<&'a Keyring>,
    upstream: Option<&'a UpstreamFacts>,
    now: jiff::Timestamp,
    /// The date `project/trace/master` states, if it does.
    master_date: Option<jiff::Timestamp>,
    /// When the last completed sync ended, for the two-stage test.
    site_date: Option<jiff::Timestamp>,
}

pub async fn check(
    client: &FamilyClient,
    base: &Url,
    opts: &ProbeOptions,
    keyring: Option<&Keyring>,
    upstream: Option<&UpstreamFacts>,
    master: Option<String>,
    report: &mut FamilyReport,
) {
    let now = jiff::Timestamp::now();
    let master_date = master.as_deref().and_then(trace_date);
    check_trace(master.is_some(), master_date, now, opts, report);
    let site_date = last_sync_date(client, base, master_date).await;
    let suites = match suites_of(client, base, opts).await {
        Ok(s) => s,
        Err(e) => {
            report.checks.push(Check::fail("suites", e));
            Vec::new()
        }
    };
    let cx = SuiteContext {
        client,
        base,
        opts,
        keyring,
        upstream,
        now,
        master_date,
        site_date,
    };
    let mut behind: Option<i64> = None;
    for suite in &suites {
        if let Some(lag) = check_suite(&cx, suite, report).await {
            behind = Some(behind.map_or(lag, |b| b.max(lag)));
        }
    }
    let age = report.age_seconds;
    report.behind_seconds = behind;
    report.freshness = match (behind, age) {
        (Some(b), _) if b < 0 => Some("ahead/forked".into()),
        (Some(b), _) => Some(band(Duration::from_secs(b as u64)).into()),
        // Without an upstream, "up to date" cannot be told; the age still bands.
        (None, Some(a)) => Some(band(Duration::from_secs(a.max(1) as u64)).into()),
        (None, None) => None,
    };
}

/// The `trace` check: the master trace is there, states a date, and is not older
/// than `--max-age`. Sets the report's age from it.
fn check_trace(
    has_master: bool,
    master_date: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
    opts: &ProbeOptions,
    report: &mut FamilyReport,
) {
    match (has_master, master_date) {
        (true, Some(d)) => {
            let age = now.as_second() - d.as_second();
            report.age_seconds = Some(age);
            let stale = age > opts.max_age.as_secs() as i64;
            let detail = format!("project/trace/master written {} ago", human_age(age));
            report.checks.push(if stale {
                Check::fail(
                    "trace",
                    format!(
                        "{detail}: older than {}",
                        human_age(opts.max_age.as_secs() as i64)
                    ),
                )
            } else {
                Check::pass("trace", detail)
            });
        }
        (true, None) => report
            .checks
            .push(Check::fail("trace", "project/trace/master states no date")),
        (false, _) => report
            .checks
            .push(Check::fail("trace", "project/trace/master is missing")),
    }
}

/// When the last completed sync ended, by the site's own trace (else the master's):
/// the later of the date it states and the date it was served with.
async fn last_sync_date(
    client: &FamilyClient,
    base: &Url,
    master_date: Option<jiff::Timestamp>,
) -> Option<jiff::Timestamp> {
    let host = base.host_str().unwrap_or("");
    let site = client
        .get(&join(base, &format!("project/trace/{host}")), false)
        .await
        .ok();
    let written = site
        .as_ref()
        .and_then(|got| trace_date(&String::from_utf8_lossy(&got.body)))
        .or(master_date);
    // When the trace itself landed after its stated date, that counts too: an object
    // store dates every object by its upload, and mirrorsync uploads the traces after
    // the Release files, so a bucket-served mirror shows Release newer than the date
    // inside the trace but never newer than the trace object.
    let landed = match site {
        Some(got) => got.last_modified,
        None => client
            .get(&join(base, "project/trace/master"), false)
            .await
            .ok()
            .and_then(|got| got.last_modified),
    }
    .and_then(|lm| httpdate::parse_http_date(&lm).ok())
    .and_then(|t| jiff::Timestamp::try_from(t).ok());
    match (written, landed) {
        (Some(w), Some(l)) => Some(w.max(l)),
        (w, l) => w.or(l),
    }
}

/// Every check of one suite; returns how far its Release is behind the upstream's,
/// when that could be told.
async fn check_suite(cx: &SuiteContext<'_>, suite: &str, report: &mut FamilyReport) -> Option<i64> {
    let name = |what: &str| format!("{suite}: {what}");
    let rel = match release_of(cx.client, cx.base, suite, cx.keyring).await {
        Ok(r) => r,
        Err(e) => {
            report.checks.push(Check::fail(name("release"), e));
            return None;
        }
    };
    report.checks.push(release_check(
        &rel,
        cx.now,
        cx.keyring.is_some(),
        name("release"),
    ));
    if cx.master_date.is_none()
        && let Some(d) = rel.date
    {
        let age = cx.now.as_second() - d.as_second();
        report.age_seconds = Some(report.age_seconds.map_or(age, |a| a.min(age)));
    }
    let mut lag = None;
    if let Some(up) = cx.upstream {
        let (check, behind) = freshness_check(cx, up, suite, &rel).await;
        report.checks.push(check);
        lag = behind;
    }
    sample_indices(cx.client, cx.base, suite, &rel, cx.opts.samples, report).await;
    if let Some(since) = cx.site_date {
        let check = consistency_check(cx.client, cx.base, suite, since).await;
        report.checks.push(check);
    }
    lag
}

/// The `<suite>: release` check of a Release that was fetched (and verified).
fn release_check(rel: &Release, now: jiff::Timestamp, verified: bool, name: String) -> Check {
    let signed = if verified { ", signature good" } else { "" };
    match rel.valid_until {
        Some(v) if v < now => Check::fail(name, format!("expired: Valid-Until {v} has passed")),
        _ => Check::pass(
            name,
            format!(
                "Date {}{signed}",
                rel.date
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "missing".into())
            ),
        ),
    }
}

/// The `<suite>: freshness` check against the upstream's Release Date, with the lag
/// in seconds when both dates are known.
async fn freshness_check(
    cx: &SuiteContext<'_>,
    up: &UpstreamFacts,
    suite: &str,
    rel: &Release,
) -> (Check, Option<i64>) {
    let name = format!("{suite}: freshness");
    match (rel.date, up.release_date(suite, cx.keyring).await) {
        (Some(mine), Ok(theirs)) => {
            let lag = theirs.as_second() - mine.as_second();
            let (ok, detail) = if lag == 0 {
                (true, "up to date with the upstream".to_string())
            } else if lag < 0 {
                (
                    false,
                    format!("ahead of the upstream by {}: forked?", human_age(-lag)),
                )
            } else {
                (
                    lag <= cx.opts.max_age.as_secs() as i64,
                    format!("behind the upstream by {}", human_age(lag)),
                )
            };
            (Check { name, ok, detail }, Some(lag))
        }
        (_, Err(e)) => (Check::fail(name, e), None),
        (None, _) => (Check::fail(name, "the Release has no Date"), None),
    }
}

/// The `<suite>: consistency` check, the second stage of Debian's test: a Release
/// newer than the trace means a sync is under way or broke off.
async fn consistency_check(
    client: &FamilyClient,
    base: &Url,
    suite: &str,
    since: jiff::Timestamp,
) -> Check {
    let name = format!("{suite}: consistency");
    let url = join(base, &format!("dists/{suite}/Release"));
    let http_date = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + Duration::from_secs(since.as_second().max(0) as u64),
    );
    match client.head_unmodified_since(&url, &http_date).await {
        Ok(412) => Check::fail(
            name,
            format!(
                "Release changed after the trace ({http_date}): a sync is in progress or broke off"
            ),
        ),
        Ok(_) => Check::pass(name, "Release is not newer than the trace"),
        Err(e) => Check::fail(name, e.to_string()),
    }
}

/// Fetches a sample of the indices a Release lists and checks size and SHA256, then
/// HEADs a sample of the pool files the first Packages index names.
async fn sample_indices(
    client: &FamilyClient,
    base: &Url,
    suite: &str,
    rel: &Release,
    samples: usize,
    report: &mut FamilyReport,
) {
    let name = format!("{suite}: indices");
    // Compressed Packages first: what apt fetches, and what every mirror serves (the
    // uncompressed ones are listed but often not).
    let mut candidates: Vec<_> = rel
        .files
        .values()
        .filter(|f| f.sha256.is_some())
        .filter(|f| {
            let p = f.path.as_str();
            (p.ends_with(".xz") || p.ends_with(".gz")) && !p.contains("/by-hash/")
        })
        .collect();
    candidates.sort_by_key(|f| (!f.path.file_name().starts_with("Packages"), f.path.clone()));
    let mut checked = 0;
    let mut problems = Vec::new();
    let mut packages_index = None;
    for f in candidates.into_iter().take(samples.max(1)) {
        let url = join(base, &format!("dists/{suite}/{}", f.path));
        match client.get(&url, false).await {
            Ok(got) => {
                let sha: [u8; 32] = Sha256::digest(&got.body).into();
                if got.body.len() as u64 != f.size || Some(sha) != f.sha256 {
                    problems.push(format!(
                        "{} does not match its Release entry ({} bytes, listed {})",
                        f.path,
                        got.body.len(),
                        f.size
                    ));
                } else if packages_index.is_none() && f.path.file_name().starts_with("Packages") {
                    packages_index = Some((f.path.to_string(), got.body));
                }
                checked += 1;
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    report.checks.push(if problems.is_empty() {
        Check::pass(name, format!("{checked} sampled, all match the Release"))
    } else {
        Check::fail(name, problems.join("; "))
    });
    if let Some((path, body)) = packages_index {
        sample_pool(client, base, suite, &path, &body, samples, report).await;
    }
}

async fn sample_pool(
    client: &FamilyClient,
    base: &Url,
    suite: &str,
    index_path: &str,
    body: &[u8],
    samples: usize,
    report: &mut FamilyReport,
) {
    let name = format!("{suite}: pool");
    let files = match pool_files(index_path, body) {
        Ok(f) => f,
        Err(e) => {
            report
                .checks
                .push(Check::fail(name, format!("reading {index_path}: {e}")));
            return;
        }
    };
    if files.is_empty() {
        report
            .checks
            .push(Check::pass(name, format!("{index_path} lists no files")));
        return;
    }
    // First, middle, last...: spread over the index, the same every time.
    let n = samples.max(1).min(files.len());
    let picks: Vec<_> = (0..n)
        .map(|i| &files[i * (files.len() - 1) / (n.max(2) - 1)])
        .collect();
    let mut problems = Vec::new();
    for f in &picks {
        match client.head(&join(base, f.path.as_str())).await {
            Ok(Some(size)) if size == f.size => {}
            Ok(Some(size)) => problems.push(format!(
                "{}: {size} bytes, the index says {}",
                f.path, f.size
            )),
            Ok(None) => problems.push(format!("{}: no size given", f.path)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    report.checks.push(if problems.is_empty() {
        Check::pass(
            name,
            format!("{} sampled, all present with the right size", picks.len()),
        )
    } else {
        Check::fail(name, problems.join("; "))
    });
}

/// The pool files a Packages index (`body`, fetched from `index_path`) lists.
fn pool_files(index_path: &str, body: &[u8]) -> Result<Vec<packages::PoolFile>, String> {
    // The reader takes a file, and tells the compression by its extension.
    let suffix = std::path::Path::new(index_path)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    tempfile::Builder::new()
        .suffix(&suffix)
        .tempfile()
        .and_then(|mut t| {
            std::io::Write::write_all(&mut t, body)?;
            Ok(t)
        })
        .map_err(|e| e.to_string())
        .and_then(|t| {
            let mut files = Vec::new();
            packages::pool_files_of(t.path(), IndexKind::Packages, index_path, |f| files.push(f))
                .map_err(|e| e.to_string())?;
            Ok(files)
        })
}

/// "3h 12m", "2d 4h", "45s".
pub fn human_age(secs: i64) -> String {
    let s = secs.unsigned_abs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_dates_are_read_as_ftpsync_writes_them() {
        let ours = "Wed Nov 25 13:29:16 UTC 2026\nDate: Wed, 25 Nov 2026 13:29:16 +0000\n";
        let d = trace_date(ours).unwrap();
        assert_eq!(d.to_string(), "2026-11-25T13:29:16Z");
        let bare = "Sat Jan  3 04:05:06 UTC 2026\n";
        assert_eq!(
            trace_date(bare).unwrap().to_string(),
            "2026-01-03T04:05:06Z"
        );
        assert_eq!(trace_date("garbage"), None);
    }

    #[test]
    fn ages_read_like_a_human_wrote_them() {
        assert_eq!(human_age(42), "42s");
        assert_eq!(human_age(3 * 3600 + 12 * 60), "3h 12m");
        assert_eq!(human_age(2 * 86400 + 4 * 3600), "2d 4h");
    }
}
