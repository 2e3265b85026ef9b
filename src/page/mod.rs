//! The status page: one static HTML file (`root/status/index.html` unless
//! `status_page` says otherwise) written after every run, for the operator and the
//! mirror's users. Per mirror: whether it is fresh, stale or failing, what the last
//! runs did and how that trends (inline SVG graphs, their figures in a table). No
//! script and no external asset: it reads the same from nginx on a Pi, from a file,
//! on a phone and with a screen reader; light or dark as the reader's system is.

mod graph;

use std::fmt::Write;
use std::path::Path;

use graph::{Graph, Point};

use crate::config::{Config, Mirror};
use crate::snapshot::MirrorDirs;
use crate::state::{MirrorState, RunRecord};

/// How a mirror is doing, as the page says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Fresh,
    /// The last success is older than `stale_after`.
    Stale,
    /// The last run failed.
    Failing,
    /// Never synced.
    New,
}

impl Health {
    /// One token, for `data-state` and the style sheet.
    fn token(self) -> &'static str {
        match self {
            Health::Fresh => "fresh",
            Health::Stale => "stale",
            Health::Failing => "failing",
            Health::New => "new",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Health::New => "not synced yet",
            h => h.token(),
        }
    }
}

/// What the page shows of one mirror.
pub struct MirrorView {
    pub name: String,
    pub kind: &'static str,
    pub upstream: String,
    pub health: Health,
    pub state: MirrorState,
    pub snapshot: Option<String>,
    pub kept: usize,
    pub history: Vec<RunRecord>,
    /// `stale_after`, in seconds.
    pub stale_after: i64,
}

/// Everything the page shows, read from the mirrors' records.
pub fn gather(config: &Config, now: jiff::Timestamp) -> Vec<MirrorView> {
    config
        .mirrors
        .iter()
        .map(|m| view(config, m, now))
        .collect()
}

fn view(config: &Config, m: &Mirror, now: jiff::Timestamp) -> MirrorView {
    let dirs = MirrorDirs::new(&config.global.root, &m.name);
    let state = MirrorState::load(&dirs.base).unwrap_or_default();
    let last_ok = state
        .last_success
        .as_ref()
        .and_then(|r| r.finished.parse::<jiff::Timestamp>().ok());
    let stale_after = config.global.stale_after.as_secs() as i64;
    let health = match (&state.last_run, last_ok) {
        (None, _) => Health::New,
        (Some(r), _) if r.result == "failed" => Health::Failing,
        (_, Some(ok)) if now.as_second() - ok.as_second() > stale_after => Health::Stale,
        (_, Some(_)) => Health::Fresh,
        (_, None) => Health::New,
    };
    MirrorView {
        name: m.name.clone(),
        kind: m.kind_name(),
        upstream: crate::upstream::redact(&m.upstream),
        health,
        snapshot: dirs.current_id().ok().flatten(),
        kept: dirs.snapshot_ids().map(|s| s.len()).unwrap_or(0),
        history: crate::history::load(&dirs.base),
        state,
        stale_after,
    }
}

/// Writes the page for `config` where it says, atomically.
pub fn write(config: &Config) -> std::io::Result<()> {
    let Some(path) = &config.global.status_page else {
        return Ok(());
    };
    // A config naming no mirror yet (as the package installs it) has nothing to show.
    if config.mirrors.is_empty() {
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    write_to(path, &gather(config, now), now)
}

/// Writes the page for `views` to `path`, atomically, making its directory.
pub fn write_to(path: &Path, views: &[MirrorView], now: jiff::Timestamp) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        // A symlink there (a served tree of a mirror once named so) would take the
        // page somewhere else.
        if std::fs::symlink_metadata(dir)?.file_type().is_symlink() {
            return Err(std::io::Error::other(format!(
                "{} is a symbolic link; the status page goes into a directory of its own",
                dir.display()
            )));
        }
    }
    // A name of its own: `status --html` and a run may write the same page at once.
    let pending = crate::atomic::Pending::unique(path)?;
    // Readable by the web server, as any file of the served root.
    {
        use std::os::unix::fs::PermissionsExt;
        pending
            .file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    std::io::Write::write_all(&mut pending.file(), render(views, now).as_bytes())?;
    pending.commit()
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root{color-scheme:light dark;--bg:#fff;--fg:#1d1d1f;--muted:#5f6368;--card:#f6f7f9;--line:#d0d4da;--ok:#1a7f37;--warn:#9a6700;--bad:#c62828;--trend:#2563eb}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--fg:#e8eaed;--muted:#a0a6ad;--card:#1b1f24;--line:#3a4048;--ok:#3fb950;--warn:#d29922;--bad:#f85149;--trend:#6ea8fe}.state{color:#0b0d10}}
*{box-sizing:border-box}body{margin:0 auto;max-width:70rem;padding:1rem;font:16px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
h1{font-size:1.5rem;margin:.2rem 0}header p{color:var(--muted);margin:.2rem 0 1rem}
section.mirror{background:var(--card);border-radius:.6rem;padding:1rem;margin:0 0 1.2rem}
h2{font-size:1.25rem;margin:0 0 .5rem;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
.state{font-size:.85rem;padding:.1rem .55rem;border-radius:1rem;color:#fff}.state.fresh{background:var(--ok)}.state.stale{background:var(--warn)}.state.failing{background:var(--bad)}.state.new{background:var(--muted)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.5rem 0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
pre.error{white-space:pre-wrap;border-left:4px solid var(--bad);padding:.5rem;margin:.5rem 0;overflow-wrap:anywhere}
.graphs{display:grid;grid-template-columns:repeat(auto-fit,minmax(20rem,1fr));gap:.8rem;margin:.8rem 0}
svg.graph{width:100%;height:auto;background:var(--bg);border-radius:.4rem}
.label{font-size:13px;fill:var(--muted)}.axis{stroke:var(--line)}.trend{fill:none;stroke:var(--trend);stroke-width:1.5}
svg.graph circle{r:2.5px;fill:var(--trend)}svg.graph circle.failed{fill:var(--bad)}.fail-tick{stroke:var(--bad);stroke-width:2}
table{border-collapse:collapse;font-size:.85rem;width:100%}th,td{text-align:right;padding:.15rem .5rem;border-bottom:1px solid var(--line)}th:first-child,td:first-child,td:nth-child(2){text-align:left}
details{margin-top:.5rem}.table{overflow-x:auto}
"#;

/// The whole page.
pub fn render(views: &[MirrorView], now: jiff::Timestamp) -> String {
    let mut out = String::with_capacity(8192 + views.len() * 32 * 1024);
    let failing = views.iter().filter(|v| v.health == Health::Failing).count();
    let summary = match failing {
        0 => format!("{} mirror(s), none failing", views.len()),
        n => format!("{} mirror(s), {n} failing", views.len()),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"generator\" content=\"mirrorsync {ver}\"><title>Mirror status: {summary}</title><style>{STYLE}</style></head><body><header><h1>Mirror status</h1><p>{summary} · written {now} (UTC) by mirrorsync {ver}</p></header><main>",
        ver = env!("CARGO_PKG_VERSION"),
        summary = esc(&summary),
        now = now.strftime("%Y-%m-%d %H:%M:%S"),
    );
    for (i, v) in views.iter().enumerate() {
        mirror_section(&mut out, i, v, now);
    }
    out.push_str("</main></body></html>\n");
    out
}

fn mirror_section(out: &mut String, index: usize, v: &MirrorView, now: jiff::Timestamp) {
    let id = format!("m{index}");
    let _ = write!(
        out,
        r#"<section class="mirror" id="{id}" data-name="{name}" data-state="{state}"><h2>{name} <span class="state {class}">{word}</span></h2><dl>"#,
        name = esc(&v.name),
        state = v.health.token(),
        class = v.health.token(),
        word = v.health.word(),
    );
    let mut row = |k: &str, val: String| {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&val));
    };
    row("kind", v.kind.to_string());
    row("upstream", v.upstream.clone());
    row("last run", run_line(v.state.last_run.as_ref()));
    row("last success", run_line(v.state.last_success.as_ref()));
    // The page is written by runs: if they stop, this line says when it went stale.
    if let Some(ok) = v.state.last_success.as_ref()
        && let Ok(t) = ok.finished.parse::<jiff::Timestamp>()
        && let Ok(until) = t.checked_add(jiff::SignedDuration::from_secs(v.stale_after))
    {
        row(
            "stale from",
            until.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        );
    }
    if let Some(ok) = &v.state.last_success {
        if let Some(date) = &ok.upstream_date {
            row(
                "upstream Release",
                format!("{date} ({} behind)", lag_words(date, now)),
            );
        }
        row(
            "served",
            format!(
                "{} file(s), {}",
                ok.files_total,
                indicatif::HumanBytes(ok.bytes_total)
            ),
        );
        row("in grace", format!("{} file(s)", ok.files_in_grace));
    }
    row(
        "snapshot",
        format!(
            "{} ({} kept)",
            v.snapshot.as_deref().unwrap_or("none"),
            v.kept
        ),
    );
    out.push_str("</dl>");
    if let Some(err) = v.state.last_run.as_ref().and_then(|r| r.error.as_deref()) {
        let _ = write!(out, r#"<pre class="error">{}</pre>"#, esc(err));
    }
    graphs(out, &id, &v.history);
    out.push_str("</section>");
}

/// "2026-11-30 12:00 published, 4.2 s, fetched 12 file(s) (3.4 MiB)".
fn run_line(r: Option<&RunRecord>) -> String {
    let Some(r) = r else {
        return "never".into();
    };
    let when = r
        .finished
        .parse::<jiff::Timestamp>()
        .map_or(r.finished.clone(), |t| {
            t.strftime("%Y-%m-%d %H:%M").to_string()
        });
    format!(
        "{when} {}, {:.1} s, fetched {} file(s) ({})",
        r.result,
        r.seconds,
        r.files_fetched,
        indicatif::HumanBytes(r.bytes_fetched)
    )
}

fn lag_words(date: &str, now: jiff::Timestamp) -> String {
    match date.parse::<jiff::Timestamp>() {
        Ok(d) => hours_words((now.as_second() - d.as_second()) as f64 / 3600.0),
        Err(_) => "unknown".into(),
    }
}

fn hours_words(h: f64) -> String {
    if h < 48.0 {
        format!("{h:.1} h")
    } else {
        format!("{:.1} d", h / 24.0)
    }
}

/// The four graphs and the table of their figures.
fn graphs(out: &mut String, id: &str, runs: &[RunRecord]) {
    let at = |r: &RunRecord| r.started.parse::<jiff::Timestamp>().unwrap_or_default();
    let failed = |r: &RunRecord| r.result == "failed";
    let lags = lags(runs);
    let series = |f: &dyn Fn(usize, &RunRecord) -> Option<f64>| -> Vec<Point> {
        runs.iter()
            .enumerate()
            .map(|(i, r)| Point {
                at: at(r),
                value: f(i, r),
                failed: failed(r),
            })
            .collect()
    };
    let duration = series(&|_, r| Some(r.seconds));
    let bytes = series(&|_, r| Some(r.bytes_fetched as f64));
    let files = series(&|_, r| Some((r.files_fetched + r.files_deleted) as f64));
    let lag = series(&|i, _| lags[i]);
    let table_id = format!("{id}-figures");
    let charts = [
        (
            "duration",
            "Run duration",
            &duration,
            &(|v: f64| format!("{v:.1} s")) as &dyn Fn(f64) -> String,
        ),
        ("bytes", "Bytes fetched", &bytes, &|v: f64| {
            indicatif::HumanBytes(v as u64).to_string()
        }),
        ("files", "Files changed", &files, &|v: f64| {
            format!("{v:.0}")
        }),
        ("lag", "Lag behind upstream", &lag, &hours_words),
    ];
    out.push_str(r#"<div class="graphs">"#);
    for (key, title, points, format) in charts {
        let g = Graph {
            id: format!("{id}-{key}"),
            title,
            format,
            points,
        };
        out.push_str(&g.svg(&table_id));
    }
    out.push_str("</div>");
    figures_table(out, &table_id, runs, &lags);
}

/// Each run's lag behind upstream in hours: from its upstream Release Date, or for a
/// run without one (failed) the last one seen before it.
fn lags(runs: &[RunRecord]) -> Vec<Option<f64>> {
    let mut known: Option<jiff::Timestamp> = None;
    runs.iter()
        .map(|r| {
            if let Some(d) = r.upstream_date.as_deref().and_then(|d| d.parse().ok()) {
                known = Some(d);
            }
            let end = r.finished.parse::<jiff::Timestamp>().ok()?;
            known.map(|d| (end.as_second() - d.as_second()).max(0) as f64 / 3600.0)
        })
        .collect()
}

fn figures_table(out: &mut String, id: &str, runs: &[RunRecord], lags: &[Option<f64>]) {
    let _ = write!(
        out,
        r#"<details><summary>Figures of the {} recorded run(s)</summary><div class="table"><table id="{id}"><thead><tr><th scope="col">started (UTC)</th><th scope="col">result</th><th scope="col">seconds</th><th scope="col">bytes fetched</th><th scope="col">files changed</th><th scope="col">lag (h)</th></tr></thead><tbody>"#,
        runs.len()
    );
    for (r, lag) in runs.iter().zip(lags).rev() {
        let started = r
            .started
            .parse::<jiff::Timestamp>()
            .map_or(r.started.clone(), |t| {
                t.strftime("%Y-%m-%d %H:%M").to_string()
            });
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&started),
            esc(&r.result),
            r.seconds,
            r.bytes_fetched,
            r.files_fetched + r.files_deleted,
            lag.map_or("–".to_string(), |h| format!("{h:.1}"))
        );
    }
    out.push_str("</tbody></table></div></details>");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever an upstream or an operator put in a name, a URL or an error, the page
    /// shows it as text.
    #[test]
    fn hostile_strings_are_shown_as_text() {
        let state = MirrorState {
            last_run: Some(RunRecord {
                started: "2026-11-30T00:00:00Z".into(),
                finished: "2026-11-30T00:00:05Z".into(),
                result: "failed".into(),
                error: Some("</pre><script>alert(1)</script> & \"'".into()),
                ..RunRecord::default()
            }),
            ..MirrorState::default()
        };
        let view = MirrorView {
            name: "<b>x</b>".into(),
            kind: "apt",
            upstream: "http://h/\"><img src=x>".into(),
            health: Health::Failing,
            history: state.last_run.iter().cloned().collect(),
            state,
            snapshot: None,
            kept: 0,
            stale_after: 86400,
        };
        let html = render(&[view], jiff::Timestamp::UNIX_EPOCH);
        for bad in ["<script>", "<b>x", "<img"] {
            assert!(!html.contains(bad), "{bad} got through");
        }
        assert!(html.contains("http://h/&quot;&gt;&lt;img src=x&gt;"));
        assert!(
            html.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;&#39;")
        );
        assert_eq!(html.matches("<pre").count(), 1);
    }
}
