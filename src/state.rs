//! `root/.mirrorsync/<name>/state.json`: what the last runs did, for `status`, the
//! no-op shortcut and the health metrics.
//!
//! The served symlink, not this file, says what is published: state is written after a
//! publish and may lag it by a crash, never lead it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::upstream::Validators;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The atomic writer's error names its step (temporary file, rename, fsync).
    #[error("recording {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {detail}")]
    Damaged { path: PathBuf, detail: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MirrorState {
    pub last_run: Option<RunRecord>,
    pub last_success: Option<RunRecord>,
    /// Fingerprint of the mirror's config when it was last published; the no-op
    /// shortcut is only safe while it is unchanged.
    pub config_fingerprint: Option<String>,
    /// Per upstream file (e.g. "dists/bookworm/InRelease"): its validators when the
    /// published snapshot took it.
    #[serde(default)]
    pub validators: BTreeMap<String, Validators>,
    /// Per suite, the `Date` of the Release the published snapshot holds, RFC 3339,
    /// recorded when it was verified: the rollback check's floor when the published
    /// copy itself can no longer be verified (keyring changed, file edited).
    #[serde(default)]
    pub release_dates: BTreeMap<String, String>,
}

/// Fields missing from an older record read as their defaults: history lines of
/// earlier versions stay readable.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRecord {
    pub started: String,
    pub finished: String,
    pub result: String,
    pub trigger: String,
    pub error: Option<String>,
    pub snapshot: Option<String>,
    pub files_fetched: u64,
    pub bytes_fetched: u64,
    pub files_linked: u64,
    pub files_deleted: u64,
    pub files_in_grace: u64,
    pub requests: u64,
    pub seconds: f64,
    /// The newest upstream Release Date seen, RFC 3339.
    pub upstream_date: Option<String>,
    /// What the served snapshot holds after the run (carried over when it was
    /// unchanged).
    pub files_total: u64,
    pub bytes_total: u64,
}

impl MirrorState {
    pub fn path(base: &Path) -> PathBuf {
        base.join("state.json")
    }

    /// Reads the state; a missing file is a first run.
    pub fn load(base: &Path) -> Result<MirrorState, StateError> {
        let path = Self::path(base);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
                path,
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MirrorState::default()),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Writes atomically and durably (see [`crate::atomic`]).
    pub fn save(&self, base: &Path) -> Result<(), StateError> {
        let path = Self::path(base);
        let json = serde_json::to_vec_pretty(self).map_err(|e| StateError::Damaged {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        crate::atomic::write(&path, &json).map_err(|source| StateError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_first_run_has_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(MirrorState::load(dir.path()).unwrap().last_run.is_none());
        let mut s = MirrorState::default();
        s.validators.insert(
            "dists/bookworm/InRelease".into(),
            Validators {
                etag: Some("\"abc\"".into()),
                last_modified: None,
                content_sha256: None,
            },
        );
        s.save(dir.path()).unwrap();
        let back = MirrorState::load(dir.path()).unwrap();
        assert_eq!(back.validators, s.validators);
    }
}
