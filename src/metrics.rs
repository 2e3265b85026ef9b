//! `root/.mirrorsync/metrics.prom`: the last runs in the Prometheus text format, for
//! node_exporter's textfile collector. Written after every sync from the mirrors'
//! state.json, atomically (see [`crate::atomic`]), so a scrape never sees half a file.

use std::path::Path;

use crate::config::Mirror;
use crate::promtext::Exposition;
use crate::snapshot::MirrorDirs;
use crate::state::{MirrorState, RunRecord};

/// A gauge per mirror: its name, help, and value from the mirror's state (none: no
/// sample for that mirror).
type Gauge = (&'static str, &'static str, fn(&MirrorState) -> Option<f64>);

const GAUGES: [Gauge; 8] = [
    (
        "mirrorsync_last_run_timestamp_seconds",
        "When the last run of the mirror finished.",
        |s| last(s).and_then(|r| seconds(&r.finished)),
    ),
    (
        "mirrorsync_last_run_success",
        "1 if the last run published or found nothing to do, 0 if it failed.",
        |s| last(s).map(|r| if r.result == "failed" { 0.0 } else { 1.0 }),
    ),
    (
        "mirrorsync_last_success_timestamp_seconds",
        "When the last successful run finished.",
        |s| success(s).and_then(|r| seconds(&r.finished)),
    ),
    (
        "mirrorsync_last_run_duration_seconds",
        "How long the last run took.",
        |s| last(s).map(|r| r.seconds),
    ),
    (
        "mirrorsync_last_run_fetched_bytes",
        "Bytes downloaded by the last run.",
        |s| last(s).map(|r| r.bytes_fetched as f64),
    ),
    (
        "mirrorsync_last_run_fetched_files",
        "Files downloaded by the last run.",
        |s| last(s).map(|r| r.files_fetched as f64),
    ),
    (
        "mirrorsync_files_in_grace",
        "Files kept after upstream removed them, as of the last success.",
        |s| success(s).map(|r| r.files_in_grace as f64),
    ),
    (
        "mirrorsync_upstream_release_timestamp_seconds",
        "The newest upstream Release Date published.",
        |s| success(s).and_then(upstream_date),
    ),
];

/// Renders the metrics of `mirrors` from their state files.
pub fn render(root: &Path, mirrors: &[&Mirror]) -> String {
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
    let mut out = Exposition::new();
    for (name, help, value_of) in GAUGES {
        let mut family = out.family(name, "gauge", help);
        for (mirror, state) in &states {
            if let Some(v) = value_of(state) {
                family.sample(&[("mirror", mirror)], v);
            }
        }
    }
    out.finish()
}

/// Writes `root/.mirrorsync/metrics.prom`, atomically.
pub fn write(root: &Path, mirrors: &[&Mirror]) -> std::io::Result<()> {
    let dir = root.join(".mirrorsync");
    std::fs::create_dir_all(&dir)?;
    crate::atomic::write(&dir.join("metrics.prom"), render(root, mirrors).as_bytes())
}

fn last(s: &MirrorState) -> Option<&RunRecord> {
    s.last_run.as_ref()
}

fn success(s: &MirrorState) -> Option<&RunRecord> {
    s.last_success.as_ref()
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
