//! `mirrorsync verify`: re-hash a published tree against what it was published as.
//!
//! Every file of the served snapshot is read and compared, size then SHA256, with the
//! snapshot's manifest (built from the signed indices when it was published), and the
//! signed Release files are verified again against the keyring. A bad disk, a stray
//! edit or a truncated file shows up here; `--repair` then runs a sync that re-hashes
//! what it keeps and fetches again whatever is damaged.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::apt::layout::SuiteDir;
use crate::apt::signature::{self, Keyring};
use crate::config::{Global, Mirror, MirrorKind};
use crate::relpath::RelPath;
use crate::snapshot::{MirrorDirs, Snapshot};

/// The largest InRelease read back from a web front end: the cap a sync applies.
const MAX_SERVED_RELEASE: usize = 16 << 20;

/// A response body of at most `max` bytes; None when it is longer.
async fn body_up_to(mut resp: reqwest::Response, max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if out.len() + chunk.len() > max {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(out)
}

/// One damaged file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Damage {
    pub path: String,
    pub problem: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub snapshot: Option<String>,
    pub files_checked: u64,
    pub bytes_checked: u64,
    pub damaged: Vec<Damage>,
}

/// Re-hashes the published tree of `mirror`. Damage is reported, not an error; an
/// error means the tree could not be checked at all.
pub fn verify_mirror(global: &Global, mirror: &Mirror) -> anyhow::Result<VerifyReport> {
    let (current, mut report) = published(global, mirror)?;
    let entries = sorted_entries(&current);

    // Split the reading over the cores: a USB disk is the limit, not the CPU, but
    // SSD-backed mirrors finish sooner.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let chunk = entries.len().div_ceil(workers).max(1);
    let results: Vec<Vec<(u64, Option<Damage>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                let dir = current.dir.as_path();
                scope.spawn(move || {
                    part.iter()
                        .map(|(p, size, sha)| check_file(dir, p, *size, sha))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for (bytes, damage) in results.into_iter().flatten() {
        report.files_checked += 1;
        report.bytes_checked += bytes;
        report.damaged.extend(damage);
    }

    // Files on disk the manifest does not know: someone wrote into a snapshot.
    for entry in walkdir::WalkDir::new(&current.dir).min_depth(1) {
        let entry = entry.with_context(|| format!("walking {}", current.dir.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(&current.dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The way into the shared content (its files were checked by the manifest;
        // files there no kept snapshot names yet are a run's, not damage).
        if entry.path_is_symlink() && crate::shared::is_our_link(&current.dir, &rel) {
            continue;
        }
        let known = RelPath::new(&rel)
            .map(|p| current.manifest.files.contains_key(&p))
            .unwrap_or(false);
        if !known {
            report.damaged.push(Damage {
                path: rel,
                problem: "not part of the published snapshot".into(),
            });
        }
    }

    if let MirrorKind::Apt(apt) = &mirror.kind
        && let Some(keyring_path) = &apt.keyring
    {
        let keyring = Keyring::from_file(keyring_path)?.with_policy(apt.signature_policy.clone());
        for suite in &apt.suites {
            check_signatures(&current.dir, suite, &keyring, &mut report);
        }
    }
    report.damaged.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// Re-hashes what a web server (a bucket's website endpoint, a CDN, another host)
/// serves at `base` against the mirror's published snapshot: every file fetched,
/// `concurrency` at a time, size and SHA256 compared while streaming, and the
/// served InRelease verified against the keyring. Damage is reported, not an error.
pub async fn verify_served(
    global: &Global,
    mirror: &Mirror,
    base: &url::Url,
    client: &reqwest::Client,
) -> anyhow::Result<VerifyReport> {
    let (current, mut report) = published(global, mirror)?;
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let entries = sorted_entries(&current);
    let base = &base;
    let results: Vec<(u64, Option<Damage>)> = futures_util::stream::iter(entries)
        .map(|(p, size, sha)| async move {
            let (read, problem) = check_served_file(client, base, p, size, &sha).await;
            let damage = problem.map(|problem| Damage {
                path: p.to_string(),
                problem,
            });
            (read, damage)
        })
        .buffer_unordered(mirror.network.concurrency.get())
        .collect()
        .await;
    for (bytes, damage) in results {
        report.files_checked += 1;
        report.bytes_checked += bytes;
        report.damaged.extend(damage);
    }
    if let MirrorKind::Apt(apt) = &mirror.kind
        && let Some(keyring_path) = &apt.keyring
    {
        let keyring = Keyring::from_file(keyring_path)?.with_policy(apt.signature_policy.clone());
        for suite in &apt.suites {
            let Ok(path) = SuiteDir::of(suite).file("InRelease") else {
                continue;
            };
            let path = path.to_string();
            if let Some(problem) = served_release_problem(client, base, &path, &keyring).await {
                report.damaged.push(Damage { path, problem });
            }
        }
    }
    report.damaged.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// Fetches `p` from under `base` and compares it with its size and SHA256; returns
/// the bytes read and what is wrong, if anything.
async fn check_served_file(
    client: &reqwest::Client,
    base: &url::Url,
    p: &RelPath,
    size: u64,
    sha: &[u8; 32],
) -> (u64, Option<String>) {
    let url = match base.join(&crate::fetch::encode_path(p.as_str())) {
        Ok(u) => u,
        Err(e) => return (0, Some(format!("no URL for it: {e}"))),
    };
    let resp = match client.get(url.clone()).send().await {
        Ok(r) => r,
        Err(e) => return (0, Some(format!("{}: {e}", crate::upstream::redact(&url)))),
    };
    if !resp.status().is_success() {
        return (
            0,
            Some(format!(
                "{} answered {}",
                crate::upstream::redact(&url),
                resp.status()
            )),
        );
    }
    hash_body(resp, size, sha).await
}

/// Streams a response body through SHA256, stopping past `size` bytes; returns the
/// bytes read and what is wrong, if anything.
async fn hash_body(resp: reqwest::Response, size: u64, sha: &[u8; 32]) -> (u64, Option<String>) {
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => {
                read += c.len() as u64;
                if read > size {
                    return (read, Some(format!("more than the {size} bytes expected")));
                }
                hasher.update(&c);
            }
            Err(e) => return (read, Some(format!("cut off after {read} bytes: {e}"))),
        }
    }
    (read, mismatch(read, size, hasher, sha))
}

/// What is wrong with the InRelease served at `path` under `base`, if anything;
/// None too when it is not served at all.
async fn served_release_problem(
    client: &reqwest::Client,
    base: &url::Url,
    path: &str,
    keyring: &Keyring,
) -> Option<String> {
    let url = base.join(path).ok()?;
    // Its bytes were compared with the snapshot's; this says the served copy still
    // verifies with today's keyring.
    let resp = client.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    match body_up_to(resp, MAX_SERVED_RELEASE).await {
        None => Some(format!("served with more than {MAX_SERVED_RELEASE} bytes")),
        Some(bytes) => signature::verify_clearsigned(keyring, &bytes)
            .err()
            .map(|e| e.to_string()),
    }
}

fn check_file(dir: &Path, p: &RelPath, size: u64, sha: &[u8; 32]) -> (u64, Option<Damage>) {
    let damage = |problem: String| Damage {
        path: p.to_string(),
        problem,
    };
    let mut f = match std::fs::File::open(p.under(dir)) {
        Ok(f) => f,
        Err(e) => return (0, Some(damage(format!("cannot be read: {e}")))),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                read += n as u64;
            }
            Err(e) => {
                return (
                    read,
                    Some(damage(format!("read error after {read} bytes: {e}"))),
                );
            }
        }
    }
    (read, mismatch(read, size, hasher, sha).map(damage))
}

/// The published snapshot of `mirror` and an empty report on it.
fn published(global: &Global, mirror: &Mirror) -> anyhow::Result<(Snapshot, VerifyReport)> {
    let current = MirrorDirs::new(&global.root, &mirror.name)
        .current()
        .with_context(|| format!("mirror {:?}: reading the published snapshot", mirror.name))?
        .ok_or_else(|| anyhow!("mirror {:?} has no published snapshot yet", mirror.name))?;
    let report = VerifyReport {
        name: mirror.name.clone(),
        snapshot: Some(current.id.clone()),
        ..VerifyReport::default()
    };
    Ok((current, report))
}

/// The snapshot's files with size and SHA256, in path order.
fn sorted_entries(current: &Snapshot) -> Vec<(&RelPath, u64, [u8; 32])> {
    let mut entries: Vec<_> = current
        .manifest
        .files
        .iter()
        .map(|(p, e)| (p, e.size, e.sha256))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// What is wrong with `read` bytes hashed into `hasher`, if anything.
fn mismatch(read: u64, size: u64, hasher: Sha256, sha: &[u8; 32]) -> Option<String> {
    if read != size {
        return Some(format!("{read} bytes, {size} expected"));
    }
    let actual: [u8; 32] = hasher.finalize().into();
    (&actual != sha).then(|| {
        format!(
            "SHA256 {}, {} expected",
            hex::encode(actual),
            hex::encode(sha)
        )
    })
}

fn check_signatures(dir: &Path, suite: &str, keyring: &Keyring, report: &mut VerifyReport) {
    let suite = SuiteDir::of(suite);
    let (Ok(inrelease), Ok(release), Ok(gpg)) = (
        suite.file("InRelease"),
        suite.file("Release"),
        suite.file("Release.gpg"),
    ) else {
        return;
    };
    if let Ok(bytes) = std::fs::read(inrelease.under(dir))
        && let Err(e) = signature::verify_clearsigned(keyring, &bytes)
    {
        report.damaged.push(Damage {
            path: inrelease.to_string(),
            problem: e.to_string(),
        });
    }
    if let (Ok(release), Ok(sig)) = (
        std::fs::read(release.under(dir)),
        std::fs::read(gpg.under(dir)),
    ) && let Err(e) = signature::verify_detached(keyring, &release, &sig)
    {
        report.damaged.push(Damage {
            path: gpg.to_string(),
            problem: e.to_string(),
        });
    }
}
