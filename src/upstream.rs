//! The one HTTP client every mirror talks to its upstream through.
//!
//! It owns retries (transient failures only, exponential backoff with jitter, honouring
//! Retry-After), conditional GETs for small metadata, and verified downloads: every
//! chunk is hashed and counted as it is written, a body longer than expected is cut off,
//! and an interrupted download resumes with Range when the server answers 206.
//! Callers hand it URLs and destination paths; it never decides what to fetch.

use std::io::{Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use url::Url;

use crate::auth::AuthConf;
use crate::config::{IpFamily, Network};
use crate::ratelimit::RateLimiter;

pub const USER_AGENT: &str = concat!("mirrorsync/", env!("CARGO_PKG_VERSION"));

/// The least a download must move per `timeout` window (a server trickling a byte a
/// second never trips a read timeout).
const MIN_BYTES_PER_WINDOW: u64 = 1024;

/// Longest a single backoff sleep may be, whatever Retry-After says.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: HTTP {code}")]
    Status { url: String, code: u16 },
    /// 401, or 403 to a request that carried a login.
    #[error("{url}: HTTP {code}: {}", match .sent {
        Some(m) => format!("the upstream refused the login of {m}"),
        None => "the upstream wants a login: name a file in apt's auth.conf format with \
                 auth_conf, holding a machine entry for this URL".to_string(),
    })]
    Unauthorized {
        url: String,
        code: u16,
        /// The auth.conf entry whose login was sent, if any.
        sent: Option<String>,
    },
    #[error("{url}: {detail}")]
    Transport {
        url: String,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: body ended after {actual} of {expected} bytes")]
    Truncated {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{url}: body is longer than the {expected} bytes expected; cut off")]
    TooLong { url: String, expected: u64 },
    #[error("{url}: server announced {announced} bytes, {expected} expected")]
    WrongLength {
        url: String,
        expected: u64,
        announced: u64,
    },
    #[error("{url}: SHA256 mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: answered with an HTML page where a file was expected")]
    SoftNotFound { url: String },
    #[error("{url}: stalled: {bytes} bytes in {seconds} s, below the minimum rate")]
    TooSlow {
        url: String,
        bytes: u64,
        seconds: u64,
    },
    #[error("writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Stage(crate::snapshot::SnapshotError),
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl FetchError {
    /// Worth another try: the network or the server may do better in a moment.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { code, .. } => *code >= 500 || *code == 429 || *code == 408,
            FetchError::Transport { source, .. } => {
                // A body cut off mid-way is the network too; only a bad request or a
                // redirect loop will fail the same way again.
                !(source.is_builder() || source.is_redirect())
            }
            FetchError::Truncated { .. } | FetchError::TooSlow { .. } => true,
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            FetchError::Status {
                code: 404 | 410,
                ..
            } | FetchError::SoftNotFound { .. }
        )
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
        move |source| FetchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What we know about a copy we already hold, for a conditional GET.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// SHA256 of the content they were taken with (set by the caller that keeps them).
    #[serde(default)]
    pub content_sha256: Option<String>,
}

/// A small body held in memory: Release files, traces, listings.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per request, moved once
pub enum Meta {
    NotModified,
    Body {
        body: Bytes,
        validators: Validators,
        last_modified: Option<SystemTime>,
        /// Where the body came from after redirects.
        url: Url,
        content_type: Option<String>,
    },
}

/// A HEAD answer.
#[derive(Debug, Clone)]
pub struct Head {
    pub size: Option<u64>,
    pub validators: Validators,
    /// Where it was found after redirects.
    pub url: Url,
}

/// What a download must turn out to be.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub size: u64,
    /// None for a file no checksum vouches for (an image tree's sidecar files): the
    /// digest is then computed, and a resume must be vouched for by If-Range instead.
    pub sha256: Option<[u8; 32]>,
}

#[derive(Debug, Clone)]
pub struct Downloaded {
    /// Bytes that crossed the network in this call (less than the size after a resume).
    pub received: u64,
    pub last_modified: Option<SystemTime>,
    /// SHA256 of the whole file.
    pub sha256: [u8; 32],
    /// The response's ETag and Last-Modified, to tell next time whether it changed.
    pub validators: Validators,
    /// The install target already held these bytes; nothing was fetched.
    pub already_installed: bool,
}

/// Counts of what the client did, for the run summary and the benchmarks.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
    pub retries: std::sync::atomic::AtomicU64,
}

/// The HTTP client of one mirror: cheap to clone, shares its connection pool.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    /// A transfer that moves fewer than MIN_BYTES_PER_WINDOW in this long is dead,
    /// even if it never goes silent long enough for the read timeout.
    stall_window: Duration,
    retries: u32,
    retry_delay: Duration,
    limiter: Option<Arc<RateLimiter>>,
    pub counters: Arc<Counters>,
    /// Logins for URLs that want one.
    auth: Option<Arc<AuthConf>>,
}

impl Upstream {
    pub fn new(net: &Network) -> Result<Upstream, FetchError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(net.timeout)
            // Per read, not per request: a multi-GB image may take hours, but a
            // silent connection is dead after `timeout`.
            .read_timeout(net.timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .pool_max_idle_per_host(net.concurrency.get());
        let local = match (net.bind_address, net.ip) {
            (Some(addr), _) => Some(addr),
            (None, IpFamily::V4) => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            (None, IpFamily::V6) => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            (None, IpFamily::Any) => None,
        };
        builder = builder.local_address(local);
        let client = builder.build().map_err(FetchError::Client)?;
        Ok(Upstream {
            client,
            stall_window: net.timeout,
            retries: net.retries,
            retry_delay: net.retry_delay,
            limiter: net.bandwidth_limit.map(|r| Arc::new(RateLimiter::new(r))),
            counters: Arc::default(),
            auth: None,
        })
    }

    /// Sends the login of the first `auth` machine matching a request's URL with it.
    pub fn with_auth(mut self, auth: Option<Arc<AuthConf>>) -> Upstream {
        self.auth = auth;
        self
    }

    /// A request of `method` for `url`, with its login if auth.conf has one for it.
    /// reqwest drops the header when a redirect leaves the host, as apt does.
    fn request(&self, method: reqwest::Method, url: &Url) -> reqwest::RequestBuilder {
        let req = self.client.request(method, url.clone());
        match self.auth.as_ref().and_then(|a| a.for_url(url)) {
            Some(m) => req.basic_auth(m.login(), Some(m.password())),
            None => req,
        }
    }

    /// A refusal, with the auth.conf entry whose login was sent (or none).
    fn explain(&self, e: FetchError, url: &Url) -> FetchError {
        match e {
            FetchError::Unauthorized {
                url: shown, code, ..
            } => {
                let sent = self
                    .auth
                    .as_ref()
                    .and_then(|a| a.for_url(url).map(|m| m.describe(&a.file)));
                if code == 403 && sent.is_none() {
                    return FetchError::Status { url: shown, code };
                }
                FetchError::Unauthorized {
                    url: shown,
                    code,
                    sent,
                }
            }
            other => other,
        }
    }

    /// Requests made so far through this client.
    pub fn requests(&self) -> u64 {
        self.counters
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_request(&self) {
        self.counters
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn count_bytes(&self, n: u64) {
        self.counters
            .bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs `attempt` until it succeeds, fails permanently, or retries run out.
    async fn retrying<T, F, Fut>(&self, url: &Url, mut attempt: F) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, (FetchError, Option<Duration>)>>,
    {
        let mut tries = 0u32;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err((e, retry_after)) => {
                    if !e.is_transient() || tries >= self.retries {
                        return Err(self.explain(e, url));
                    }
                    let delay = retry_after.unwrap_or_else(|| backoff(self.retry_delay, tries));
                    tracing::warn!(error = %e, retry_in = ?delay, "transient failure, retrying");
                    self.counters
                        .retries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(delay.min(MAX_BACKOFF)).await;
                    tries += 1;
                }
            }
        }
    }

    /// GETs a small file into memory, conditionally when `known` is given.
    /// Bodies over `max` bytes are refused.
    pub async fn get_meta(
        &self,
        url: &Url,
        max: u64,
        known: Option<&Validators>,
    ) -> Result<Meta, FetchError> {
        self.retrying(url, || async {
            let mut req = self.request(reqwest::Method::GET, url);
            if let Some(v) = known {
                if let Some(etag) = &v.etag {
                    req = req.header(header::IF_NONE_MATCH, etag);
                }
                if let Some(lm) = &v.last_modified {
                    req = req.header(header::IF_MODIFIED_SINCE, lm);
                }
            }
            self.count_request();
            let resp = req.send().await.map_err(|e| (transport(url, e), None))?;
            let status = resp.status();
            if status == StatusCode::NOT_MODIFIED && known.is_some() {
                return Ok(Meta::NotModified);
            }
            check_status(url, status, resp.headers())?;
            let announced = resp.content_length();
            if announced.is_some_and(|n| n > max) {
                return Err((
                    FetchError::TooLong {
                        url: redact(url),
                        expected: max,
                    },
                    None,
                ));
            }
            let validators = validators_of(resp.headers());
            let last_modified = last_modified_of(resp.headers());
            let final_url = resp.url().clone();
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut body = Vec::with_capacity(announced.unwrap_or(0).min(1 << 20) as usize);
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| (transport(url, e), None))?;
                self.count_bytes(chunk.len() as u64);
                if body.len() as u64 + chunk.len() as u64 > max {
                    return Err((
                        FetchError::TooLong {
                            url: redact(url),
                            expected: max,
                        },
                        None,
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            if let Some(n) = announced
                && body.len() as u64 != n
            {
                return Err((
                    FetchError::Truncated {
                        url: redact(url),
                        expected: n,
                        actual: body.len() as u64,
                    },
                    None,
                ));
            }
            Ok(Meta::Body {
                body: Bytes::from(body),
                validators,
                last_modified,
                url: final_url,
                content_type,
            })
        })
        .await
    }

    /// HEADs a file: its size and validators, without its body. A `text/html` answer
    /// for a file that is not HTML is a soft 404.
    pub async fn head(&self, url: &Url) -> Result<Head, FetchError> {
        self.retrying(url, || async {
            self.count_request();
            let resp = self
                .request(reqwest::Method::HEAD, url)
                .send()
                .await
                .map_err(|e| (transport(url, e), None))?;
            check_status(url, resp.status(), resp.headers())?;
            if is_html(resp.headers()) && !url.path().ends_with(".html") {
                return Err((FetchError::SoftNotFound { url: redact(url) }, None));
            }
            // reqwest reports no length for HEAD (no body); the header is the answer.
            let size = resp
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            Ok(Head {
                size,
                validators: validators_of(resp.headers()),
                url: resp.url().clone(),
            })
        })
        .await
    }

    /// HEADs `url`: true for 200, false for 404/410. Used for marker files.
    pub async fn exists(&self, url: &Url) -> Result<bool, FetchError> {
        self.retrying(url, || async {
            self.count_request();
            let resp = self
                .request(reqwest::Method::HEAD, url)
                .send()
                .await
                .map_err(|e| (transport(url, e), None))?;
            match resp.status() {
                s if s.is_success() => Ok(true),
                StatusCode::NOT_FOUND | StatusCode::GONE => Ok(false),
                s => {
                    check_status(url, s, resp.headers())?;
                    Ok(false)
                }
            }
        })
        .await
    }

    /// Downloads `url` into `dest`, which must be on the same filesystem as where the
    /// file will live. Existing bytes in `dest` are resumed with Range. On success
    /// `dest` holds exactly the expected bytes; on a checksum or length error it is
    /// removed; on a transient error that outlived the retries it is kept for resuming.
    pub async fn download(
        &self,
        url: &Url,
        dest: &Path,
        expected: Expected,
        on_progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Downloaded, FetchError> {
        self.download_into(url, dest, None, expected, on_progress)
            .await
    }

    /// [`Upstream::download`] into `partial`, then, when `install` is given, the
    /// verified file moved there (read-only, its writeback started, parents created)
    /// in the same blocking step that verified it. If `install` already holds the
    /// expected bytes (staged by a run that did not publish; they are hashed again, a
    /// power cut may have lost them), nothing is fetched and `already_installed` says so.
    pub async fn download_into(
        &self,
        url: &Url,
        partial: &Path,
        install: Option<&Path>,
        expected: Expected,
        on_progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Downloaded, FetchError> {
        // Only bytes kept from an earlier run can be what went wrong with a checksum;
        // without any, a mismatch is upstream's, and fetching a 1 GB image a second
        // time would only say so twice.
        let kept = tokio::fs::metadata(partial)
            .await
            .is_ok_and(|m| m.len() > 0);
        let mut restarted = !kept;
        loop {
            let result = self
                .retrying(url, || {
                    self.download_once(url, partial, install, expected, on_progress)
                })
                .await;
            match result {
                Err(FetchError::ChecksumMismatch { .. }) if !restarted => {
                    // The kept bytes may be what went wrong (a partial file from a
                    // power cut); try once more from nothing before blaming upstream.
                    restarted = true;
                    discard_partial(partial).await;
                    continue;
                }
                Err(e) => {
                    // A verified file that could not be moved into place (a full disk)
                    // stays, for the next run to install without fetching it again.
                    if !e.is_transient() && !matches!(e, FetchError::Stage(_)) {
                        discard_partial(partial).await;
                    }
                    return Err(e);
                }
                // The finishing step removed the resume validator, if there was one.
                Ok(d) => return Ok(d),
            }
        }
    }

    /// One try at a download: look at what is kept, ask for the rest, take the body
    /// in, verify it and put it in place.
    async fn download_once(
        &self,
        url: &Url,
        dest: &Path,
        install: Option<&Path>,
        expected: Expected,
        on_progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Attempted<Downloaded> {
        let (have, resume_from) = match find_kept(dest, install, expected).await {
            Ok(Found::Done(d)) => return Ok(d),
            Ok(Found::Resume { have, validator }) => (have, validator),
            Err(e) => return Err((FetchError::io(dest)(e), None)),
        };
        let resp = self.request_from(url, have, resume_from.as_ref()).await?;
        let (have, validators) =
            accept_response(url, dest, &resp, have, resume_from.as_ref(), expected).await?;
        let last_modified = last_modified_of(resp.headers());
        // What this body is, so a resume can ask for the same one.
        let validator = validators
            .etag
            .clone()
            .filter(|e| !e.starts_with("W/"))
            .or_else(|| validators.last_modified.clone());
        let sink = Sink::new(dest, have, expected, &validator, resume_from.is_some());
        let mut transfer = Transfer {
            url,
            dest,
            expected,
            have,
            validator,
            writer: Writer::new(sink),
            batch: Batch::default(),
            received: 0,
        };
        self.receive(&mut transfer, resp, on_progress).await?;
        let received = transfer.received;
        let sha256 = transfer.finish(last_modified, install).await?;
        Ok(Downloaded {
            received,
            last_modified,
            sha256,
            validators,
            already_installed: false,
        })
    }

    /// GETs `url`, from byte `have` on when bytes are kept, and only if the file is
    /// still the one they came from when a validator says which that was.
    async fn request_from(
        &self,
        url: &Url,
        have: u64,
        resume_from: Option<&String>,
    ) -> Attempted<reqwest::Response> {
        let mut req = self.request(reqwest::Method::GET, url);
        if have > 0 {
            req = req.header(header::RANGE, format!("bytes={have}-"));
            if let Some(v) = resume_from {
                req = req.header(header::IF_RANGE, v.as_str());
            }
        }
        self.count_request();
        req.send().await.map_err(|e| (transport(url, e), None))
    }

    /// Takes the body in, batch by batch, into `t`'s file; gives up on a body longer
    /// than expected or slower than the floor, keeping what arrived for a resume
    /// where that can help.
    async fn receive(
        &self,
        t: &mut Transfer<'_>,
        resp: reqwest::Response,
        on_progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Attempted<()> {
        let url = t.url;
        on_progress(t.have);
        let mut stream = resp.bytes_stream();
        let mut window_start = tokio::time::Instant::now();
        let mut window_bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // Keep what arrived so the retry resumes from here.
                    t.keep().await?;
                    return Err((transport(url, e), None));
                }
            };
            if let Some(l) = &self.limiter {
                l.acquire(chunk.len() as u64).await;
            }
            if t.have + t.received + chunk.len() as u64 > t.expected.size {
                // Nothing may still be writing when the partial file goes.
                let _ = t.writer.idle().await;
                discard_partial(t.dest).await;
                return Err((
                    FetchError::TooLong {
                        url: redact(url),
                        expected: t.expected.size,
                    },
                    None,
                ));
            }
            window_bytes += chunk.len() as u64;
            if window_start.elapsed() >= self.stall_window {
                // The bandwidth cap's own pauses are counted too; the cap is meant
                // to be far above this floor.
                if window_bytes < MIN_BYTES_PER_WINDOW {
                    t.keep().await?;
                    return Err((
                        FetchError::TooSlow {
                            url: redact(url),
                            bytes: window_bytes,
                            seconds: self.stall_window.as_secs(),
                        },
                        None,
                    ));
                }
                window_start = tokio::time::Instant::now();
                window_bytes = 0;
            }
            t.received += chunk.len() as u64;
            self.count_bytes(chunk.len() as u64);
            on_progress(chunk.len() as u64);
            t.push(chunk).await?;
        }
        Ok(())
    }
}

/// One try's outcome; a failure carries how long the server asked us to wait.
type Attempted<T> = Result<T, (FetchError, Option<Duration>)>;

/// Looks, on a blocking thread, at what earlier runs left at `dest` and `install`.
async fn find_kept(
    dest: &Path,
    install: Option<&Path>,
    expected: Expected,
) -> std::io::Result<Found> {
    // Every file operation of a download runs in a few blocking steps (this one,
    // one per BATCH of body, the last): a tokio::fs call per operation costs a
    // thread hand-off each, which on two cores was more than the I/O itself.
    let (dest, install) = (dest.to_path_buf(), install.map(Path::to_path_buf));
    blocking(move || inspect_partial(&dest, install.as_deref(), expected))
        .await
        .and_then(|r| r)
}

/// Checks an answer before any of its body is written. Returns the byte the body
/// starts at (0: it is the whole file, whatever was asked for) and its validators.
async fn accept_response(
    url: &Url,
    dest: &Path,
    resp: &reqwest::Response,
    have: u64,
    resume_from: Option<&String>,
    expected: Expected,
) -> Attempted<(u64, Validators)> {
    let status = resp.status();
    if status == StatusCode::RANGE_NOT_SATISFIABLE && have > 0 {
        // What we kept no longer fits what the server has: start again.
        return restart(url, dest, expected).await;
    }
    check_status(url, status, resp.headers())?;
    let validators = validators_of(resp.headers());
    if status == StatusCode::PARTIAL_CONTENT
        && let Some(kept) = resume_from
        && Some(kept) != validators.etag.as_ref()
        && Some(kept) != validators.last_modified.as_ref()
    {
        // A server that ignores If-Range sends the rest of another file.
        tracing::info!(url = %redact(url), "upstream file changed since the partial download; restarting");
        return restart(url, dest, expected).await;
    }
    let have = if status != StatusCode::PARTIAL_CONTENT || !range_starts_at(resp.headers(), have) {
        // A 200 is the whole file again, whatever we asked for.
        0
    } else {
        have
    };
    if let Some(len) = resp.content_length()
        && have + len != expected.size
    {
        return Err((
            FetchError::WrongLength {
                url: redact(url),
                expected: expected.size,
                announced: have + len,
            },
            None,
        ));
    }
    if is_html(resp.headers()) && !url.path().ends_with(".html") {
        return Err((FetchError::SoftNotFound { url: redact(url) }, None));
    }
    Ok((have, validators))
}

/// Drops the kept bytes and fails so that the retry, at once, starts from nothing.
async fn restart<T>(url: &Url, dest: &Path, expected: Expected) -> Attempted<T> {
    discard_partial(dest).await;
    Err((
        FetchError::Truncated {
            url: redact(url),
            expected: expected.size,
            actual: 0,
        },
        Some(Duration::ZERO),
    ))
}

/// A body on its way to disk.
struct Transfer<'a> {
    url: &'a Url,
    dest: &'a Path,
    expected: Expected,
    /// Bytes kept from before, which the body continues.
    have: u64,
    /// What identifies this body, for a resume to ask for the same one.
    validator: Option<String>,
    writer: Writer,
    /// Chunks not yet handed to the writer.
    batch: Batch,
    /// Bytes of this body so far.
    received: u64,
}

impl Transfer<'_> {
    fn io_error(&self, e: std::io::Error) -> (FetchError, Option<Duration>) {
        (FetchError::io(self.dest)(e), None)
    }

    /// Adds a chunk; a full batch goes to the writer.
    async fn push(&mut self, chunk: Bytes) -> Attempted<()> {
        self.batch.push(chunk);
        if self.batch.bytes >= BATCH {
            let batch = std::mem::take(&mut self.batch);
            if let Err(e) = self.writer.submit(batch).await {
                return Err(self.io_error(e));
            }
        }
        Ok(())
    }

    /// After an interrupted body: what arrived is written and kept for a resume.
    async fn keep(&mut self) -> Attempted<()> {
        let batch = std::mem::take(&mut self.batch);
        let validator = self.validator.take();
        match self.writer.keep(batch, validator).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.io_error(e)),
        }
    }

    /// Writes the last batch, verifies the whole file and moves it to `install`;
    /// returns its SHA256.
    async fn finish(
        mut self,
        last_modified: Option<SystemTime>,
        install: Option<&Path>,
    ) -> Attempted<[u8; 32]> {
        let mut sink = match self.writer.idle().await {
            Ok(sink) => sink,
            Err(e) => return Err(self.io_error(e)),
        };
        let (batch, expected) = (std::mem::take(&mut self.batch), self.expected);
        let install = install.map(Path::to_path_buf);
        let finished = blocking(move || -> Result<[u8; 32], Finish> {
            sink.write(&batch.chunks)?;
            sink.finish(expected, last_modified, install.as_deref())
        })
        .await;
        match finished {
            Ok(Ok(sha256)) => Ok(sha256),
            Ok(Err(e)) => Err(self.finish_error(e)),
            Err(e) => Err(self.io_error(e)),
        }
    }

    fn finish_error(&self, e: Finish) -> (FetchError, Option<Duration>) {
        let url = redact(self.url);
        match e {
            Finish::Io(e) => self.io_error(e),
            Finish::Stage(e) => (FetchError::Stage(e), None),
            Finish::Truncated { written } => (
                FetchError::Truncated {
                    url,
                    expected: self.expected.size,
                    actual: written,
                },
                None,
            ),
            Finish::Mismatch { want, actual } => (
                FetchError::ChecksumMismatch {
                    url,
                    expected: hex::encode(want),
                    actual: hex::encode(actual),
                },
                None,
            ),
        }
    }
}

/// Body bytes handed to a blocking step at a time: large enough that a typical
/// package is one step, small enough that `concurrency` downloads, each with one
/// batch filling and one being written, stay a few MB.
const BATCH: usize = 256 * 1024;

/// Chunks of a body, not yet written.
#[derive(Default)]
struct Batch {
    chunks: Vec<Bytes>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, chunk: Bytes) {
        self.bytes += chunk.len();
        self.chunks.push(chunk);
    }
}

/// What a download found on disk before asking for anything.
enum Found {
    Done(Downloaded),
    /// Ask from byte `have`, with the validator of the response the kept bytes came
    /// from (a `.validator` file beside them).
    Resume {
        have: u64,
        validator: Option<String>,
    },
}

fn inspect_partial(
    dest: &Path,
    install: Option<&Path>,
    expected: Expected,
) -> std::io::Result<Found> {
    let done = |already_installed| {
        Found::Done(Downloaded {
            received: 0,
            last_modified: None,
            sha256: expected.sha256.unwrap_or_default(),
            validators: Validators::default(),
            already_installed,
        })
    };
    if let (Some(to), Some(sha256)) = (install, expected.sha256)
        && crate::digest::file_matches(to, expected.size, &sha256)
    {
        return Ok(done(true));
    }
    let Ok(m) = std::fs::metadata(dest) else {
        // The usual case: nothing kept, one failed stat.
        return Ok(Found::Resume {
            have: 0,
            validator: None,
        });
    };
    if let Some(sha256) = expected.sha256
        && m.len() == expected.size
    {
        if crate::digest::file_matches(dest, expected.size, &sha256) {
            // Downloaded in full by a run that died before moving it into place.
            if let Some(to) = install {
                let file = std::fs::File::open(dest)?;
                crate::snapshot::install_open_file(file, dest, to)
                    .map_err(std::io::Error::other)?;
            }
            let _ = std::fs::remove_file(resume_validator_path(dest));
            return Ok(done(false));
        }
        discard_partial_now(dest);
        return Ok(Found::Resume {
            have: 0,
            validator: None,
        });
    }
    let validator = std::fs::read_to_string(resume_validator_path(dest))
        .ok()
        .filter(|v| !v.is_empty());
    // Without a checksum at the end, only If-Range can vouch that the kept bytes and
    // the rest belong to the same file.
    if m.len() < expected.size && (expected.sha256.is_some() || validator.is_some()) {
        return Ok(Found::Resume {
            have: m.len(),
            validator,
        });
    }
    discard_partial_now(dest);
    Ok(Found::Resume {
        have: 0,
        validator: None,
    })
}

/// How a download's file begins.
enum Start {
    /// From nothing. `validator`: the sidecar to write first (Some(None): remove
    /// any), None to leave it for an interruption; `stale_validator`: one was found
    /// that describes bytes now thrown away.
    Fresh {
        validator: Option<Option<String>>,
        stale_validator: bool,
    },
    /// After this many kept bytes, which are hashed again.
    Resume(u64),
}

/// The file a download writes, used only on blocking threads.
struct Sink {
    path: PathBuf,
    /// Opened by the first write, so a 404 leaves no empty file behind.
    file: Option<std::fs::File>,
    start: Start,
    hasher: Sha256,
    written: u64,
    validator_on_disk: bool,
}

enum Finish {
    Io(std::io::Error),
    Stage(crate::snapshot::SnapshotError),
    Truncated { written: u64 },
    Mismatch { want: [u8; 32], actual: [u8; 32] },
}

impl From<std::io::Error> for Finish {
    fn from(e: std::io::Error) -> Finish {
        Finish::Io(e)
    }
}

impl Sink {
    /// The sink of a body starting at byte `have`. `validator` is the body's, and
    /// `validator_kept` says a `.validator` file describes the bytes kept before.
    fn new(
        path: &Path,
        have: u64,
        expected: Expected,
        validator: &Option<String>,
        validator_kept: bool,
    ) -> Sink {
        Sink {
            path: path.to_path_buf(),
            file: None,
            start: if have > 0 {
                Start::Resume(have)
            } else {
                Start::Fresh {
                    // Without a checksum, only If-Range can vouch for a resume, and a
                    // killed run gets no chance to write this later: write it now.
                    // With one, the digest vouches; it is written only if the
                    // download is interrupted, saving a file per download.
                    validator: if expected.sha256.is_none() {
                        Some(validator.clone())
                    } else {
                        None
                    },
                    stale_validator: validator_kept,
                }
            },
            hasher: Sha256::new(),
            written: have,
            validator_on_disk: validator_kept,
        }
    }

    fn open(&mut self) -> std::io::Result<&mut std::fs::File> {
        if self.file.is_none() {
            let file = match &self.start {
                Start::Resume(have) => {
                    let mut f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&self.path)?;
                    hash_prefix(&mut f, *have, &mut self.hasher)?;
                    f.seek(SeekFrom::Start(*have))?;
                    f.set_len(*have)?;
                    f
                }
                Start::Fresh {
                    validator,
                    stale_validator,
                } => {
                    let vpath = resume_validator_path(&self.path);
                    match validator {
                        Some(Some(v)) => {
                            std::fs::write(&vpath, v)?;
                            self.validator_on_disk = true;
                        }
                        Some(None) => {
                            let _ = std::fs::remove_file(&vpath);
                            self.validator_on_disk = false;
                        }
                        None if *stale_validator => {
                            let _ = std::fs::remove_file(&vpath);
                            self.validator_on_disk = false;
                        }
                        None => {}
                    }
                    std::fs::File::create(&self.path)?
                }
            };
            self.file = Some(file);
        }
        // Just set when it was None.
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("download file not open"))
    }

    fn write(&mut self, chunks: &[Bytes]) -> std::io::Result<()> {
        let file = self.open()?;
        write_chunks(file, chunks)?;
        for c in chunks {
            self.hasher.update(c);
            self.written += c.len() as u64;
        }
        Ok(())
    }

    /// After an interrupted body: what arrived stays, with the validator of the
    /// response it came from, so the retry (or the next run) resumes with If-Range.
    fn keep(&mut self, chunks: &[Bytes], validator: Option<String>) -> std::io::Result<()> {
        self.write(chunks)?;
        if !self.validator_on_disk
            && let Some(v) = validator
        {
            std::fs::write(resume_validator_path(&self.path), v)?;
            self.validator_on_disk = true;
        }
        Ok(())
    }

    fn finish(
        mut self,
        expected: Expected,
        last_modified: Option<SystemTime>,
        install: Option<&Path>,
    ) -> Result<[u8; 32], Finish> {
        // An empty body still makes a file.
        self.open()?;
        if self.written < expected.size {
            return Err(Finish::Truncated {
                written: self.written,
            });
        }
        let actual: [u8; 32] = self.hasher.finalize().into();
        if let Some(want) = expected.sha256
            && actual != want
        {
            return Err(Finish::Mismatch { want, actual });
        }
        let Some(file) = self.file else {
            return Err(Finish::Io(std::io::Error::other("download file not open")));
        };
        if let Some(t) = last_modified {
            // Upstream's time, as rsync -t does: web servers then answer
            // If-Modified-Since the way clients and probes expect.
            let _ = file.set_modified(t);
        }
        if self.validator_on_disk {
            let _ = std::fs::remove_file(resume_validator_path(&self.path));
        }
        if let Some(to) = install {
            crate::snapshot::install_open_file(file, &self.path, to).map_err(Finish::Stage)?;
        }
        Ok(actual)
    }
}

/// A download's sink, and the blocking step writing its last batch if one is running.
struct Writer {
    sink: Option<Sink>,
    busy: Option<tokio::task::JoinHandle<(Sink, std::io::Result<()>)>>,
}

impl Writer {
    fn new(sink: Sink) -> Writer {
        Writer {
            sink: Some(sink),
            busy: None,
        }
    }

    /// The sink, once the running step (if any) is done.
    async fn idle(&mut self) -> std::io::Result<Sink> {
        if let Some(step) = self.busy.take() {
            let (sink, result) = step.await.map_err(join_error)?;
            result?;
            return Ok(sink);
        }
        self.sink
            .take()
            .ok_or_else(|| std::io::Error::other("download sink lost"))
    }

    /// Hands `batch` to a blocking step and returns while it runs, so the body keeps
    /// arriving while the last batch is hashed and written; waits for the previous one
    /// first, which bounds the memory to two batches.
    async fn submit(&mut self, batch: Batch) -> std::io::Result<()> {
        let mut sink = self.idle().await?;
        self.busy = Some(tokio::task::spawn_blocking(move || {
            let r = sink.write(&batch.chunks);
            (sink, r)
        }));
        Ok(())
    }

    async fn keep(&mut self, batch: Batch, validator: Option<String>) -> std::io::Result<()> {
        let mut sink = self.idle().await?;
        blocking(move || sink.keep(&batch.chunks, validator)).await?
    }
}

/// Writes `chunks` in order with as few system calls as the kernel allows.
fn write_chunks(file: &mut std::fs::File, chunks: &[Bytes]) -> std::io::Result<()> {
    use std::io::{IoSlice, Write};
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "failed to write the whole buffer",
                ));
            }
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(join_error)
}

fn join_error(e: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(format!("file task failed: {e}"))
}

/// Where the validator of a partial download is kept, beside its bytes.
pub fn resume_validator_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".validator");
    PathBuf::from(name)
}

/// Drops a partial download and what it was resumed against.
async fn discard_partial(dest: &Path) {
    let dest = dest.to_path_buf();
    let _ = blocking(move || discard_partial_now(&dest)).await;
}

fn discard_partial_now(dest: &Path) {
    let _ = std::fs::remove_file(dest);
    let _ = std::fs::remove_file(resume_validator_path(dest));
}

fn hash_prefix(f: &mut std::fs::File, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    use std::io::Read;
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    f.seek(SeekFrom::Start(0))?;
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "partial file shrank while resuming",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

fn transport(url: &Url, e: reqwest::Error) -> FetchError {
    let detail = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else if e.is_redirect() {
        "too many redirects".to_string()
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the body".to_string()
    } else {
        "request failed".to_string()
    };
    FetchError::Transport {
        url: redact(url),
        detail,
        source: e,
    }
}

/// The URL without credentials, for messages and logs.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_username("");
        let _ = u.set_password(None);
    }
    u.to_string()
}

fn check_status(
    url: &Url,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<(), (FetchError, Option<Duration>)> {
    if status.is_success() {
        return Ok(());
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let e = FetchError::Unauthorized {
            url: redact(url),
            code: status.as_u16(),
            sent: None,
        };
        return Err((e, None));
    }
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, jiff::Timestamp::now()));
    Err((
        FetchError::Status {
            url: redact(url),
            code: status.as_u16(),
        },
        retry_after,
    ))
}

/// A Retry-After value in either of its forms (RFC 9110): seconds, or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), as the wait from `now`. A date already past
/// says nothing (the usual backoff applies).
fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Duration::try_from(when.duration_since(now))
        .ok()
        .filter(|d| !d.is_zero())
}

fn range_starts_at(headers: &HeaderMap, start: u64) -> bool {
    headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.parse::<u64>().ok())
        == Some(start)
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

fn validators_of(headers: &HeaderMap) -> Validators {
    let get = |h| {
        headers
            .get(h)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    Validators {
        etag: get(header::ETAG),
        last_modified: get(header::LAST_MODIFIED),
        content_sha256: None,
    }
}

fn last_modified_of(headers: &HeaderMap) -> Option<SystemTime> {
    headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

/// Exponential backoff with ±25% jitter, so many mirrors do not retry in step.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    let jitter: f64 = rand::Rng::gen_range(&mut rand::thread_rng(), 0.75..1.25);
    exp.mul_f64(jitter).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_as_an_http_date() {
        let now: jiff::Timestamp = "2026-11-30T20:00:00Z".parse().unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Mon, 30 Nov 2026 20:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        // A date already past: the usual backoff, not a retry at once.
        assert_eq!(retry_after("Mon, 30 Nov 2026 19:00:00 GMT", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        assert!(backoff(base, 0) <= Duration::from_millis(125));
        assert!(backoff(base, 3) >= Duration::from_millis(600));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }

    #[test]
    fn credentials_never_reach_messages() {
        let u = Url::parse("https://user:secret@example.org/debian/").unwrap();
        assert_eq!(redact(&u), "https://example.org/debian/");
    }

    #[test]
    fn only_server_side_and_network_failures_are_retried() {
        let st = |code| FetchError::Status {
            url: "u".into(),
            code,
        };
        assert!(st(503).is_transient());
        assert!(st(429).is_transient());
        assert!(!st(404).is_transient());
        assert!(!st(403).is_transient());
        assert!(
            !FetchError::ChecksumMismatch {
                url: "u".into(),
                expected: "a".into(),
                actual: "b".into()
            }
            .is_transient()
        );
    }
}
