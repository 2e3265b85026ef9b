//! mirrors.toml: the raw serde shape, and its conversion into a validated [`Config`].
//!
//! Everything that can be wrong with a config is found here, once: unknown keys, bad
//! durations and rates, relative roots, duplicate names, missing keyrings. Later stages
//! take a `Config` and never re-check it. Values that toml can point at (durations,
//! rates, URLs) are parsed during deserialisation so their errors carry the file, line
//! and column.

pub mod publish;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

use crate::apt::signature::{Policy, Weakness};
pub use publish::S3Target;
use publish::{credentials_from_env, parse_s3_url, read_credentials_file};

/// Where `-c` looks when it is not given.
/// Where the config is looked for without `-c` or MIRRORSYNC_CONFIG, in order: the
/// installed one first, so a run from another directory never picks up a stray file.
pub const DEFAULT_CONFIG_PATHS: [&str; 2] = ["/etc/mirrorsync/mirrors.toml", "mirrors.toml"];

/// The environment variable naming the config file when `-c` does not.
pub const CONFIG_ENV: &str = "MIRRORSYNC_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no config file: looked for {}", .looked.join(", "))]
    NotFound { looked: Vec<String> },
}

/// The validated configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, for messages.
    pub source: PathBuf,
    pub global: Global,
    pub mirrors: Vec<Mirror>,
}

#[derive(Debug, Clone)]
pub struct Global {
    pub root: PathBuf,
    pub hostname: String,
    pub keep_snapshots: NonZeroUsize,
    pub grace: Duration,
    pub max_delete_ratio: f64,
    /// How long a run waits for an upstream that is mid-update
    /// (Archive-Update-in-Progress) before it gives up.
    pub upstream_busy_wait: Duration,
    pub network: Network,
    /// Where the status page is written after every run; None: not at all.
    pub status_page: Option<PathBuf>,
    /// A mirror whose last success is older than this shows as stale.
    pub stale_after: Duration,
}

/// How to talk to an upstream; set globally, overridable per mirror.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub concurrency: NonZeroUsize,
    /// Bytes per second for all downloads of a run together.
    pub bandwidth_limit: Option<u64>,
    pub timeout: Duration,
    pub retries: u32,
    /// First backoff delay; doubled on each retry, with jitter, capped.
    pub retry_delay: Duration,
    pub ip: IpFamily,
    pub bind_address: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum IpFamily {
    #[serde(rename = "any")]
    Any,
    #[serde(rename = "4")]
    V4,
    #[serde(rename = "6")]
    V6,
}

#[derive(Debug, Clone)]
pub struct Mirror {
    pub name: String,
    /// Always ends with '/', so relative paths join under it.
    pub upstream: Url,
    pub network: Network,
    pub kind: MirrorKind,
    /// Also publish each snapshot into this bucket.
    pub publish: Option<S3Target>,
    /// Logins for the upstream (apt's auth.conf format): the mirror's own
    /// `auth_conf`, else `[global]`'s.
    pub auth: Option<std::sync::Arc<crate::auth::AuthConf>>,
}

#[derive(Debug, Clone)]
pub enum MirrorKind {
    Apt(AptMirror),
    Images(ImagesMirror),
}

#[derive(Debug, Clone)]
pub struct AptMirror {
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// As configured; "all" is always mirrored too.
    pub architectures: Vec<String>,
    pub sources: bool,
    /// None only when `check_signature = false`.
    pub keyring: Option<PathBuf>,
    pub check_valid_until: bool,
    pub allow_rollback: bool,
    /// apt's signature policy, with the weaknesses `allow_weak_signatures` names.
    pub signature_policy: Policy,
    /// Paths whose upstream failures are reported but do not block publishing.
    pub tolerate: globset::GlobSet,
}

#[derive(Debug, Clone)]
pub struct ImagesMirror {
    /// As written, for crawling only the directories they can match under.
    pub include: Vec<String>,
    /// Paths relative to `upstream`; `*` stays within a directory, `**` crosses them.
    /// Empty means everything.
    pub include_set: globset::GlobSet,
    pub exclude_set: globset::GlobSet,
    pub keep_latest: Option<NonZeroUsize>,
    pub rewrite_base: Option<Url>,
    pub max_files: usize,
    /// Other base URLs of the same tree that OS lists may use (each ending in '/').
    pub aliases: Vec<Url>,
    pub keyring: Option<PathBuf>,
    pub signature_policy: Policy,
    pub tolerate: globset::GlobSet,
}

impl Mirror {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            MirrorKind::Apt(_) => "apt",
            MirrorKind::Images(_) => "images",
        }
    }
}

// ---- raw serde shape -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    global: RawGlobal,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    root: PathBuf,
    hostname: Option<String>,
    #[serde(default = "default_concurrency")]
    concurrency: NonZeroUsize,
    bandwidth_limit: Option<Rate>,
    #[serde(default = "default_keep_snapshots")]
    keep_snapshots: NonZeroUsize,
    #[serde(default = "default_grace")]
    grace: HumanDuration,
    #[serde(default = "default_timeout")]
    timeout: HumanDuration,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_retry_delay")]
    retry_delay: HumanDuration,
    #[serde(default = "default_max_delete_ratio")]
    max_delete_ratio: f64,
    #[serde(default = "default_ip")]
    ip: IpFamily,
    bind_address: Option<IpAddr>,
    #[serde(default = "default_busy_wait")]
    upstream_busy_wait: HumanDuration,
    /// A base for every mirror: each publishes under `<prefix>/<name>`.
    publish: Option<String>,
    s3_endpoint: Option<HttpUrl>,
    s3_region: Option<String>,
    s3_credentials: Option<PathBuf>,
    s3_profile: Option<String>,
    /// Logins for upstreams, in apt's auth.conf format (mode 0600).
    auth_conf: Option<PathBuf>,
    /// The status page: a path (relative to root), or false for none.
    #[serde(default)]
    status_page: Option<PageSetting>,
    #[serde(default = "default_stale_after")]
    stale_after: HumanDuration,
}

/// `status_page = "status/index.html"` or `status_page = false`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PageSetting {
    On(bool),
    At(PathBuf),
}

/// The status page's place under the root, unless turned off.
fn status_page(
    root: &Path,
    setting: &Option<PageSetting>,
    problems: &mut Vec<String>,
) -> Option<PathBuf> {
    let at = match setting {
        None | Some(PageSetting::On(true)) => PathBuf::from(DEFAULT_STATUS_PAGE),
        Some(PageSetting::On(false)) => return None,
        Some(PageSetting::At(p)) => p.clone(),
    };
    // Plain names only, none hidden: `.mirrorsync/lock` would be replaced under a
    // running sync.
    let relative = at.is_relative()
        && at.components().all(|c| match c {
            std::path::Component::Normal(n) => !n.to_string_lossy().starts_with('.'),
            _ => false,
        });
    if !relative || at.file_name().is_none() {
        problems.push(format!(
            "[global] status_page {:?} must be a file path relative to root, without '..' or hidden names",
            at.display().to_string()
        ));
        return None;
    }
    Some(root.join(at))
}

/// Where the status page goes unless `status_page` says otherwise.
pub const DEFAULT_STATUS_PAGE: &str = "status/index.html";

/// How to reach the bucket; in `[global]`, overridable per mirror.
#[derive(Debug, Default)]
struct RawS3 {
    s3_endpoint: Option<HttpUrl>,
    s3_region: Option<String>,
    s3_credentials: Option<PathBuf>,
    s3_profile: Option<String>,
}

impl RawS3 {
    fn of_global(g: &RawGlobal) -> RawS3 {
        RawS3 {
            s3_endpoint: g.s3_endpoint.clone(),
            s3_region: g.s3_region.clone(),
            s3_credentials: g.s3_credentials.clone(),
            s3_profile: g.s3_profile.clone(),
        }
    }

    fn of_mirror(m: &RawMirror) -> RawS3 {
        RawS3 {
            s3_endpoint: m.s3_endpoint.clone(),
            s3_region: m.s3_region.clone(),
            s3_credentials: m.s3_credentials.clone(),
            s3_profile: m.s3_profile.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    name: String,
    kind: RawKind,
    upstream: HttpUrl,
    // Network overrides.
    concurrency: Option<NonZeroUsize>,
    bandwidth_limit: Option<Rate>,
    timeout: Option<HumanDuration>,
    retries: Option<u32>,
    ip: Option<IpFamily>,
    bind_address: Option<IpAddr>,
    auth_conf: Option<PathBuf>,
    // apt
    #[serde(default)]
    suites: Vec<String>,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    sources: bool,
    keyring: Option<PathBuf>,
    #[serde(default = "yes")]
    check_signature: bool,
    #[serde(default = "yes")]
    check_valid_until: bool,
    #[serde(default)]
    allow_rollback: bool,
    #[serde(default)]
    allow_weak_signatures: Vec<String>,
    #[serde(default)]
    tolerate: Vec<String>,
    publish: Option<String>,
    s3_endpoint: Option<HttpUrl>,
    s3_region: Option<String>,
    s3_credentials: Option<PathBuf>,
    s3_profile: Option<String>,
    // images
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    keep_latest: Option<NonZeroUsize>,
    rewrite_base: Option<HttpUrl>,
    max_files: Option<usize>,
    #[serde(default)]
    aliases: Vec<HttpUrl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Apt,
    Images,
}

fn yes() -> bool {
    true
}

/// A base URL that file paths are appended to: a missing trailing '/' is added, as
/// apt does with a sources.list URL.
pub fn with_slash(mut u: Url) -> Url {
    if !u.path().ends_with('/') {
        u.set_path(&format!("{}/", u.path()));
    }
    u
}
fn default_concurrency() -> NonZeroUsize {
    NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN)
}
fn default_keep_snapshots() -> NonZeroUsize {
    NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN)
}
fn default_stale_after() -> HumanDuration {
    // Debian's mirror checker calls a mirror out of date after a day without a sync.
    HumanDuration(Duration::from_secs(24 * 3600))
}
fn default_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(6 * 3600))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_retries() -> u32 {
    5
}
fn default_retry_delay() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_max_delete_ratio() -> f64 {
    0.4
}
fn default_busy_wait() -> HumanDuration {
    HumanDuration(Duration::from_secs(30 * 60))
}
fn default_ip() -> IpFamily {
    IpFamily::Any
}

/// A duration written as humans do: "60s", "6h", "1h 30m".
#[derive(Debug, Clone, Copy, PartialEq)]
struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "bad duration {s:?} ({e}); write it like \"60s\", \"15m\", \"6h\" or \"1h 30m\""
                ))
            })
    }
}

/// A transfer rate, stored as bytes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate(u64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_rate(&s).map(Rate).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad rate {s:?}; write bits like \"40Mbit\" or \"500kbit\", or bytes like \"5MB/s\" or \"2MiB/s\""
            ))
        })
    }
}

/// Parses "40Mbit", "40 Mbit/s", "5MB/s", "2MiB", "800kbps" into bytes per second.
pub fn parse_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("/s")
        .or_else(|| unit.strip_suffix("ps"))
        .unwrap_or(unit);
    let (mult, bits) = match unit {
        "bit" | "b" => (1.0, true),
        "kbit" | "Kbit" | "kb" | "Kb" => (1e3, true),
        "Mbit" | "mbit" | "Mb" => (1e6, true),
        "Gbit" | "gbit" | "Gb" => (1e9, true),
        "" | "B" => (1.0, false),
        "k" | "K" | "kB" | "KB" => (1e3, false),
        "M" | "MB" => (1e6, false),
        "G" | "GB" => (1e9, false),
        "KiB" => (1024.0, false),
        "MiB" => (1024.0 * 1024.0, false),
        "GiB" => (1024.0 * 1024.0 * 1024.0, false),
        _ => return None,
    };
    let bytes = num * mult / if bits { 8.0 } else { 1.0 };
    (bytes >= 1.0 && bytes.is_finite()).then_some(bytes as u64)
}

/// An http(s) URL; anything else is refused where it is written.
#[derive(Debug, Clone)]
struct HttpUrl(Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let url =
            Url::parse(&s).map_err(|e| serde::de::Error::custom(format!("bad URL {s:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(serde::de::Error::custom(format!(
                "URL {s:?} must start with http:// or https://"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(serde::de::Error::custom(format!(
                "URL {s:?} must not have a query or fragment"
            )));
        }
        Ok(HttpUrl(url))
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::Any => "any",
            IpFamily::V4 => "4",
            IpFamily::V6 => "6",
        })
    }
}

// ---- loading ---------------------------------------------------------------------

impl Config {
    /// Reads the file given with `-c`, else the one MIRRORSYNC_CONFIG names, else the
    /// first of [`DEFAULT_CONFIG_PATHS`] that exists.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let from_env = std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let path = match explicit.map(Path::to_path_buf).or(from_env) {
            Some(p) => p,
            None => DEFAULT_CONFIG_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or_else(|| ConfigError::NotFound {
                    looked: DEFAULT_CONFIG_PATHS.iter().map(|s| s.to_string()).collect(),
                })?,
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        Config::from_toml(&text, &path)
    }

    /// Parses and validates config text; `path` is used in messages and to resolve
    /// relative keyring paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        validate(raw, text, path)
    }
}

/// toml's own message, with the line and column spelled out from its span.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            let src_line = text.lines().nth(line - 1).unwrap_or("");
            format!("line {line}, column {col}: {msg}\n  |\n{line:>3} | {src_line}\n  |")
        }
        None => msg.to_string(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Finds where `[[mirror]]` number `index` (0-based) starts, for messages about it.
fn mirror_line(text: &str, index: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[mirror]]"))
        .nth(index)
        .map(|(n, _)| n + 1)
}

fn validate(raw: RawConfig, text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let g = raw.global;
    check_root(&g.root, &mut problems);
    if !(0.0..=1.0).contains(&g.max_delete_ratio) {
        problems.push(format!(
            "[global] max_delete_ratio {} must be between 0 and 1",
            g.max_delete_ratio
        ));
    }
    let hostname = checked_hostname(g.hostname.clone(), &mut problems);
    let status_page = status_page(&g.root, &g.status_page, &mut problems);
    let defaults = MirrorDefaults {
        network: global_network(&g),
        publish: g.publish.clone(),
        s3: RawS3::of_global(&g),
        auth: g.auth_conf.as_ref().and_then(|p| {
            load_auth(p, path.parent().unwrap_or(Path::new(".")))
                .map_err(|e| problems.push(format!("[global] {e}")))
                .ok()
        }),
        base_dir: path.parent().unwrap_or(Path::new(".")),
    };
    let mut names = BTreeSet::new();
    let mut mirrors = Vec::new();
    for (i, m) in raw.mirror.into_iter().enumerate() {
        let at = match mirror_line(text, i) {
            Some(line) => format!("[[mirror]] at line {line} ({:?})", m.name),
            None => format!("mirror {:?}", m.name),
        };
        if !valid_name(&m.name) {
            problems.push(format!(
                "{at}: name must be letters, digits, '.', '_' or '-' (it becomes a directory under root)"
            ));
        }
        if !names.insert(m.name.clone()) {
            problems.push(format!("{at}: the name is used by another mirror"));
        }
        if let Some(page) = &status_page
            && page
                .strip_prefix(&g.root)
                .ok()
                .and_then(|p| p.components().next())
                == Some(std::path::Component::Normal(m.name.as_ref()))
        {
            problems.push(format!(
                "{at}: the name is where the status page goes ({}); set status_page elsewhere",
                page.display()
            ));
        }
        mirrors.push(validate_mirror(m, &at, &defaults, &mut problems));
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: problems.join("\n"),
        });
    }
    Ok(Config {
        source: path.to_path_buf(),
        global: Global {
            root: g.root,
            hostname,
            keep_snapshots: g.keep_snapshots,
            grace: g.grace.0,
            max_delete_ratio: g.max_delete_ratio,
            upstream_busy_wait: g.upstream_busy_wait.0,
            network: defaults.network,
            status_page,
            stale_after: g.stale_after.0,
        },
        mirrors,
    })
}

/// `[global] root`: absolute, and somewhere this user can write.
fn check_root(root: &Path, problems: &mut Vec<String>) {
    if !root.is_absolute() {
        problems.push(format!(
            "[global] root {:?} must be an absolute path",
            root.display().to_string()
        ));
    } else if let Some(problem) = root_problem(root) {
        problems.push(format!("[global] root {}: {problem}", root.display()));
    }
}

/// The host name the trace file is named after: as configured, else this machine's.
fn checked_hostname(configured: Option<String>, problems: &mut Vec<String>) -> String {
    let hostname = configured.unwrap_or_else(system_hostname);
    if hostname.is_empty()
        || hostname
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
    {
        problems.push(format!(
            "[global] hostname {hostname:?} must be a DNS name (it names the trace file)"
        ));
    }
    hostname
}

fn global_network(g: &RawGlobal) -> Network {
    Network {
        concurrency: g.concurrency,
        bandwidth_limit: g.bandwidth_limit.map(|r| r.0),
        timeout: g.timeout.0,
        retries: g.retries,
        retry_delay: g.retry_delay.0,
        ip: g.ip,
        bind_address: g.bind_address,
    }
}

/// What `[global]` gives every mirror that does not say otherwise.
struct MirrorDefaults<'a> {
    network: Network,
    /// The base each mirror publishes under, as `<publish>/<name>`.
    publish: Option<String>,
    s3: RawS3,
    /// `[global] auth_conf`, read once for every mirror that does not name its own.
    auth: Option<std::sync::Arc<crate::auth::AuthConf>>,
    /// Relative keyring and credentials paths are relative to the config file.
    base_dir: &'a Path,
}

/// How a mirror's files are checked: its keyring and signature policy, and which
/// upstream failures it tolerates.
struct Trust {
    keyring: Option<PathBuf>,
    signature_policy: Policy,
    tolerate: globset::GlobSet,
}

/// One `[[mirror]]`, its problems added to `problems`; `at` says where it is.
fn validate_mirror(
    m: RawMirror,
    at: &str,
    defaults: &MirrorDefaults,
    problems: &mut Vec<String>,
) -> Mirror {
    let upstream = with_slash(m.upstream.0.clone());
    let network = mirror_network(&m, &defaults.network);
    let keyring = m.keyring.as_ref().map(|k| {
        if k.is_absolute() {
            k.clone()
        } else {
            defaults.base_dir.join(k)
        }
    });
    if let Some(k) = &keyring
        && !k.is_file()
    {
        problems.push(format!("{at}: keyring {} does not exist", k.display()));
    }
    let publish = publish_target(&m, at, defaults, problems);
    let auth = match &m.auth_conf {
        Some(p) => load_auth(p, defaults.base_dir)
            .map_err(|e| problems.push(format!("{at}: {e}")))
            .ok(),
        None => defaults.auth.clone(),
    };
    let tolerate = tolerate_globs(&m.tolerate, at, problems);
    let signature_policy =
        signature_policy(&m.allow_weak_signatures, keyring.is_some(), at, problems);
    let trust = Trust {
        keyring,
        signature_policy,
        tolerate,
    };
    let name = m.name.clone();
    let kind = match m.kind {
        RawKind::Apt => MirrorKind::Apt(apt_mirror(m, trust, at, problems)),
        RawKind::Images => MirrorKind::Images(images_mirror(m, trust, at, problems)),
    };
    Mirror {
        name,
        upstream,
        network,
        kind,
        publish,
        auth,
    }
}

/// An auth.conf file, relative paths relative to the config file's directory.
fn load_auth(
    path: &Path,
    base_dir: &Path,
) -> Result<std::sync::Arc<crate::auth::AuthConf>, crate::auth::AuthError> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    };
    crate::auth::AuthConf::load(&path).map(std::sync::Arc::new)
}

/// The global network settings with the mirror's overrides.
fn mirror_network(m: &RawMirror, global: &Network) -> Network {
    Network {
        concurrency: m.concurrency.unwrap_or(global.concurrency),
        bandwidth_limit: m.bandwidth_limit.map(|r| r.0).or(global.bandwidth_limit),
        timeout: m.timeout.map_or(global.timeout, |d| d.0),
        retries: m.retries.unwrap_or(global.retries),
        retry_delay: global.retry_delay,
        ip: m.ip.unwrap_or(global.ip),
        bind_address: m.bind_address.or(global.bind_address),
    }
}

/// The bucket the mirror publishes to: its own `publish`, else under the global one.
fn publish_target(
    m: &RawMirror,
    at: &str,
    defaults: &MirrorDefaults,
    problems: &mut Vec<String>,
) -> Option<S3Target> {
    let url = match (&m.publish, &defaults.publish) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Some(base)) => format!("{}/{}", base.trim_end_matches('/'), m.name),
        (None, None) => return None,
    };
    s3_target(&url, &RawS3::of_mirror(m), &defaults.s3, defaults.base_dir)
        .map_err(|e| problems.push(format!("{at}: {e}")))
        .ok()
}

/// `tolerate` patterns: globs over whole paths (`*` crosses '/').
fn tolerate_globs(patterns: &[String], at: &str, problems: &mut Vec<String>) -> globset::GlobSet {
    let mut tolerate = globset::GlobSetBuilder::new();
    for pattern in patterns {
        match globset::Glob::new(pattern) {
            Ok(g) => {
                tolerate.add(g);
            }
            Err(e) => problems.push(format!("{at}: tolerate pattern {pattern:?}: {e}")),
        }
    }
    tolerate
        .build()
        .unwrap_or_else(|_| globset::GlobSet::empty())
}

/// apt's signature policy, relaxed by the weaknesses `allow_weak_signatures` names;
/// relaxing means nothing without a keyring.
fn signature_policy(
    names: &[String],
    has_keyring: bool,
    at: &str,
    problems: &mut Vec<String>,
) -> Policy {
    let mut weaknesses = Vec::new();
    for name in names {
        match name.parse::<Weakness>() {
            Ok(w) => weaknesses.push(w),
            Err(e) => problems.push(format!("{at}: allow_weak_signatures: {e}")),
        }
    }
    if !weaknesses.is_empty() && !has_keyring {
        problems.push(format!(
            "{at}: allow_weak_signatures needs a keyring whose signatures it relaxes"
        ));
    }
    Policy::allowing(weaknesses)
}

/// A `kind = "apt"` mirror: suites, components and architectures are required, and
/// a keyring unless `check_signature = false`.
fn apt_mirror(m: RawMirror, trust: Trust, at: &str, problems: &mut Vec<String>) -> AptMirror {
    for (key, set) in [
        ("include", !m.include.is_empty()),
        ("exclude", !m.exclude.is_empty()),
        ("keep_latest", m.keep_latest.is_some()),
        ("rewrite_base", m.rewrite_base.is_some()),
        ("max_files", m.max_files.is_some()),
        ("aliases", !m.aliases.is_empty()),
    ] {
        if set {
            problems.push(format!("{at}: {key} is for kind = \"images\" mirrors"));
        }
    }
    if m.suites.is_empty() {
        problems.push(format!("{at}: suites must list at least one entry"));
    }
    for suite in &m.suites {
        if let Some(why) = crate::apt::layout::suite_problem(suite, valid_name) {
            problems.push(format!("{at}: suites entry {suite:?} {why}"));
        }
    }
    // A flat repository (suite "./", "subdir/") has no components, and its indices list
    // every architecture; a suite name needs both said.
    let all_flat = m.suites.iter().all(|s| s.ends_with('/'));
    for (key, list) in [
        ("components", &m.components),
        ("architectures", &m.architectures),
    ] {
        if list.is_empty() && !all_flat {
            problems.push(format!("{at}: {key} must list at least one entry"));
        }
        if let Some(bad) = list.iter().find(|s| !valid_name(s)) {
            problems.push(format!("{at}: {key} entry {bad:?} is not a plain name"));
        }
    }
    if m.check_signature && trust.keyring.is_none() {
        problems.push(format!(
            "{at}: keyring is required (the archive key the Release files are signed with), or set check_signature = false"
        ));
    }
    let mut architectures = m.architectures;
    architectures.retain(|a| a != "all");
    AptMirror {
        suites: m.suites,
        components: m.components,
        architectures,
        sources: m.sources,
        keyring: if m.check_signature {
            trust.keyring
        } else {
            None
        },
        check_valid_until: m.check_valid_until,
        allow_rollback: m.allow_rollback,
        signature_policy: trust.signature_policy,
        tolerate: trust.tolerate,
    }
}

/// A `kind = "images"` mirror: include and exclude patterns instead of suites.
fn images_mirror(m: RawMirror, trust: Trust, at: &str, problems: &mut Vec<String>) -> ImagesMirror {
    for (key, set) in [
        ("suites", !m.suites.is_empty()),
        ("components", !m.components.is_empty()),
        ("architectures", !m.architectures.is_empty()),
        ("sources", m.sources),
    ] {
        if set {
            problems.push(format!("{at}: {key} is for kind = \"apt\" mirrors"));
        }
    }
    let include_set = path_globs(&m.include, "include", at, problems);
    let exclude_set = path_globs(&m.exclude, "exclude", at, problems);
    ImagesMirror {
        include: m.include,
        include_set,
        exclude_set,
        keep_latest: m.keep_latest,
        // A base URL: the file paths are appended to it.
        rewrite_base: m.rewrite_base.map(|u| with_slash(u.0)),
        max_files: m.max_files.unwrap_or(100_000),
        aliases: m.aliases.into_iter().map(|u| with_slash(u.0)).collect(),
        keyring: trust.keyring,
        signature_policy: trust.signature_policy,
        tolerate: trust.tolerate,
    }
}

/// The bucket a mirror publishes to, with the mirror's settings over the global ones.
fn s3_target(url: &str, own: &RawS3, global: &RawS3, base_dir: &Path) -> Result<S3Target, String> {
    let (bucket, prefix) = parse_s3_url(url)?;
    let endpoint = own
        .s3_endpoint
        .as_ref()
        .or(global.s3_endpoint.as_ref())
        .map(|u| u.0.as_str().trim_end_matches('/').to_string());
    let region = own
        .s3_region
        .clone()
        .or_else(|| global.s3_region.clone())
        .unwrap_or_else(|| "us-east-1".to_string());
    let profile = own
        .s3_profile
        .as_deref()
        .or(global.s3_profile.as_deref())
        .unwrap_or("default");
    let credentials = match own.s3_credentials.as_ref().or(global.s3_credentials.as_ref()) {
        Some(file) => {
            let file = if file.is_absolute() {
                file.clone()
            } else {
                base_dir.join(file)
            };
            read_credentials_file(&file, profile)?
        }
        None => credentials_from_env().ok_or_else(|| {
            format!(
                "publish {url:?} needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or s3_credentials = \"FILE\" (AWS shared-credentials format)"
            )
        })?,
    };
    Ok(S3Target {
        bucket,
        prefix,
        endpoint,
        region,
        credentials,
    })
}

/// Why mirrorsync could not write under `root`, if it could not. A root that does not
/// exist yet is fine when its nearest existing ancestor is writable (it is created).
fn root_problem(root: &Path) -> Option<String> {
    use rustix::fs::{Access, access};
    let existing = root.ancestors().find(|p| p.exists())?;
    if existing == root && !root.is_dir() {
        return Some("exists and is not a directory".into());
    }
    if access(existing, Access::WRITE_OK).is_err() {
        return Some(if existing == root {
            "is not writable by this user".into()
        } else {
            format!(
                "does not exist and cannot be created ({} is not writable by this user)",
                existing.display()
            )
        });
    }
    None
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// This machine's host name, or empty if it cannot be read.
pub(crate) fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Compiles include/exclude patterns as paths: `*` and `?` never match '/'.
fn path_globs(
    patterns: &[String],
    key: &str,
    at: &str,
    problems: &mut Vec<String>,
) -> globset::GlobSet {
    let mut set = globset::GlobSetBuilder::new();
    for pattern in patterns {
        match globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
        {
            Ok(g) => {
                set.add(g);
            }
            Err(e) => problems.push(format!("{at}: {key} pattern {pattern:?}: {e}")),
        }
    }
    set.build().unwrap_or_else(|_| globset::GlobSet::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[global]
root = "/tmp/mirrorsync-unit/srv"
hostname = "mirror.example.org"
bandwidth_limit = "40Mbit"
grace = "6h"

[[mirror]]
name = "debian"
kind = "apt"
upstream = "http://deb.example.org/debian"
suites = ["bookworm"]
components = ["main"]
architectures = ["arm64", "all"]
check_signature = false
"#;

    #[test]
    fn a_plain_config_validates_with_defaults() {
        let c = Config::from_toml(GOOD, Path::new("/etc/mirrors.toml")).unwrap();
        assert_eq!(c.global.network.bandwidth_limit, Some(5_000_000));
        assert_eq!(c.global.grace, Duration::from_secs(6 * 3600));
        assert_eq!(c.global.network.concurrency.get(), 8);
        let m = &c.mirrors[0];
        assert_eq!(m.upstream.as_str(), "http://deb.example.org/debian/");
        let MirrorKind::Apt(apt) = &m.kind else {
            panic!("apt")
        };
        assert_eq!(apt.architectures, vec!["arm64"]);
    }

    #[test]
    fn a_flat_repository_is_a_suite_ending_in_a_slash_with_no_components() {
        let flat = GOOD
            .replace("suites = [\"bookworm\"]", "suites = [\"./\", \"vendor/\"]")
            .replace("components = [\"main\"]\n", "")
            .replace("architectures = [\"arm64\", \"all\"]\n", "");
        let c = Config::from_toml(&flat, Path::new("m.toml")).unwrap();
        let MirrorKind::Apt(apt) = &c.mirrors[0].kind else {
            panic!("apt")
        };
        assert_eq!(apt.suites, ["./", "vendor/"]);
        // A suite name still needs its components.
        let mixed = flat.replace("\"vendor/\"", "\"bookworm\"");
        let err = Config::from_toml(&mixed, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("components must list at least one entry"),
            "{err}"
        );
        let escaping = flat.replace("\"vendor/\"", "\"../\"");
        let err = Config::from_toml(&escaping, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("suites entry \"../\" is not a flat repository's directory"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_names_line_and_column() {
        let text = GOOD.replace("grace = \"6h\"", "grace = \"6h\"\nconcurency = 4");
        let err = Config::from_toml(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("m.toml: line 7, column 1: unknown field `concurency`"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_duration_says_what_is_allowed() {
        let text = GOOD.replace("\"6h\"", "\"six hours\"");
        let err = Config::from_toml(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 6"), "{err}");
        assert!(err.contains("bad duration \"six hours\""), "{err}");
    }

    #[test]
    fn weak_signatures_are_accepted_only_by_name_and_only_with_a_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.gpg");
        std::fs::write(&key, b"x").unwrap();
        let with = |extra: &str| {
            GOOD.replace(
                "check_signature = false",
                &format!("keyring = \"{}\"\n{extra}", key.display()),
            )
        };
        let config = Config::from_toml(
            &with("allow_weak_signatures = [\"sha1-self-signatures\", \"rsa1024\"]"),
            Path::new("m.toml"),
        )
        .unwrap();
        let MirrorKind::Apt(apt) = &config.mirrors[0].kind else {
            panic!("not apt");
        };
        assert_eq!(
            apt.signature_policy.allowed().collect::<Vec<_>>(),
            [Weakness::Rsa1024, Weakness::Sha1SelfSignatures]
        );
        let err = Config::from_toml(
            &with("allow_weak_signatures = [\"sha1\"]"),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("allow_weak_signatures: unknown weakness \"sha1\" (known: rsa1024, dsa, sha1-self-signatures, sha224, v3-signatures)"),
            "{err}"
        );
        let unsigned = GOOD.replace(
            "check_signature = false",
            "check_signature = false\nallow_weak_signatures = [\"dsa\"]",
        );
        let err = Config::from_toml(&unsigned, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("allow_weak_signatures needs a keyring"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_keyring_is_named() {
        let text = GOOD.replace(
            "check_signature = false",
            "keyring = \"/nonexistent/key.gpg\"",
        );
        let err = Config::from_toml(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "[[mirror]] at line 8 (\"debian\"): keyring /nonexistent/key.gpg does not exist"
            ),
            "{err}"
        );
    }

    fn error_of(text: &str) -> String {
        Config::from_toml(text, Path::new("/etc/mirrorsync/mirrors.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn config_errors_read_well() {
        insta::assert_snapshot!(
            error_of(&GOOD.replace("grace = \"6h\"", "grace = \"6h\"\nconcurency = 4")),
            @r"
        /etc/mirrorsync/mirrors.toml: line 7, column 1: unknown field `concurency`, expected one of `root`, `hostname`, `concurrency`, `bandwidth_limit`, `keep_snapshots`, `grace`, `timeout`, `retries`, `retry_delay`, `max_delete_ratio`, `ip`, `bind_address`, `upstream_busy_wait`, `publish`, `s3_endpoint`, `s3_region`, `s3_credentials`, `s3_profile`, `auth_conf`, `status_page`, `stale_after`
          |
          7 | concurency = 4
          |
        "
        );
        insta::assert_snapshot!(
            error_of(&GOOD.replace("\"40Mbit\"", "\"40 furlongs\"")),
            @r#"
        /etc/mirrorsync/mirrors.toml: line 5, column 19: bad rate "40 furlongs"; write bits like "40Mbit" or "500kbit", or bytes like "5MB/s" or "2MiB/s"
          |
          5 | bandwidth_limit = "40 furlongs"
          |
        "#
        );
        insta::assert_snapshot!(
            error_of(&GOOD.replace("grace = \"6h\"", "grace = \"6h\"\nconcurrency = \"eight\"")),
            @r#"
        /etc/mirrorsync/mirrors.toml: line 7, column 15: invalid type: string "eight", expected a nonzero usize
          |
          7 | concurrency = "eight"
          |
        "#
        );
        insta::assert_snapshot!(
            error_of(&GOOD.replace("kind = \"apt\"", "kind = \"rsync\"")),
            @r#"
        /etc/mirrorsync/mirrors.toml: line 10, column 8: unknown variant `rsync`, expected `apt` or `images`
          |
         10 | kind = "rsync"
          |
        "#
        );
    }

    #[test]
    fn a_root_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let text = GOOD.replace("/tmp/mirrorsync-unit/srv", &file.display().to_string());
        let err = error_of(&text);
        assert!(
            err.ends_with("not-a-dir: exists and is not a directory"),
            "{err}"
        );
    }

    #[test]
    fn rates_in_bits_and_bytes() {
        assert_eq!(parse_rate("40Mbit"), Some(5_000_000));
        assert_eq!(parse_rate("40 Mbit/s"), Some(5_000_000));
        assert_eq!(parse_rate("800kbps"), Some(100_000));
        assert_eq!(parse_rate("5MB/s"), Some(5_000_000));
        assert_eq!(parse_rate("2MiB/s"), Some(2 * 1024 * 1024));
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_rate("0Mbit"), None);
    }

    #[test]
    fn publishing_to_a_bucket_takes_keys_from_a_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("s3-credentials");
        std::fs::write(
            &creds,
            "[mirror]\naws_access_key_id = GK123\naws_secret_access_key = sekrit\n",
        )
        .unwrap();
        let text = GOOD
            .replace(
                "grace = \"6h\"",
                &format!(
                    "grace = \"6h\"\npublish = \"s3://mirrors/all/\"\ns3_endpoint = \"http://127.0.0.1:3900\"\ns3_region = \"garage\"\ns3_credentials = \"{}\"\ns3_profile = \"mirror\"",
                    creds.display()
                ),
            );
        let c = Config::from_toml(&text, Path::new("/etc/mirrors.toml")).unwrap();
        let t = c.mirrors[0].publish.as_ref().unwrap();
        // The global publish is a base: each mirror goes under its own name.
        assert_eq!(t.url(), "s3://mirrors/all/debian/");
        assert_eq!(t.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(t.region, "garage");
        assert_eq!(t.credentials.access_key_id, "GK123");

        // A mirror's own publish wins, and a missing profile is named.
        let own = text.replace(
            "check_signature = false",
            "check_signature = false\npublish = \"s3://other/deb\"\ns3_profile = \"nope\"",
        );
        let err = error_of(&own);
        assert!(err.contains("no [nope] section"), "{err}");
        let err = error_of(&text.replace("s3://mirrors/all/", "https://mirrors/all"));
        assert!(err.contains("must start with s3://"), "{err}");
    }
}
