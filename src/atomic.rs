//! Replacing a file so that a reader, or a power cut, finds the old bytes or the new
//! ones, never half of them: write a temporary file beside the target, fsync it, rename
//! it over the target, fsync the directory.
//!
//! Every error is an `io::Error` whose message names the step and the path, so a
//! caller with nothing to add can hand it on as it is.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `target` atomically and durably.
pub fn write(target: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(target, |mut f| f.write_all(bytes))
}

/// [`write()`] for content produced piecewise: `fill` writes the temporary file.
pub fn write_with(target: &Path, fill: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
    let pending = Pending::new(target)?;
    fill(pending.file()).map_err(|e| named("writing", pending.path(), e))?;
    pending.commit()
}

/// The temporary name [`Pending::new`] uses for `target`: `.<name>.tmp` beside it.
pub fn temp_path(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(".tmp");
    target.with_file_name(name)
}

/// A new file beside its target, not yet in place; removed again if dropped before
/// [`Pending::commit`] or [`Pending::rename_unsynced`].
#[derive(Debug)]
pub struct Pending {
    file: File,
    tmp: PathBuf,
    target: PathBuf,
    placed: bool,
}

impl Pending {
    /// Creates [`temp_path`]`(target)`. A stale one (left by a killed run) is
    /// replaced by a new inode, never written through.
    pub fn new(target: &Path) -> io::Result<Pending> {
        let tmp = temp_path(target);
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(named("removing", &tmp, e)),
        }
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| named("creating", &tmp, e))?;
        Ok(Pending {
            file,
            tmp,
            target: target.to_path_buf(),
            placed: false,
        })
    }

    /// Creates a temporary file under a fresh random name beside `target`, for
    /// directories where any name may be taken by a file that is not ours (staging,
    /// whose files may be hard links into published snapshots).
    pub fn unique(target: &Path) -> io::Result<Pending> {
        let parent = parent_of(target);
        let (file, tmp) = tempfile::Builder::new()
            .prefix(".mirrorsync-")
            .suffix(".tmp")
            .tempfile_in(parent)
            .and_then(|t| t.keep().map_err(|e| e.error))
            .map_err(|e| named("creating a temporary file in", parent, e))?;
        Ok(Pending {
            file,
            tmp,
            target: target.to_path_buf(),
            placed: false,
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Puts the file in place durably: fsync it, rename it over the target, fsync the
    /// directory.
    pub fn commit(self) -> io::Result<()> {
        self.file
            .sync_all()
            .map_err(|e| named("syncing", &self.tmp, e))?;
        let dir = parent_of(&self.target).to_path_buf();
        self.rename_unsynced()?;
        fsync_dir(&dir)
    }

    /// Renames the file over the target and nothing more: for files a later syncfs
    /// and directory fsync make durable together (a snapshot being published).
    pub fn rename_unsynced(mut self) -> io::Result<()> {
        std::fs::rename(&self.tmp, &self.target).map_err(|e| {
            let to = format!("{} to {}", self.tmp.display(), self.target.display());
            io::Error::new(e.kind(), format!("renaming {to}: {e}"))
        })?;
        self.placed = true;
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Makes the entries of directory `dir` (a rename into it) durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| named("syncing", dir, e))
}

fn parent_of(target: &Path) -> &Path {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn named(action: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_target_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("state.json");
        std::fs::write(&target, b"old").unwrap();
        // A stale temporary file from a killed run is replaced, not written through.
        let stale = temp_path(&target);
        assert_eq!(stale, dir.path().join(".state.json.tmp"));
        std::fs::write(&stale, b"stale and longer").unwrap();
        let other = dir.path().join("other");
        std::fs::hard_link(&stale, &other).unwrap();
        write(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::read(&other).unwrap(), b"stale and longer");
        assert!(!stale.exists());
    }

    #[test]
    fn a_pending_file_dropped_unplaced_goes_and_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x");
        let p = Pending::unique(&target).unwrap();
        let tmp = p.path().to_path_buf();
        assert!(tmp.exists());
        drop(p);
        assert!(!tmp.exists());
        assert!(!target.exists());
        let missing = dir.path().join("no/such/dir/file");
        let err = write(&missing, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("no/such/dir/.file.tmp"), "{err}");
    }
}
