//! `mirrorsync probe`: health-checks mirrors the way mirror-list checkers do.
//!
//! Each mirror is probed over IPv4 and IPv6 separately (its A and AAAA records, each
//! family pinned in its own client), every mirror concurrently, with a timeout per
//! step. A family that does not answer ends there; otherwise [`apt`] or [`images`]
//! checks run over it. A mirror is healthy when it resolves and every family it has
//! addresses for passes: mirror lists probe both, and clients use both.

pub mod apt;
pub mod http;
pub mod images;
pub mod output;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use url::Url;

use crate::apt::signature::Keyring;
use http::{Family, FamilyClient};

/// What the operator asked for.
#[derive(Clone)]
pub struct ProbeOptions {
    /// The master to compare Release dates with.
    pub upstream: Option<Url>,
    pub keyring: Option<PathBuf>,
    /// Weaknesses of apt's signature policy accepted for `keyring`, as a mirror's
    /// `allow_weak_signatures` names them.
    pub allow_weak_signatures: Vec<crate::apt::signature::Weakness>,
    /// Suites to check; discovered from `dists/` when empty.
    pub suites: Vec<String>,
    /// Per request.
    pub timeout: Duration,
    /// Older than this (trace, or Release behind the upstream) is unhealthy.
    pub max_age: Duration,
    /// Indices, pool files, image sidecars and OS list images sampled per suite or
    /// mirror.
    pub samples: usize,
    /// host -> addresses, as /etc/hosts would give them (tests, split-horizon DNS).
    pub resolve: HashMap<String, Vec<IpAddr>>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            upstream: None,
            keyring: None,
            allow_weak_signatures: Vec::new(),
            suites: Vec::new(),
            timeout: Duration::from_secs(20),
            max_age: Duration::from_secs(24 * 3600),
            samples: 3,
            resolve: HashMap::new(),
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// How a mirror looks over one address family.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyReport {
    pub family: Family,
    pub addresses: Vec<String>,
    /// None when the host has no address in this family.
    pub healthy: Option<bool>,
    /// "up to date", "< 4h", "< 12h", "< 24h", "< 48h", "older", or
    /// "ahead/forked"; None when it could not be told.
    pub freshness: Option<String>,
    /// Seconds since the mirror's trace (or Release) was written.
    pub age_seconds: Option<i64>,
    /// Seconds the mirror's Release is behind the upstream's (with --upstream).
    pub behind_seconds: Option<i64>,
    pub checks: Vec<Check>,
}

/// One mirror's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorReport {
    pub url: String,
    /// "apt", "images", or "unknown" when nothing answered.
    pub kind: String,
    pub healthy: bool,
    /// One line for humans: "healthy", "IPv4 only", "no answer", ...
    pub summary: String,
    pub families: Vec<FamilyReport>,
    pub seconds: f64,
}

/// Freshness bands as Debian's mirror-status scores them.
pub fn band(age: Duration) -> &'static str {
    const H: u64 = 3600;
    match age.as_secs() {
        0 => "up to date",
        s if s < 4 * H => "< 4h",
        s if s < 12 * H => "< 12h",
        s if s < 24 * H => "< 24h",
        s if s < 48 * H => "< 48h",
        _ => "older",
    }
}

/// The upstream to compare with: each suite's Release Date, fetched once for all
/// mirrors, when the first mirror asks.
pub struct UpstreamFacts {
    pub base: Url,
    client: Option<FamilyClient>,
    /// suite -> its Release Date, or why it could not be had.
    release_dates: tokio::sync::Mutex<HashMap<String, Result<jiff::Timestamp, String>>>,
}

impl UpstreamFacts {
    pub fn new(base: Url, timeout: Duration) -> UpstreamFacts {
        UpstreamFacts {
            base,
            client: FamilyClient::any(timeout).ok(),
            release_dates: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub async fn release_date(
        &self,
        suite: &str,
        keyring: Option<&Keyring>,
    ) -> Result<jiff::Timestamp, String> {
        let mut dates = self.release_dates.lock().await;
        if let Some(d) = dates.get(suite) {
            return d.clone();
        }
        let d = match &self.client {
            Some(c) => apt::release_of(c, &self.base, suite, keyring)
                .await
                .and_then(|r| r.date.ok_or_else(|| "its Release has no Date".to_string()))
                .map_err(|e| format!("upstream: {e}")),
            None => Err("upstream: no HTTP client".to_string()),
        };
        dates.insert(suite.to_string(), d.clone());
        d
    }
}

/// Probes every mirror concurrently, each on its own task: signature checks and
/// index hashing use every core.
pub async fn probe_all(urls: &[Url], opts: &ProbeOptions) -> anyhow::Result<Vec<MirrorReport>> {
    let keyring = match &opts.keyring {
        Some(p) => {
            let policy =
                crate::apt::signature::Policy::allowing(opts.allow_weak_signatures.clone());
            Some(Arc::new(Keyring::from_file(p)?.with_policy(policy)))
        }
        None => None,
    };
    let upstream = opts.upstream.as_ref().map(|u| {
        Arc::new(UpstreamFacts::new(
            crate::config::with_slash(u.clone()),
            opts.timeout,
        ))
    });
    // `--upstream http://host/debian`, as sources.list has it, is the same archive
    // as `http://host/debian/`.
    let mut opts = opts.clone();
    opts.upstream = opts.upstream.map(crate::config::with_slash);
    let opts = Arc::new(opts);
    let tasks: Vec<_> = urls
        .iter()
        .map(|u| {
            let (u, opts, keyring, upstream) =
                (u.clone(), opts.clone(), keyring.clone(), upstream.clone());
            tokio::spawn(async move {
                probe_mirror(&u, &opts, keyring.as_deref(), upstream.as_deref()).await
            })
        })
        .collect();
    let mut reports = Vec::with_capacity(tasks.len());
    for t in tasks {
        reports.push(t.await?);
    }
    Ok(reports)
}

async fn probe_mirror(
    url: &Url,
    opts: &ProbeOptions,
    keyring: Option<&Keyring>,
    upstream: Option<&UpstreamFacts>,
) -> MirrorReport {
    let started = Instant::now();
    let base = crate::config::with_slash(url.clone());
    let host = base.host_str().unwrap_or("").to_string();
    let port = base.port_or_known_default().unwrap_or(80);
    let addrs = match resolve(&host, port, opts).await {
        Ok(a) => a,
        Err(e) => {
            return MirrorReport {
                url: base.to_string(),
                kind: "unknown".into(),
                healthy: false,
                summary: format!("does not resolve: {e}"),
                families: Vec::new(),
                seconds: started.elapsed().as_secs_f64(),
            };
        }
    };
    let target = Target {
        base: &base,
        host: &host,
        port,
        opts,
        keyring,
        upstream,
    };
    let results = futures_util::future::join_all(
        [Family::Ipv4, Family::Ipv6].map(|family| target.probe(&addrs, family)),
    )
    .await;
    let kind = results
        .iter()
        .find_map(|(k, _)| k.clone())
        .unwrap_or_else(|| "unknown".into());
    let families: Vec<FamilyReport> = results.into_iter().map(|(_, f)| f).collect();
    let (healthy, summary) = verdict(&families);
    MirrorReport {
        url: base.to_string(),
        kind,
        healthy,
        summary,
        families,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// One mirror, resolved, and what to probe it with.
struct Target<'a> {
    base: &'a Url,
    host: &'a str,
    port: u16,
    opts: &'a ProbeOptions,
    keyring: Option<&'a Keyring>,
    upstream: Option<&'a UpstreamFacts>,
}

impl Target<'_> {
    /// Probes over `family` through those of `addrs` in it; a family without
    /// addresses gets an empty report with no verdict.
    async fn probe(&self, addrs: &[IpAddr], family: Family) -> (Option<String>, FamilyReport) {
        let mine: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|a| Family::of(a) == family)
            .collect();
        if mine.is_empty() {
            return (
                None,
                FamilyReport {
                    family,
                    addresses: Vec::new(),
                    healthy: None,
                    freshness: None,
                    age_seconds: None,
                    behind_seconds: None,
                    checks: Vec::new(),
                },
            );
        }
        self.probe_family(&mine, family).await
    }

    /// Probes over `family` through `addrs`, all in it: answers at all, then the
    /// checks of the kind of tree it serves.
    async fn probe_family(
        &self,
        addrs: &[IpAddr],
        family: Family,
    ) -> (Option<String>, FamilyReport) {
        let (base, opts) = (self.base, self.opts);
        let mut report = FamilyReport {
            family,
            addresses: addrs.iter().map(|a| a.to_string()).collect(),
            healthy: Some(false),
            freshness: None,
            age_seconds: None,
            behind_seconds: None,
            checks: Vec::new(),
        };
        let client = match FamilyClient::new(self.host, addrs, self.port, family, opts.timeout) {
            Ok(c) => c,
            Err(e) => {
                report.checks.push(Check::fail("connect", e.to_string()));
                return (None, report);
            }
        };
        let kind = match apt::detect(&client, base).await {
            Ok(k) => k,
            Err(e) => {
                report.checks.push(Check::fail("connect", e.to_string()));
                return (None, report);
            }
        };
        report.checks.push(Check::pass(
            "connect",
            format!("answers over {}", label(family)),
        ));
        let kind = match kind {
            apt::Kind::Apt(first) => {
                apt::check(
                    &client,
                    base,
                    opts,
                    self.keyring,
                    self.upstream,
                    first,
                    &mut report,
                )
                .await;
                "apt"
            }
            apt::Kind::Images => {
                images::check(&client, base, opts, &mut report).await;
                "images"
            }
        };
        report.healthy = Some(report.checks.iter().all(|c| c.ok));
        (Some(kind.to_string()), report)
    }
}

/// Whether a mirror is healthy, by its families, and the line for humans saying so.
fn verdict(families: &[FamilyReport]) -> (bool, String) {
    let with_addr: Vec<&FamilyReport> = families.iter().filter(|f| f.healthy.is_some()).collect();
    let good: Vec<&FamilyReport> = with_addr
        .iter()
        .copied()
        .filter(|f| f.healthy == Some(true))
        .collect();
    let healthy = !with_addr.is_empty() && good.len() == with_addr.len();
    let summary = match (with_addr.len(), good.len()) {
        (0, _) => "no A or AAAA record".to_string(),
        (n, g) if n == g => {
            let only = if n == 1 {
                format!(" ({} only)", label(with_addr[0].family))
            } else {
                String::new()
            };
            format!("healthy{only}")
        }
        (_, 0) => {
            if with_addr.iter().all(|f| no_answer(f)) {
                "does not answer".to_string()
            } else {
                "unhealthy".to_string()
            }
        }
        (_, _) => format!("answers only on {}", label(good[0].family)),
    };
    (healthy, summary)
}

fn label(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "IPv4",
        Family::Ipv6 => "IPv6",
    }
}

fn no_answer(f: &FamilyReport) -> bool {
    f.checks.iter().any(|c| c.name == "connect" && !c.ok)
}

/// A and AAAA of `host`, or the operator's override.
async fn resolve(host: &str, port: u16, opts: &ProbeOptions) -> anyhow::Result<Vec<IpAddr>> {
    if let Some(a) = opts.resolve.get(host) {
        return Ok(a.clone());
    }
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut out: Vec<IpAddr> = tokio::net::lookup_host((host, port))
        .await?
        .map(|s| s.ip())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_falls_into_mirror_status_bands() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(band(Duration::ZERO), "up to date");
        assert_eq!(band(h(1)), "< 4h");
        assert_eq!(band(h(4)), "< 12h");
        assert_eq!(band(h(13)), "< 24h");
        assert_eq!(band(h(30)), "< 48h");
        assert_eq!(band(h(49)), "older");
    }
}
