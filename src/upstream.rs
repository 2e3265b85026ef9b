//! The one HTTP client every mirror talks to its upstream through.
//!
//! It owns retries (transient failures only, exponential backoff with jitter, honouring
//! Retry-After), conditional GETs for small metadata, and verified downloads: every
//! chunk is hashed and counted as it is written, a body longer than expected is cut off,
//! and an interrupted download resumes with Range when the server answers 206.
//! Callers hand it URLs and destination paths; it never decides what to fetch.

use std::io::SeekFrom;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use url::Url;

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
        })
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
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, FetchError>
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
                        return Err(e);
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
        self.retrying(|| async {
            let mut req = self.client.get(url.clone());
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
        self.retrying(|| async {
            self.count_request();
            let resp = self
                .client
                .head(url.clone())
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
        self.retrying(|| async {
            self.count_request();
            let resp = self
                .client
                .head(url.clone())
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
        let mut restarted = false;
        loop {
            let result = self
                .retrying(|| self.download_once(url, dest, expected, on_progress))
                .await;
            match result {
                Err(FetchError::ChecksumMismatch { .. }) if !restarted => {
                    // The kept bytes may be what went wrong (a partial file from a
                    // power cut); try once more from nothing before blaming upstream.
                    restarted = true;
                    discard_partial(dest).await;
                    continue;
                }
                Err(e) => {
                    if !e.is_transient() {
                        discard_partial(dest).await;
                    }
                    return Err(e);
                }
                Ok(d) => {
                    let _ = tokio::fs::remove_file(resume_validator_path(dest)).await;
                    return Ok(d);
                }
            }
        }
    }

    async fn download_once(
        &self,
        url: &Url,
        dest: &Path,
        expected: Expected,
        on_progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Downloaded, (FetchError, Option<Duration>)> {
        let io = |e| (FetchError::io(dest)(e), None);
        if let Some(sha256) = expected.sha256
            && let Ok(m) = tokio::fs::metadata(dest).await
            && m.len() == expected.size
        {
            // Downloaded in full by a run that died before moving it into place.
            let path = dest.to_path_buf();
            let ok = tokio::task::spawn_blocking(move || {
                crate::fetch::file_matches(&path, expected.size, &sha256)
            })
            .await
            .unwrap_or(false);
            if ok {
                return Ok(Downloaded {
                    received: 0,
                    last_modified: None,
                    sha256,
                    validators: Validators::default(),
                });
            }
            tokio::fs::remove_file(dest).await.map_err(io)?;
        }
        // The ETag (or Last-Modified) of the response the kept bytes came from.
        let resume_from = tokio::fs::read_to_string(resume_validator_path(dest))
            .await
            .ok()
            .filter(|v| !v.is_empty());
        let mut have = match tokio::fs::metadata(dest).await {
            // Without a checksum at the end, only If-Range can vouch that the kept
            // bytes and the rest belong to the same file.
            Ok(m)
                if m.len() < expected.size
                    && (expected.sha256.is_some() || resume_from.is_some()) =>
            {
                m.len()
            }
            Ok(_) => {
                discard_partial(dest).await;
                0
            }
            Err(_) => 0,
        };
        let mut req = self.client.get(url.clone());
        if have > 0 {
            req = req.header(header::RANGE, format!("bytes={have}-"));
            if let Some(v) = &resume_from {
                req = req.header(header::IF_RANGE, v.as_str());
            }
        }
        self.count_request();
        let resp = req.send().await.map_err(|e| (transport(url, e), None))?;
        let status = resp.status();
        let restart = |dest: &Path| {
            let dest = dest.to_path_buf();
            async move {
                discard_partial(&dest).await;
                Err((
                    FetchError::Truncated {
                        url: redact(url),
                        expected: expected.size,
                        actual: 0,
                    },
                    Some(Duration::ZERO),
                ))
            }
        };
        if status == StatusCode::RANGE_NOT_SATISFIABLE && have > 0 {
            // What we kept no longer fits what the server has: start again.
            return restart(dest).await;
        }
        check_status(url, status, resp.headers())?;
        let validators = validators_of(resp.headers());
        if status == StatusCode::PARTIAL_CONTENT
            && let Some(kept) = &resume_from
            && Some(kept) != validators.etag.as_ref()
            && Some(kept) != validators.last_modified.as_ref()
        {
            // A server that ignores If-Range sends the rest of another file.
            tracing::info!(url = %redact(url), "upstream file changed since the partial download; restarting");
            return restart(dest).await;
        }
        if status != StatusCode::PARTIAL_CONTENT || !range_starts_at(resp.headers(), have) {
            // A 200 is the whole file again, whatever we asked for.
            have = 0;
        }
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
        let last_modified = last_modified_of(resp.headers());

        let mut hasher = Sha256::new();
        let mut file = if have > 0 {
            let mut f = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(dest)
                .await
                .map_err(io)?;
            hash_prefix(&mut f, have, &mut hasher).await.map_err(io)?;
            f.seek(SeekFrom::Start(have)).await.map_err(io)?;
            f.set_len(have).await.map_err(io)?;
            f
        } else {
            // Remember what this body is, so a resume can ask for the same one.
            let validator = validators
                .etag
                .as_ref()
                .filter(|e| !e.starts_with("W/"))
                .or(validators.last_modified.as_ref());
            let vpath = resume_validator_path(dest);
            match validator {
                Some(v) => tokio::fs::write(&vpath, v).await.map_err(io)?,
                None => {
                    let _ = tokio::fs::remove_file(&vpath).await;
                }
            }
            tokio::fs::File::create(dest).await.map_err(io)?
        };
        on_progress(have);
        let mut written = have;
        let mut received = 0u64;
        let mut stream = resp.bytes_stream();
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, &mut file);
        let mut window_start = tokio::time::Instant::now();
        let mut window_bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // Keep what arrived so the retry resumes from here.
                    out.flush().await.map_err(io)?;
                    return Err((transport(url, e), None));
                }
            };
            if let Some(l) = &self.limiter {
                l.acquire(chunk.len() as u64).await;
            }
            if written + chunk.len() as u64 > expected.size {
                drop(out);
                discard_partial(dest).await;
                return Err((
                    FetchError::TooLong {
                        url: redact(url),
                        expected: expected.size,
                    },
                    None,
                ));
            }
            window_bytes += chunk.len() as u64;
            if window_start.elapsed() >= self.stall_window {
                // The bandwidth cap's own pauses are counted too; the cap is meant
                // to be far above this floor.
                if window_bytes < MIN_BYTES_PER_WINDOW {
                    out.flush().await.map_err(io)?;
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
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(io)?;
            written += chunk.len() as u64;
            received += chunk.len() as u64;
            self.count_bytes(chunk.len() as u64);
            on_progress(chunk.len() as u64);
        }
        out.flush().await.map_err(io)?;
        drop(out);
        if written < expected.size {
            return Err((
                FetchError::Truncated {
                    url: redact(url),
                    expected: expected.size,
                    actual: written,
                },
                None,
            ));
        }
        let actual: [u8; 32] = hasher.finalize().into();
        if let Some(want) = expected.sha256
            && actual != want
        {
            return Err((
                FetchError::ChecksumMismatch {
                    url: redact(url),
                    expected: hex::encode(want),
                    actual: hex::encode(actual),
                },
                None,
            ));
        }
        let file = file.into_std().await;
        if let Some(t) = last_modified {
            // Upstream's time, as rsync -t does: web servers then answer
            // If-Modified-Since the way clients and probes expect.
            let _ = file.set_modified(t);
        }
        Ok(Downloaded {
            received,
            last_modified,
            sha256: actual,
            validators,
        })
    }
}

/// Where the validator of a partial download is kept, beside its bytes.
pub fn resume_validator_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".validator");
    PathBuf::from(name)
}

/// Drops a partial download and what it was resumed against.
async fn discard_partial(dest: &Path) {
    let _ = tokio::fs::remove_file(dest).await;
    let _ = tokio::fs::remove_file(resume_validator_path(dest)).await;
}

async fn hash_prefix(
    f: &mut tokio::fs::File,
    len: u64,
    hasher: &mut Sha256,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    f.seek(SeekFrom::Start(0)).await?;
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = f.read(&mut buf[..want]).await?;
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
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err((
        FetchError::Status {
            url: redact(url),
            code: status.as_u16(),
        },
        retry_after,
    ))
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
