//! The Release files this mirror published, read back only as verified bytes: to
//! carry an unchanged suite over, and for the rollback floor.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::layout::SuiteDir;
use super::release::Release;
use super::signature::{self, Keyring};
use crate::relpath::RelPath;
use crate::snapshot::Snapshot;

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
pub(super) fn read_published(
    c: &Snapshot,
    signed: &RelPath,
    keyring: Option<&Keyring>,
) -> anyhow::Result<(Bytes, String)> {
    let bytes = published_bytes(c, signed)?;
    let file = signed.under(&c.dir);
    let context = || format!("the published {} no longer verifies", file.display());
    let text = match keyring {
        Some(k) if signed.file_name() == "InRelease" => {
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

/// The Date a new Release of `suite` must not be older than: the published copy's,
/// verified again; else the one recorded when it was verified and published. Only a
/// mirror with neither (never published) has none: a copy that no longer verifies must
/// not open the way to a rollback.
pub(super) fn published_floor(
    current: Option<&Snapshot>,
    suite: &SuiteDir,
    keyring: Option<&Keyring>,
    recorded: &BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> Option<jiff::Timestamp> {
    current
        .and_then(|c| published_date(c, suite, keyring, notes))
        .or_else(|| recorded.get(suite.name()).and_then(|d| d.parse().ok()))
}

/// The Date of the Release this mirror published, from verified bytes only. A copy
/// that no longer verifies (edited on disk, or the keyring changed) gives none (the
/// caller then uses the Date recorded at publishing), with a note saying so.
fn published_date(
    c: &Snapshot,
    suite: &SuiteDir,
    keyring: Option<&Keyring>,
    notes: &mut Vec<String>,
) -> Option<jiff::Timestamp> {
    ["InRelease", "Release"].iter().find_map(|f| {
        let path = suite.file(f).ok()?;
        c.manifest.files.get(&path)?;
        match read_published(c, &path, keyring) {
            Ok((_, text)) => Release::parse(&text).ok()?.date,
            Err(e) => {
                notes.push(format!(
                    "suite {}: {e:#}; its Date is not used for the rollback check (the one recorded at publishing is)",
                    suite.name()
                ));
                None
            }
        }
    })
}
