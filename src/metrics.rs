//! `root/.mirrorsync/metrics.prom`: the last runs in the Prometheus text format, for
//! node_exporter's textfile collector. Written after every sync from the mirrors'
//! state.json, atomically (temp file, rename), so a scrape never sees half a file.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Mirror;
use crate::snapshot::MirrorDirs;
use crate::state::{MirrorState, RunRecord};

/// Renders the metrics of `mirrors` from their state files.
pub fn render(root: &Path, mirrors: &[&Mirror]) -> String {
    let mut out = String::new();
    let metrics: [(&str, &str, &str); 8] = [
        (
            "mirrorsync_last_run_timestamp_seconds",
            "gauge",
            "When the last run of the mirror finished.",
        ),
        (
            "mirrorsync_last_run_success",
            "gauge",
            "1 if the last run published or found nothing to do, 0 if it failed.",
        ),
        (
            "mirrorsync_last_success_timestamp_seconds",
            "gauge",
            "When the last successful run finished.",
        ),
        (
            "mirrorsync_last_run_duration_seconds",
            "gauge",
            "How long the last run took.",
        ),
        (
            "mirrorsync_last_run_fetched_bytes",
            "gauge",
            "Bytes downloaded by the last run.",
        ),
        (
            "mirrorsync_last_run_fetched_files",
            "gauge",
            "Files downloaded by the last run.",
        ),
        (
            "mirrorsync_files_in_grace",
            "gauge",
            "Files kept after upstream removed them, as of the last success.",
        ),
        (
            "mirrorsync_upstream_release_timestamp_seconds",
            "gauge",
            "The newest upstream Release Date published.",
        ),
    ];
    let states: Vec<(&str, MirrorState)> = mirrors
        .iter()
        .map(|m| {
            let dirs = MirrorDirs::new(root, &m.name);
            (
                m.name.as_str(),
                MirrorState::load(&dirs.base).unwrap_or_default(),
            )
        })
        .collect();
    for (i, (name, kind, help)) in metrics.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (mirror, state) in &states {
            let last = state.last_run.as_ref();
            let ok = state.last_success.as_ref();
            let value = match i {
                0 => last.and_then(|r| seconds(&r.finished)),
                1 => last.map(|r| if r.result == "failed" { 0.0 } else { 1.0 }),
                2 => ok.and_then(|r| seconds(&r.finished)),
                3 => last.map(|r| r.seconds),
                4 => last.map(|r| r.bytes_fetched as f64),
                5 => last.map(|r| r.files_fetched as f64),
                6 => ok.map(|r| r.files_in_grace as f64),
                _ => ok.and_then(upstream_date),
            };
            if let Some(v) = value {
                let _ = writeln!(out, "{name}{{mirror=\"{}\"}} {v}", escape(mirror));
            }
        }
    }
    out
}

/// Writes `root/.mirrorsync/metrics.prom`.
pub fn write(root: &Path, mirrors: &[&Mirror]) -> std::io::Result<()> {
    let dir = root.join(".mirrorsync");
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(".metrics.prom.tmp");
    std::fs::write(&tmp, render(root, mirrors))?;
    std::fs::rename(&tmp, dir.join("metrics.prom"))
}

fn seconds(rfc3339: &str) -> Option<f64> {
    rfc3339
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

fn upstream_date(r: &RunRecord) -> Option<f64> {
    r.upstream_date.as_deref().and_then(seconds)
}

/// Label values escape backslash, quote and newline.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
