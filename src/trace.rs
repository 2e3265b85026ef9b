//! Trace files: what mirror checkers read to judge a mirror's freshness.
//!
//! `project/trace/<hostname>` in the format ftpsync writes and Debian's checkers
//! parse: line 1 exactly as POSIX `date -u` prints, then only `Field: value` lines, no
//! blank line, under 1024 bytes. The upstream's trace files are copied, `_hierarchy`
//! gains a line for this hop, and `_traces` lists the files oldest first. Fetching the
//! upstream's traces is the only I/O here; rendering is pure.

use bytes::Bytes;
use jiff::Timestamp;
use url::Url;

use crate::relpath::RelPath;
use crate::upstream::{Meta, Upstream};

/// Debian's checkers refuse a trace file over this size.
pub const MAX_TRACE_BYTES: usize = 1024;
/// How many upstream trace files we copy at most; real archives have a handful.
const MAX_UPSTREAM_TRACES: usize = 64;

/// What started a run, recorded in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    #[default]
    Cron,
    Manual,
    Push,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cron => "cron",
            Trigger::Manual => "manual",
            Trigger::Push => "push",
        }
    }
}

/// The figures of a run that the trace reports.
pub struct TraceInput<'a> {
    pub hostname: &'a str,
    pub upstream: &'a Url,
    pub started: Timestamp,
    pub finished: Timestamp,
    pub bytes_received: u64,
    /// What the tree really holds (plus "source" when mirrored), sorted.
    pub architectures: &'a [String],
    /// What the config asked for.
    pub configured: &'a [String],
    pub sources: bool,
    pub trigger: Trigger,
}

/// The upstream's `project/trace/` as far as it could be read.
#[derive(Debug, Default, Clone)]
pub struct UpstreamTraces {
    /// (file name, contents), in `_traces` order (oldest first), `master` first if
    /// there is no `_traces`.
    pub files: Vec<(String, Bytes)>,
    pub hierarchy: Option<String>,
}

impl UpstreamTraces {
    /// The archive serial of the master trace ("Archive serial: 2026112501").
    pub fn archive_serial(&self) -> Option<String> {
        let (_, master) = self.files.iter().find(|(n, _)| n == "master")?;
        let text = std::str::from_utf8(master).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Archive serial:"))
            .map(|s| s.trim().to_string())
    }

    /// Every path under `project/trace/` that the snapshot will hold.
    pub fn paths(&self, hostname: &str) -> Vec<RelPath> {
        let mut names: Vec<&str> = self.files.iter().map(|(n, _)| n.as_str()).collect();
        names.extend([hostname, "_hierarchy", "_traces"]);
        names
            .into_iter()
            .filter_map(|n| RelPath::new(&format!("project/trace/{n}")).ok())
            .collect()
    }
}

/// A trace file name we are willing to copy: a plain name, like a hostname.
fn plain_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Reads the upstream's trace files. Missing ones are normal (not every archive has
/// them) and failures are logged, never fatal: traces describe the mirror, they are
/// not part of what clients verify.
pub async fn fetch_upstream(upstream: &Upstream, base: &Url) -> UpstreamTraces {
    let get = |name: String| async move {
        let url = base.join(&format!("project/trace/{name}")).ok()?;
        match upstream.get_meta(&url, 64 * 1024, None).await {
            Ok(Meta::Body { body, .. }) if !looks_like_html(&body) => Some(body),
            Ok(_) => None,
            Err(e) => {
                if !e.is_not_found() {
                    tracing::warn!(error = %e, "could not read an upstream trace file");
                }
                None
            }
        }
    };
    let mut out = UpstreamTraces::default();
    let names: Vec<String> = match get("_traces".into()).await {
        Some(list) => String::from_utf8_lossy(&list)
            .lines()
            .map(str::trim)
            .filter(|n| plain_name(n) && !n.starts_with('_'))
            .take(MAX_UPSTREAM_TRACES)
            .map(str::to_string)
            .collect(),
        None => vec!["master".into()],
    };
    for name in names {
        if let Some(body) = get(name.clone()).await {
            out.files.push((name, body));
        }
    }
    out.hierarchy = get("_hierarchy".into())
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    out
}

fn looks_like_html(b: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&b[..b.len().min(256)]).to_ascii_lowercase();
    head.contains("<html") || head.contains("<!doctype")
}

/// POSIX `date -u` output: "Wed Apr 27 15:50:50 UTC 2016" (day padded with a space).
pub fn posix_date(t: Timestamp) -> String {
    t.strftime("%a %b %e %H:%M:%S UTC %Y").to_string()
}

/// RFC 2822 with a numeric zone, as ftpsync writes `Date:`.
pub fn rfc2822(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// Our trace file's text.
pub fn render_own(input: &TraceInput<'_>, serial: Option<&str>) -> String {
    let secs = input
        .finished
        .duration_since(input.started)
        .as_secs()
        .max(1) as u64;
    let configuration = if input.configured.is_empty() {
        "ALL".to_string()
    } else {
        let mut all: Vec<&str> = input.configured.iter().map(String::as_str).collect();
        if input.sources {
            all.push("source");
        }
        format!("INCLUDE {}", all.join(" "))
    };
    let mut lines = vec![
        posix_date(input.finished),
        format!("Date: {}", rfc2822(input.finished)),
        format!("Date-Started: {}", rfc2822(input.started)),
    ];
    if let Some(s) = serial {
        lines.push(format!("Archive serial: {}", one_line(s)));
    }
    lines.extend([
        format!("Creator: mirrorsync {}", env!("CARGO_PKG_VERSION")),
        format!("Running on host: {}", input.hostname),
        format!("Architectures: {}", input.architectures.join(" ")),
        format!("Architectures-Configuration: {configuration}"),
        format!(
            "Upstream-mirror: {}",
            input.upstream.host_str().unwrap_or("unknown")
        ),
        format!("Total bytes received: {}", input.bytes_received),
        format!("Total time spent: {secs}s"),
        format!("Average rate: {} B/s", input.bytes_received / secs),
        format!("Trigger: {}", input.trigger.as_str()),
        // Without it the redirector assumes a mirror lacks InRelease and translations
        // because the trace does not come from ftpsync.
        "Revision: inrelease i18n".to_string(),
    ]);
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Every file of `project/trace/` for the snapshot: the upstream's, ours,
/// `_hierarchy` and `_traces`.
pub fn render(input: &TraceInput<'_>, upstream: &UpstreamTraces) -> Vec<(RelPath, Bytes)> {
    let at = |n: &str| RelPath::new(&format!("project/trace/{n}"));
    let mut out = Vec::new();
    let mut names = Vec::new();
    for (name, body) in &upstream.files {
        if name == input.hostname {
            // Our own old trace came back through a loop in the hierarchy.
            continue;
        }
        if let Ok(p) = at(name) {
            out.push((p, body.clone()));
            names.push(name.clone());
        }
    }
    let own = render_own(input, upstream.archive_serial().as_deref());
    if let Ok(p) = at(input.hostname) {
        out.push((p, Bytes::from(own)));
        names.push(input.hostname.to_string());
    }
    let mut hierarchy = upstream.hierarchy.clone().unwrap_or_default();
    if !hierarchy.is_empty() && !hierarchy.ends_with('\n') {
        hierarchy.push('\n');
    }
    let this_host = Some(crate::config::system_hostname())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| input.hostname.to_string());
    hierarchy.push_str(&format!(
        "{} {} {} {}\n",
        input.hostname,
        input.hostname,
        this_host,
        input.upstream.host_str().unwrap_or("unknown")
    ));
    if let Ok(p) = at("_hierarchy") {
        out.push((p, Bytes::from(hierarchy)));
    }
    let mut list = names.join("\n");
    list.push('\n');
    if let Ok(p) = at("_traces") {
        out.push((p, Bytes::from(list)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        upstream: &'a Url,
        arches: &'a [String],
        configured: &'a [String],
    ) -> TraceInput<'a> {
        TraceInput {
            hostname: "mirror.example.org",
            upstream,
            started: "2016-04-27T15:40:00Z".parse().unwrap(),
            finished: "2016-04-27T15:50:50Z".parse().unwrap(),
            bytes_received: 650_000,
            architectures: arches,
            configured,
            sources: true,
            trigger: Trigger::Cron,
        }
    }

    #[test]
    fn the_trace_reads_as_checkers_expect() {
        let up = Url::parse("http://deb.debian.org/debian/").unwrap();
        let arches = vec!["amd64".to_string(), "source".to_string()];
        let configured = vec!["amd64".to_string()];
        let master = UpstreamTraces {
            files: vec![(
                "master".into(),
                Bytes::from_static(b"Wed Apr 27 15:00:00 UTC 2016\nArchive serial: 2016042703\n"),
            )],
            hierarchy: None,
        };
        let text = render_own(
            &input(&up, &arches, &configured),
            master.archive_serial().as_deref(),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Wed Apr 27 15:50:50 UTC 2016");
        let field = regex_lite_field;
        assert!(lines[1..].iter().all(|l| field(l)), "{text}");
        assert!(text.contains("\nDate: Wed, 27 Apr 2016 15:50:50 +0000\n"));
        assert!(text.contains("\nDate-Started: Wed, 27 Apr 2016 15:40:00 +0000\n"));
        assert!(text.contains("\nArchive serial: 2016042703\n"));
        assert!(text.contains("\nArchitectures: amd64 source\n"));
        assert!(text.contains("\nArchitectures-Configuration: INCLUDE amd64 source\n"));
        assert!(text.contains("\nUpstream-mirror: deb.debian.org\n"));
        assert!(text.contains("\nTotal time spent: 650s\n"));
        assert!(text.contains("\nAverage rate: 1000 B/s\n"));
        assert!(text.contains("\nTrigger: cron\n"));
        assert!(text.contains("\nRevision: inrelease i18n\n"));
        assert!(!text.contains("\n\n") && !text.contains('\r'));
        assert!(text.len() < MAX_TRACE_BYTES);
    }

    /// `^[\w -]+:` as the checkers match it.
    fn regex_lite_field(l: &str) -> bool {
        match l.split_once(':') {
            Some((k, _)) => {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == ' ' || c == '-')
            }
            None => false,
        }
    }

    #[test]
    fn single_digit_days_are_space_padded_like_date() {
        let t: Timestamp = "2026-11-05T01:02:03Z".parse().unwrap();
        assert_eq!(posix_date(t), "Thu Nov  5 01:02:03 UTC 2026");
    }

    #[test]
    fn hierarchy_grows_and_traces_list_oldest_first() {
        let up = Url::parse("http://upstream.example.net/debian/").unwrap();
        let arches = vec!["amd64".to_string()];
        let upstream = UpstreamTraces {
            files: vec![
                ("master".into(), Bytes::from_static(b"x\n")),
                ("upstream.example.net".into(), Bytes::from_static(b"y\n")),
            ],
            hierarchy: Some(
                "upstream.example.net upstream.example.net up1 master.example\n".into(),
            ),
        };
        let files = render(&input(&up, &arches, &arches), &upstream);
        let get = |n: &str| {
            let p = RelPath::new(&format!("project/trace/{n}")).unwrap();
            String::from_utf8(files.iter().find(|(q, _)| *q == p).unwrap().1.to_vec()).unwrap()
        };
        assert_eq!(
            get("_traces"),
            "master\nupstream.example.net\nmirror.example.org\n"
        );
        let h = get("_hierarchy");
        assert!(h.starts_with("upstream.example.net upstream.example.net up1 master.example\nmirror.example.org mirror.example.org "), "{h}");
        assert!(h.ends_with(" upstream.example.net\n"));
        assert_eq!(get("master"), "x\n");
    }
}
