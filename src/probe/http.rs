//! HTTP as a mirror-list checker does it: one client per address family, pinned to
//! that family's addresses, a timeout per step, at most 3 redirects and none to
//! another file name, and only `200 OK` with the right kind of body counts as present.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header;
use url::Url;

use crate::upstream::{USER_AGENT, redact};

/// An address family, probed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeHttpError {
    /// Nothing answered: the family is down, not just a file missing.
    #[error("{url}: no answer: {detail}")]
    NoAnswer { url: String, detail: String },
    #[error("{url}: missing ({detail})")]
    Missing { url: String, detail: String },
    #[error("{url}: {detail}")]
    Other { url: String, detail: String },
}

impl ProbeHttpError {
    pub fn is_no_answer(&self) -> bool {
        matches!(self, ProbeHttpError::NoAnswer { .. })
    }
}

/// A body that is there.
#[derive(Debug)]
pub struct Got {
    pub body: Bytes,
    pub last_modified: Option<String>,
}

/// A client pinned to one family's addresses of one host.
pub struct FamilyClient {
    client: reqwest::Client,
    pub family: Family,
}

/// Most bodies a probe reads are Release files and samples of indices.
pub const MAX_BODY: u64 = 128 << 20;

impl FamilyClient {
    pub fn new(
        host: &str,
        addrs: &[IpAddr],
        port: u16,
        family: Family,
        timeout: Duration,
    ) -> Result<FamilyClient, reqwest::Error> {
        let sockets: Vec<SocketAddr> = addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(timeout)
            .timeout(timeout)
            .resolve_to_addrs(host, &sockets)
            .redirect(redirect_policy())
            .build()?;
        Ok(FamilyClient { client, family })
    }

    /// A client for a URL whose host resolves normally (the upstream to compare with).
    pub fn any(timeout: Duration) -> Result<FamilyClient, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(redirect_policy())
            .build()?;
        Ok(FamilyClient {
            client,
            family: Family::Ipv4,
        })
    }

    /// GETs a file; `html_ok` for a directory listing.
    pub async fn get(&self, url: &Url, html_ok: bool) -> Result<Got, ProbeHttpError> {
        let resp = self.send(self.client.get(url.clone()), url).await?;
        let shown = redact(url);
        present(&resp, &shown, html_ok)?;
        let last_modified = resp
            .headers()
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if resp.content_length().is_some_and(|n| n > MAX_BODY) {
            return Err(ProbeHttpError::Other {
                url: shown,
                detail: format!("larger than {MAX_BODY} bytes"),
            });
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(&shown, e))?;
            if (body.len() + chunk.len()) as u64 > MAX_BODY {
                return Err(ProbeHttpError::Other {
                    url: shown,
                    detail: format!("larger than {MAX_BODY} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Got {
            body: body.into(),
            last_modified,
        })
    }

    /// HEADs a file: its Content-Length, if it is there.
    pub async fn head(&self, url: &Url) -> Result<Option<u64>, ProbeHttpError> {
        let resp = self.send(self.client.head(url.clone()), url).await?;
        present(&resp, &redact(url), false)?;
        Ok(resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()))
    }

    /// HEADs with `If-Unmodified-Since`; returns the status code.
    pub async fn head_unmodified_since(
        &self,
        url: &Url,
        since: &str,
    ) -> Result<u16, ProbeHttpError> {
        let req = self
            .client
            .head(url.clone())
            .header(header::IF_UNMODIFIED_SINCE, since);
        Ok(self.send(req, url).await?.status().as_u16())
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<reqwest::Response, ProbeHttpError> {
        req.send().await.map_err(|e| classify(&redact(url), e))
    }
}

/// Only 200 is present; an HTML page where a file is expected is a soft 404.
fn present(resp: &reqwest::Response, url: &str, html_ok: bool) -> Result<(), ProbeHttpError> {
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        let detail = format!("HTTP {}", status.as_u16());
        return Err(if status.is_client_error() {
            ProbeHttpError::Missing {
                url: url.to_string(),
                detail,
            }
        } else {
            ProbeHttpError::Other {
                url: url.to_string(),
                detail,
            }
        });
    }
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    if html && !html_ok {
        return Err(ProbeHttpError::Missing {
            url: url.to_string(),
            detail: "an HTML page where a file belongs (soft 404)".into(),
        });
    }
    Ok(())
}

fn classify(url: &str, e: reqwest::Error) -> ProbeHttpError {
    let url = url.to_string();
    if e.is_redirect() {
        return ProbeHttpError::Other {
            url,
            detail: format!("bad redirect: {}", chain(&e)),
        };
    }
    if e.is_connect() || e.is_timeout() {
        let detail = if e.is_timeout() {
            "timed out".to_string()
        } else {
            chain(&e)
        };
        return ProbeHttpError::NoAnswer { url, detail };
    }
    ProbeHttpError::Other {
        url,
        detail: chain(&e),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// At most 3 redirects, each keeping the file name: a mirror that redirects
/// `InRelease` to a front page is broken, not moved.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > 3 {
            return attempt.error("more than 3 redirects");
        }
        let name = |u: &Url| u.path().rsplit('/').next().unwrap_or("").to_string();
        let first = attempt.previous().first().map(name);
        if first.is_some_and(|f| f != name(attempt.url())) {
            let to = redact(attempt.url());
            return attempt.error(format!("redirected to another file ({to})"));
        }
        attempt.follow()
    })
}
