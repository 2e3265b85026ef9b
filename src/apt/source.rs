//! The apt kind of mirror, as the shared run sees it: signed Release files -> the
//! indices they list -> the pool those list; Release files and traces go in last.

use anyhow::Context;
use globset::GlobSet;
use sha2::{Digest, Sha256};
use url::Url;

use super::indices;
use super::layout::SuiteDir;
use super::retry::UpstreamBusy;
use super::signature::Keyring;
use super::suite::{Suite, SuiteFetch};
use crate::config::{AptMirror, Mirror};
use crate::manifest::{Entry, Manifest};
use crate::pipeline::{Changes, Content, NewFile, Offer, Run, Source, Staged};
use crate::relpath::RelPath;
use crate::state::MirrorState;
use crate::trace::{self, TraceInput, UpstreamTraces};
use crate::upstream::{Meta, Upstream};

pub(super) struct AptSource<'a> {
    apt: &'a AptMirror,
    /// Where each configured suite lives.
    dirs: Vec<SuiteDir>,
    keyring: Option<Keyring>,
    fingerprint: String,
    suites: Vec<Suite>,
    upstream_traces: UpstreamTraces,
}

impl<'a> AptSource<'a> {
    pub fn new(mirror: &Mirror, apt: &'a AptMirror) -> anyhow::Result<AptSource<'a>> {
        let keyring = match &apt.keyring {
            Some(p) => Some(Keyring::from_file(p)?.with_policy(apt.signature_policy.clone())),
            None => None,
        };
        Ok(AptSource {
            apt,
            dirs: apt.suites.iter().map(|s| SuiteDir::of(s)).collect(),
            keyring,
            fingerprint: config_fingerprint(mirror, apt),
            suites: Vec::new(),
            upstream_traces: UpstreamTraces::default(),
        })
    }

    /// Each suite's Release files, verified; notes said even when a suite fails (an
    /// operator wants to know the published copy was edited behind the mirror's back).
    async fn fetch_suites(&self, run: &Run<'_>, shortcut_ok: bool) -> anyhow::Result<Vec<Suite>> {
        let fetch = SuiteFetch {
            upstream: &run.upstream,
            base: &run.mirror.upstream,
            apt: self.apt,
            keyring: self.keyring.as_ref(),
            current: run.current.as_ref(),
            shortcut: shortcut_ok.then_some(&run.state),
            recorded: &run.state.release_dates,
            now: run.ctx.now,
        };
        let mut suites = Vec::new();
        for name in &self.apt.suites {
            let mut notes = Vec::new();
            let suite = fetch
                .fetch(name, &mut notes)
                .await
                .with_context(|| format!("suite {name}"));
            for note in notes {
                run.warn(note);
            }
            suites.push(suite?);
        }
        Ok(suites)
    }

    fn newest_date(&self) -> Option<String> {
        self.suites
            .iter()
            .filter_map(|s| s.release.date)
            .max()
            .map(|d| d.to_string())
    }
}

impl Source for AptSource<'_> {
    async fn offer(&mut self, run: &Run<'_>) -> anyhow::Result<Offer> {
        let shortcut_ok = !run.ctx.options.verify_all
            && run.current.is_some()
            && run.suspect.is_empty()
            && run.state.config_fingerprint.as_deref() == Some(self.fingerprint.as_str());
        self.suites = self.fetch_suites(run, shortcut_ok).await?;
        if shortcut_ok && self.suites.iter().all(|s| s.unchanged) {
            return Ok(Offer::Unchanged {
                upstream_date: self.newest_date(),
            });
        }
        if !run.dry_run()
            && let Some(marker) = update_in_progress(&run.upstream, &run.mirror.upstream).await
        {
            return Err(UpstreamBusy { marker }.into());
        }
        let area = run.area()?;
        let mut wanted = indices::wanted(&self.suites, self.apt)?;
        let staged = indices::stage(run, area, &self.suites, &mut wanted).await?;
        // The upstream's trace files go into the snapshot with ours.
        self.upstream_traces = trace::fetch_upstream(&run.upstream, &run.mirror.upstream).await;
        let phase = std::time::Instant::now();
        let unsigned = self.keyring.is_none();
        let pool = indices::pool(
            run,
            &area.work,
            &self.suites,
            &staged.located,
            &wanted.wanted,
            unsigned,
        )
        .await?;
        tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "pool read");
        let metadata = self
            .suites
            .iter()
            .flat_map(|s| s.new_files.iter())
            .map(|(path, bytes, mtime)| NewFile {
                path: path.clone(),
                bytes: bytes.clone(),
                mtime: *mtime,
            })
            .collect();
        let files = wanted
            .wanted
            .iter()
            .map(|w| (w.path.clone(), Entry::from(w)));
        let mut notices = Vec::new();
        let by_size = pool.unverified.len() as u64 + staged.unverified;
        if by_size > 0 {
            notices.push(format!(
                "{by_size} file(s) the unsigned repository lists without a SHA256 checksum, \
                 fetched and checked by size only (unverified)"
            ));
        }
        Ok(Offer::Changed(Box::new(Changes {
            content: Content::Sorted(pool.sorted),
            unverified: pool.unverified,
            kept_unverified: pool.kept_unverified + staged.unverified,
            notices,
            staged: Manifest {
                files: files.collect(),
            },
            metadata,
            written_last: self.upstream_traces.paths(&run.ctx.global.hostname),
            summary: staged.summary,
            tally: staged.tally,
            upstream_date: self.newest_date(),
            ..Changes::default()
        })))
    }

    /// The trace files, last: they say the mirror is complete.
    async fn finish(&mut self, run: &Run<'_>, staged: &Staged<'_>) -> anyhow::Result<Vec<NewFile>> {
        let ctx = run.ctx;
        let architectures = architectures_held(self.apt, &self.suites);
        let input = TraceInput {
            hostname: &ctx.global.hostname,
            upstream: &run.mirror.upstream,
            started: ctx.now,
            finished: jiff::Timestamp::now(),
            bytes_received: staged.tally.bytes,
            architectures: &architectures,
            configured: &self.apt.architectures,
            sources: self.apt.sources,
            trigger: ctx.options.trigger,
        };
        Ok(trace::render(&input, &self.upstream_traces)
            .into_iter()
            .map(|(path, bytes)| NewFile {
                path,
                bytes,
                mtime: None,
            })
            .collect())
    }

    /// The config it was published for (the no-op shortcut), each suite's Release
    /// Date (the rollback floor) and the validators of its signed file.
    fn record(&mut self, _run: &Run<'_>, state: Option<&mut MirrorState>) {
        let Some(state) = state else {
            return;
        };
        state.config_fingerprint = Some(self.fingerprint.clone());
        for s in &self.suites {
            if let Some(date) = s.release.date {
                state.release_dates.insert(s.name.clone(), date.to_string());
            }
            if let Some(v) = &s.validators {
                let mut v = v.clone();
                v.content_sha256 = Some(hex::encode(Sha256::digest(&s.signed_bytes)));
                state.validators.insert(s.signed_path.to_string(), v);
            }
        }
    }

    fn tolerate(&self) -> &GlobSet {
        &self.apt.tolerate
    }

    fn content_noun(&self) -> &'static str {
        "pool files"
    }

    /// Pool files weigh; indices and traces turn over with every publish.
    fn counts_for_guard(&self, p: &RelPath) -> bool {
        !p.as_str().starts_with("dists/")
            && !p.as_str().starts_with("project/")
            && !self.dirs.iter().any(|d| d.holds_index(p))
    }

    /// Pool files and by-hash objects are named for their content (a new version is
    /// a new file name; a by-hash name is the digest).
    fn fixed_content(&self, p: &RelPath) -> bool {
        p.as_str().starts_with("pool/") || p.as_str().contains("/by-hash/")
    }

    /// Signed metadata is never kept for grace: an old InRelease next to a new
    /// Release (upstream dropped InRelease) is exactly the mix that gives clients
    /// hash sum mismatches.
    fn never_in_grace(&self, p: &RelPath) -> bool {
        self.dirs.iter().any(|d| d.holds_signed(p))
    }
}

/// The name of an Archive-Update-in-Progress marker at the upstream's root, if any.
/// ftpsync names it after the upstream's own host name; a root listing shows any.
async fn update_in_progress(upstream: &Upstream, base: &Url) -> Option<String> {
    const MARKER: &str = "Archive-Update-in-Progress-";
    if let Ok(Meta::Body { body, .. }) = upstream.get_meta(base, 1 << 20, None).await {
        let text = String::from_utf8_lossy(&body);
        if let Some(at) = text.find(MARKER) {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
                .collect();
            return Some(name);
        }
    }
    let name = format!("{MARKER}{}", base.host_str().unwrap_or_default());
    let url = base.join(&name).ok()?;
    match upstream.exists(&url).await {
        Ok(true) => Some(name),
        Ok(false) => None,
        Err(e) => {
            tracing::debug!(error = %e, "could not check for an update in progress");
            None
        }
    }
}

/// The architectures this tree really holds, for the trace file.
fn architectures_held(apt: &AptMirror, suites: &[Suite]) -> Vec<String> {
    let mut out: Vec<String> = apt
        .architectures
        .iter()
        .filter(|a| suites.iter().any(|s| s.release.architectures.contains(a)))
        .cloned()
        .collect();
    if apt.sources {
        out.push("source".into());
    }
    out.sort();
    out
}

/// What the config asks of this mirror; the no-op shortcut is only taken while it is
/// unchanged (a new architecture must be fetched even if upstream is not).
fn config_fingerprint(mirror: &Mirror, apt: &AptMirror) -> String {
    // The signature policy counts: relaxing or tightening it must judge the
    // published Release files again, not carry them over.
    let weaknesses: Vec<_> = apt.signature_policy.allowed().collect();
    let desc = format!(
        "{}|{:?}|{:?}|{:?}|{}|{:?}",
        mirror.upstream, apt.suites, apt.components, apt.architectures, apt.sources, weaknesses
    );
    hex::encode(Sha256::digest(desc.as_bytes()))
}
