//! `root/.mirrorsync/<name>/history.jsonl`: the mirror's last runs, one JSON record a
//! line, oldest first, for the status page's graphs and `status --json`.
//!
//! Bounded to [`KEEP`] runs, and rewritten whole through a temporary file and a rename
//! at each run (a few hundred short lines): a power cut leaves the old history or the
//! new one, never a torn one. A line that does not parse (written by hand, or by
//! another version) is skipped, not fatal: the history is for looking at.

use std::path::{Path, PathBuf};

use crate::state::RunRecord;

/// Runs kept per mirror: at four runs a day, four months.
pub const KEEP: usize = 500;

pub fn path(base: &Path) -> PathBuf {
    base.join("history.jsonl")
}

/// The recorded runs, oldest first; none for a mirror without a history yet.
pub fn load(base: &Path) -> Vec<RunRecord> {
    let Ok(text) = std::fs::read_to_string(path(base)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Adds `run` and keeps the last [`KEEP`].
pub fn append(base: &Path, run: &RunRecord) -> std::io::Result<()> {
    let mut runs = load(base);
    runs.push(run.clone());
    let from = runs.len().saturating_sub(KEEP);
    let mut text = String::new();
    for r in &runs[from..] {
        text.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    crate::atomic::write(&path(base), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: u64) -> RunRecord {
        RunRecord {
            started: format!("2026-11-30T00:00:{:02}Z", n % 60),
            result: "published".into(),
            files_fetched: n,
            ..RunRecord::default()
        }
    }

    #[test]
    fn the_history_keeps_the_last_runs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).is_empty());
        for n in 0..(KEEP as u64 + 5) {
            append(dir.path(), &run(n)).unwrap();
        }
        let runs = load(dir.path());
        assert_eq!(runs.len(), KEEP);
        assert_eq!(runs[0].files_fetched, 5);
        assert_eq!(runs[KEEP - 1].files_fetched, KEEP as u64 + 4);
    }

    #[test]
    fn a_line_that_does_not_parse_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &run(1)).unwrap();
        let mut text = std::fs::read_to_string(path(dir.path())).unwrap();
        text.push_str("{\"started\": \"cut off by hand\n");
        std::fs::write(path(dir.path()), text).unwrap();
        append(dir.path(), &run(2)).unwrap();
        let runs = load(dir.path());
        assert_eq!(
            runs.iter().map(|r| r.files_fetched).collect::<Vec<_>>(),
            [1, 2]
        );
    }
}
