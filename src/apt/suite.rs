//! One suite's signed metadata: InRelease (else Release + Release.gpg), fetched
//! conditionally when the published copy can answer for it, verified, and checked
//! for expiry and rollback.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use url::Url;

use super::dates::{check_dates, check_still_valid};
use super::layout::SuiteDir;
use super::published::{published_floor, read_published};
use super::release::Release;
use super::retry::UpstreamMoved;
use super::signature::{self, Keyring};
use crate::config::AptMirror;
use crate::fetch::file_url;
use crate::plan::Wanted;
use crate::relpath::RelPath;
use crate::snapshot::Snapshot;
use crate::state::MirrorState;
use crate::upstream::{Meta, Upstream, Validators, redact};

/// Large enough for any real Release (Debian's main suite is ~200 KB, ~2,000 files),
/// small enough that a hostile upstream cannot fill a Raspberry Pi's memory with one:
/// a Release is held, verified and parsed in memory (a 10^6-entry one, 109 MB, would
/// take ~500 MB).
pub(super) const MAX_RELEASE_BYTES: u64 = 16 << 20;

/// A suite's signed metadata, as it goes into the next snapshot.
pub(super) struct Suite {
    pub name: String,
    pub dir: SuiteDir,
    pub release: Release,
    /// Files fetched in this run, written into staging last.
    pub new_files: Vec<(RelPath, Bytes, Option<SystemTime>)>,
    /// Files carried over from the published snapshot (suite unchanged).
    pub kept_files: Vec<Wanted>,
    pub unchanged: bool,
    /// The InRelease (or Release) bytes this run works from, to notice upstream moves.
    pub signed_bytes: Bytes,
    pub signed_path: RelPath,
    pub validators: Option<Validators>,
}

impl Suite {
    /// A suite whose signed file upstream published since the last run.
    fn fetched(
        dir: &SuiteDir,
        release: Release,
        new_files: Vec<(RelPath, Bytes, Option<SystemTime>)>,
        signed_path: RelPath,
        signed_bytes: Bytes,
        validators: Validators,
    ) -> Suite {
        Suite {
            name: dir.name().to_string(),
            dir: dir.clone(),
            release,
            new_files,
            kept_files: Vec::new(),
            unchanged: false,
            signed_bytes,
            signed_path,
            validators: Some(validators),
        }
    }
}

/// What fetching a suite's Release files needs to know.
pub(super) struct SuiteFetch<'a> {
    pub upstream: &'a Upstream,
    pub base: &'a Url,
    pub apt: &'a AptMirror,
    pub keyring: Option<&'a Keyring>,
    pub current: Option<&'a Snapshot>,
    /// state.json, when the no-op shortcut may be taken (config unchanged).
    pub shortcut: Option<&'a MirrorState>,
    /// Release Dates recorded at publishing: the rollback floor's fallback.
    pub recorded: &'a BTreeMap<String, String>,
    pub now: jiff::Timestamp,
}

type Got = (Bytes, Validators, Option<SystemTime>);

/// A suite's signed file as published, and the validators it was fetched with.
struct PublishedSigned<'a> {
    published: Option<(&'a Snapshot, [u8; 32])>,
    known: Option<&'a Validators>,
}

/// What carrying a suite over takes: its signed file, where upstream has it, the
/// files that go with it, and what the note says when the published copy fails.
struct Unchanged<'a> {
    dir: &'a SuiteDir,
    path: &'a RelPath,
    url: &'a Url,
    carry: &'a [&'a str],
    again: &'a str,
}

impl SuiteFetch<'_> {
    fn url(&self, p: &RelPath) -> anyhow::Result<Url> {
        file_url(self.base, p)
    }

    /// Fetches and verifies one suite's Release files.
    pub async fn fetch(&self, name: &str, notes: &mut Vec<String>) -> anyhow::Result<Suite> {
        let dir = SuiteDir::of(name);
        let inrelease = dir.file("InRelease")?;
        let signed = self.published_signed(&inrelease);
        let in_url = self.url(&inrelease)?;
        let mut fetched = match self
            .upstream
            .get_meta(&in_url, MAX_RELEASE_BYTES, signed.known)
            .await
        {
            Ok(Meta::NotModified) => None,
            Ok(Meta::Body {
                body,
                validators,
                last_modified,
                ..
            }) => Some((body, validators, last_modified)),
            Err(e) if e.is_not_found() => return self.fetch_release_gpg(&dir, notes).await,
            Err(e) => return Err(e).context("fetching InRelease"),
        };
        let carry = ["InRelease", "Release", "Release.gpg"];
        let unchanged = Unchanged {
            dir: &dir,
            path: &inrelease,
            url: &in_url,
            carry: &carry,
            // Only verified bytes feed a run: a published copy that no longer
            // verifies is not trusted for anything, upstream's is fetched anew.
            again: "fetching it again",
        };
        if let Some(suite) = self
            .carried(&unchanged, &signed, &mut fetched, notes)
            .await?
        {
            return Ok(suite);
        }
        let got = self.body_of(fetched, &in_url)?;
        self.new_inrelease(&dir, inrelease, got, notes).await
    }

    /// An InRelease upstream published since: verified, dated, and its Release
    /// companions fetched.
    async fn new_inrelease(
        &self,
        dir: &SuiteDir,
        inrelease: RelPath,
        (body, validators, last_modified): Got,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Suite> {
        let shown = redact(&self.url(&inrelease)?);
        let text = match self.keyring {
            // apt refuses an InRelease with anything outside its signed part (the
            // splitter says which line), and so do we: such bytes would be published.
            Some(k) => {
                signature::verify_clearsigned(k, &body)
                    .with_context(|| format!("verifying {shown}"))?
                    .text
            }
            None => signature::unsigned_text(&body).with_context(|| format!("reading {shown}"))?,
        };
        let release = self.dated(dir, &text, &shown, notes)?;
        let mut new_files = vec![(inrelease.clone(), body.clone(), last_modified)];
        new_files.extend(self.companions(dir, &text).await?);
        Ok(Suite::fetched(
            dir, release, new_files, inrelease, body, validators,
        ))
    }

    /// Release + Release.gpg beside an InRelease, for clients that do not use
    /// InRelease; they must say the same thing or upstream is mid-update.
    async fn companions(
        &self,
        dir: &SuiteDir,
        text: &str,
    ) -> anyhow::Result<Vec<(RelPath, Bytes, Option<SystemTime>)>> {
        let release_path = dir.file("Release")?;
        let gpg_path = dir.file("Release.gpg")?;
        let rel = self.optional(&self.url(&release_path)?).await?;
        let gpg = self.optional(&self.url(&gpg_path)?).await?;
        let gpg_shown = redact(&self.url(&gpg_path)?);
        let mut out = Vec::new();
        if let Some((rel_body, rel_mtime)) = rel {
            if rel_body.as_ref() != text.as_bytes() {
                return Err(UpstreamMoved {
                    url: redact(&self.url(&release_path)?),
                }
                .into());
            }
            if let Some((gpg_body, gpg_mtime)) = gpg {
                if let Some(k) = self.keyring {
                    signature::verify_detached(k, &rel_body, &gpg_body)
                        .with_context(|| format!("verifying {gpg_shown}"))?;
                }
                out.push((gpg_path, gpg_body, gpg_mtime));
            }
            out.push((release_path, rel_body, rel_mtime));
        }
        Ok(out)
    }

    /// The old layout: Release signed by a detached Release.gpg.
    async fn fetch_release_gpg(
        &self,
        dir: &SuiteDir,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Suite> {
        let release_path = dir.file("Release")?;
        let rel_url = self.url(&release_path)?;
        let signed = self.published_signed(&release_path);
        let mut fetched = match self
            .upstream
            .get_meta(&rel_url, MAX_RELEASE_BYTES, signed.known)
            .await
        {
            Ok(Meta::Body {
                body,
                validators,
                last_modified,
                ..
            }) => Some((body, validators, last_modified)),
            Ok(Meta::NotModified) => None,
            Err(e) => {
                return Err(e).context("neither InRelease nor Release could be fetched");
            }
        };
        // An InRelease published earlier is not carried over: upstream no longer has
        // it, and apt would prefer it to the Release it goes with.
        let carry = ["Release", "Release.gpg"];
        let unchanged = Unchanged {
            dir,
            path: &release_path,
            url: &rel_url,
            carry: &carry,
            again: "verifying upstream's again",
        };
        if let Some(suite) = self
            .carried(&unchanged, &signed, &mut fetched, notes)
            .await?
        {
            return Ok(suite);
        }
        let got = self.body_of(fetched, &rel_url)?;
        self.new_release(dir, release_path, got, notes).await
    }

    /// A Release upstream published since, verified with its Release.gpg.
    async fn new_release(
        &self,
        dir: &SuiteDir,
        release_path: RelPath,
        (body, validators, mtime): Got,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Suite> {
        let gpg_path = dir.file("Release.gpg")?;
        let gpg_url = self.url(&gpg_path)?;
        let (rel_shown, gpg_shown) = (redact(&self.url(&release_path)?), redact(&gpg_url));
        let mut new_files = vec![(release_path.clone(), body.clone(), mtime)];
        let text = match self.keyring {
            Some(k) => {
                let Some((sig, sig_mtime)) = self.optional(&gpg_url).await? else {
                    bail!("{gpg_shown}: missing, and the Release cannot be trusted without it");
                };
                let verified = signature::verify_detached(k, &body, &sig)
                    .with_context(|| format!("verifying {rel_shown} with {gpg_shown}"))?;
                new_files.push((gpg_path, sig, sig_mtime));
                verified.text
            }
            None => String::from_utf8(body.to_vec())
                .map_err(|_| anyhow!("{rel_shown}: Release is not UTF-8"))?,
        };
        let release = self.dated(dir, &text, &rel_shown, notes)?;
        Ok(Suite::fetched(
            dir,
            release,
            new_files,
            release_path,
            body,
            validators,
        ))
    }

    /// Verified Release text parsed, and refused if expired or older than the one
    /// published (the rollback floor).
    fn dated(
        &self,
        dir: &SuiteDir,
        text: &str,
        shown: &str,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Release> {
        let release = Release::parse(text).with_context(|| format!("parsing {shown}"))?;
        let floor = published_floor(self.current, dir, self.keyring, self.recorded, notes);
        check_dates(&release, self.apt, floor, self.now).with_context(|| shown.to_string())?;
        Ok(release)
    }

    /// GETs a file that may legitimately be missing.
    async fn optional(&self, url: &Url) -> anyhow::Result<Option<(Bytes, Option<SystemTime>)>> {
        match self.upstream.get_meta(url, MAX_RELEASE_BYTES, None).await {
            Ok(Meta::Body {
                body,
                last_modified,
                ..
            }) => Ok(Some((body, last_modified))),
            Ok(Meta::NotModified) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The published copy of the signed file `path` and the validators recorded with
    /// it, when the no-op shortcut may be taken.
    fn published_signed(&self, path: &RelPath) -> PublishedSigned<'_> {
        let published = self
            .current
            .and_then(|c| c.manifest.files.get(path).map(|e| (c, e.sha256)));
        // Validators count only for the content they were taken with: after a manual
        // rollback of the served link, a 304 must not pin the older tree.
        let known = self.shortcut.and_then(|s| {
            let (_, sha) = published?;
            s.validators
                .get(path.as_str())
                .filter(|v| v.content_sha256.as_deref() == Some(hex::encode(sha).as_str()))
        });
        PublishedSigned { published, known }
    }

    /// The published suite, carried over when upstream's signed file (`fetched`, or
    /// a 304 for None) is the published one and the published copy still verifies;
    /// else None, with upstream's bytes in `fetched` for the caller to verify.
    async fn carried(
        &self,
        u: &Unchanged<'_>,
        signed: &PublishedSigned<'_>,
        fetched: &mut Option<Got>,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Option<Suite>> {
        let (Some((c, sha)), true) = (signed.published, self.shortcut.is_some()) else {
            return Ok(None);
        };
        let same = match fetched {
            None => true,
            Some((body, _, _)) => sha == <[u8; 32]>::from(Sha256::digest(body)),
        };
        if !same {
            return Ok(None);
        }
        match published_suite(u.dir, c, u.path, u.carry, self.keyring) {
            Ok(mut suite) => {
                check_still_valid(&suite.release, self.apt, self.now)
                    .with_context(|| redact(u.url))?;
                suite.validators = fetched
                    .take()
                    .map(|(_, v, _)| v)
                    .or_else(|| signed.known.cloned());
                Ok(Some(suite))
            }
            Err(e) => {
                notes.push(format!("suite {}: {e:#}; {}", u.dir.name(), u.again));
                if fetched.is_none() {
                    *fetched = Some(self.fetch_unconditionally(u.url).await?);
                }
                Ok(None)
            }
        }
    }

    /// Upstream's bytes; a 304 without a published copy cannot happen (we only ask
    /// conditionally when we hold one), so it is taken for a server bug.
    fn body_of(&self, fetched: Option<Got>, url: &Url) -> anyhow::Result<Got> {
        fetched.ok_or_else(|| {
            anyhow!(
                "{}: 304 Not Modified to an unconditional request",
                redact(url)
            )
        })
    }

    /// A GET without validators, for when a 304 answered for a published copy that
    /// can no longer be trusted.
    async fn fetch_unconditionally(&self, url: &Url) -> anyhow::Result<Got> {
        match self.upstream.get_meta(url, MAX_RELEASE_BYTES, None).await? {
            Meta::Body {
                body,
                validators,
                last_modified,
                ..
            } => Ok((body, validators, last_modified)),
            Meta::NotModified => bail!(
                "{}: 304 Not Modified to an unconditional request",
                redact(url)
            ),
        }
    }
}

/// A suite whose signed Release is the one already published: carry it over. The
/// published copy is read back only if it still matches the manifest and still
/// verifies, so a file edited after publishing feeds nothing.
fn published_suite(
    dir: &SuiteDir,
    c: &Snapshot,
    signed: &RelPath,
    carry: &[&str],
    keyring: Option<&Keyring>,
) -> anyhow::Result<Suite> {
    let (bytes, text) = read_published(c, signed, keyring)?;
    let file = signed.under(&c.dir);
    let release = Release::parse(&text).with_context(|| format!("parsing {}", file.display()))?;
    let mut kept = Vec::new();
    for f in carry {
        let p = dir.file(f)?;
        if let Some(e) = c.manifest.files.get(&p) {
            kept.push(Wanted {
                path: p.clone(),
                size: e.size,
                sha256: e.sha256,
                source: p,
            });
        }
    }
    Ok(Suite {
        name: dir.name().to_string(),
        dir: dir.clone(),
        release,
        new_files: Vec::new(),
        kept_files: kept,
        unchanged: true,
        signed_bytes: bytes,
        signed_path: signed.clone(),
        validators: None,
    })
}
