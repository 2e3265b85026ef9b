//! The run lock: one mirrorsync at a time per mirror root.
//!
//! An flock(2) on `root/.mirrorsync/lock`, taken without waiting. The kernel drops it
//! when the process dies, however it dies, so a crashed or killed run never leaves a
//! stale lock behind. The file records the holder's pid for the message others see.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another mirrorsync run{holder} holds {path}; this run did nothing")]
    Held { path: PathBuf, holder: String },
    #[error("opening the lock file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    pub fn acquire(root: &Path) -> Result<RunLock, LockError> {
        let dir = root.join(".mirrorsync");
        let path = dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(held_by(&mut file, path)),
            // ENOLCK, EINTR...: not another run; say what the system said.
            Err(e) => return Err(io(e.into())),
        }
        // Best effort: the pid only makes the other run's message friendlier.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(RunLock { _file: file })
    }
}

/// Who holds the lock, as far as the pid it wrote says.
fn held_by(file: &mut File, path: PathBuf) -> LockError {
    let mut pid = String::new();
    let _ = file.read_to_string(&mut pid);
    let pid = pid.trim();
    LockError::Held {
        holder: if pid.is_empty() {
            String::new()
        } else {
            format!(" (pid {pid})")
        },
        path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_root_is_refused_until_the_first_is_dropped() {
        let root = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(root.path()).unwrap();
        let err = RunLock::acquire(root.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        drop(first);
        RunLock::acquire(root.path()).unwrap();
    }
}
