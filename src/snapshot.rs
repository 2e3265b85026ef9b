//! Snapshots on disk: the staging tree a run builds, and the one-rename publish.
//!
//! ```text
//! root/<name>                 -> .mirrorsync/<name>/snapshots/<id>   (what is served)
//! root/.mirrorsync/<name>/snapshots/<id>/          published, never modified
//! root/.mirrorsync/<name>/snapshots/<id>.manifest  its files, sizes and SHA256
//! root/.mirrorsync/<name>/snapshots/.staging/      the next snapshot, built here
//! root/.mirrorsync/<name>/content/                 pool and by-hash, shared ([`crate::shared`])
//! root/.mirrorsync/<name>/partial/                 downloads in progress
//! ```
//! Staging sits beside the snapshots so that the relative symlinks into the shared
//! content resolve the same before and after the rename that publishes it.
//! The served symlink is the only truth about what is published. Staging survives a
//! failed run so verified files are not fetched twice; it is published by syncing the
//! filesystem, renaming it into `snapshots/`, then renaming a new symlink over the
//! served one, and syncing the directories whose entries changed.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::manifest::{Manifest, ManifestError};
use crate::relpath::RelPath;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} exists and is not a symlink made by mirrorsync; move it away (mirrorsync serves each mirror through a symlink it swaps atomically)"
    )]
    NotOurs { path: PathBuf },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Shared(#[from] crate::shared::SharedError),
    /// From [`crate::atomic`], whose errors already name the step and the path.
    #[error(transparent)]
    Atomic(io::Error),
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Where one mirror's trees live.
#[derive(Debug, Clone)]
pub struct MirrorDirs {
    pub root: PathBuf,
    pub name: String,
    /// `root/<name>`: the served symlink.
    pub served: PathBuf,
    /// `root/.mirrorsync/<name>`.
    pub base: PathBuf,
    pub snapshots: PathBuf,
    pub staging: PathBuf,
    pub partial: PathBuf,
    /// Files shared by the snapshots ([`crate::shared`]).
    pub content: PathBuf,
    /// Replacements of shared files, held until the publish.
    pub held: PathBuf,
    /// The held files being moved into the content by a publish under way.
    pub replacing: PathBuf,
}

/// A published snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub dir: PathBuf,
    /// The manifest's files held in memory (all, or all but the streamed ones).
    pub manifest: Manifest,
    /// The whole manifest on disk, sorted by path.
    pub manifest_path: PathBuf,
}

impl MirrorDirs {
    pub fn new(root: &Path, name: &str) -> MirrorDirs {
        let base = root.join(".mirrorsync").join(name);
        MirrorDirs {
            root: root.to_path_buf(),
            name: name.to_string(),
            served: root.join(name),
            snapshots: base.join("snapshots"),
            staging: base.join("snapshots").join(".staging"),
            partial: base.join("partial"),
            content: base.join("content"),
            held: base.join("held"),
            replacing: base.join("replacing"),
            base,
        }
    }

    pub fn create(&self) -> Result<(), SnapshotError> {
        // The previous layout staged in `<base>/staging`, a tree of hard links into
        // the published snapshot: nothing in it is needed any more.
        remove_tree(&self.base.join("staging"))?;
        // Replacements a failed run held were checked against what upstream said
        // then; this run decides afresh (and must never move a stale one in).
        remove_tree(&self.held)?;
        // What a killed run was sorting or planning with.
        if let Ok(entries) = std::fs::read_dir(&self.base) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(crate::merge::SPILL_PREFIX)
                {
                    let _ = std::fs::remove_dir_all(e.path())
                        .or_else(|_| std::fs::remove_file(e.path()));
                }
            }
        }
        for d in [&self.snapshots, &self.staging, &self.partial, &self.content] {
            std::fs::create_dir_all(d).map_err(io_err("creating", d))?;
        }
        Ok(())
    }

    pub fn manifest_path(&self, id: &str) -> PathBuf {
        self.snapshots.join(format!("{id}.manifest"))
    }

    /// The id of the published snapshot, from the served symlink; None before the
    /// first publish.
    pub fn current_id(&self) -> Result<Option<String>, SnapshotError> {
        let target = match std::fs::read_link(&self.served) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                return Err(SnapshotError::NotOurs {
                    path: self.served.clone(),
                });
            }
            Err(e) => return Err(io_err("reading the symlink", &self.served)(e)),
        };
        let expected_parent = Path::new(".mirrorsync").join(&self.name).join("snapshots");
        match (target.parent(), target.file_name()) {
            (Some(parent), Some(id)) if parent == expected_parent => {
                Ok(Some(id.to_string_lossy().into_owned()))
            }
            _ => Err(SnapshotError::NotOurs {
                path: self.served.clone(),
            }),
        }
    }

    /// The published snapshot with its manifest.
    pub fn current(&self) -> Result<Option<Snapshot>, SnapshotError> {
        self.current_held(crate::shared::Rule::Nothing)
    }

    /// The published snapshot with the part of its manifest `rule` does not leave on
    /// disk (for apt: all but the pool, which runs read as a sorted stream from
    /// [`Snapshot::manifest_path`]).
    pub fn current_held(
        &self,
        rule: crate::shared::Rule,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        let Some(id) = self.current_id()? else {
            return Ok(None);
        };
        let manifest_path = self.manifest_path(&id);
        let manifest = Manifest::load_where(&manifest_path, &|p| !rule.streams(p))?;
        Ok(Some(Snapshot {
            dir: self.snapshots.join(&id),
            id,
            manifest,
            manifest_path,
        }))
    }

    /// Every snapshot id on disk, oldest first (ids sort by time).
    pub fn snapshot_ids(&self) -> Result<Vec<String>, SnapshotError> {
        let mut ids = Vec::new();
        let rd = match std::fs::read_dir(&self.snapshots) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(io_err("listing", &self.snapshots)(e)),
        };
        for entry in rd {
            let entry = entry.map_err(io_err("listing", &self.snapshots))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !name.starts_with('.') {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// A fresh id: the UTC time, made unique against what is on disk.
    pub fn new_id(&self, now: jiff::Timestamp) -> String {
        let base = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let mut id = base.clone();
        let mut n = 1;
        while self.snapshots.join(&id).exists() || self.manifest_path(&id).exists() {
            n += 1;
            id = format!("{base}-{n:03}");
        }
        id
    }
}

/// Hard-links `from` to `to`, replacing whatever `to` was. Parent dirs are created.
pub fn link_file(from: &Path, to: &Path) -> Result<(), SnapshotError> {
    if let (Ok(a), Ok(b)) = (std::fs::metadata(from), std::fs::symlink_metadata(to))
        && a.dev() == b.dev()
        && a.ino() == b.ino()
    {
        return Ok(());
    }
    ensure_parent(to)?;
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        // Replaced by a rename, never removed first: `to` may be in the shared content
        // a published snapshot serves, where a moment without the file is a 404.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // A fresh name (never one upstream may list beside it), linked with
            // O_EXCL semantics: link(2) fails rather than replace.
            let tmp = unique_beside(to);
            std::fs::hard_link(from, &tmp).map_err(io_err("hard-linking", &tmp))?;
            std::fs::rename(&tmp, to).map_err(io_err("renaming into place", to))
        }
        Err(e) => Err(io_err("hard-linking", to)(e)),
    }
}

/// A name beside `to` that nothing else uses: `.<name>.<random>.mirrorsync-tmp`.
fn unique_beside(to: &Path) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut name = std::ffi::OsString::from(".");
    name.push(to.file_name().unwrap_or_default());
    name.push(format!(".{:016x}.mirrorsync-tmp", h.finish()));
    to.with_file_name(name)
}

/// Moves a verified download into place, read-only so nobody edits a file that
/// published snapshots share by hard link.
pub fn install_file(tmp: &Path, to: &Path) -> Result<(), SnapshotError> {
    let file = std::fs::File::open(tmp).map_err(io_err("opening", tmp))?;
    install_open_file(file, tmp, to)
}

/// [`install_file`] for a download still open: the descriptor serves for the mode
/// and the writeback, sparing a second open of the path.
pub fn install_open_file(file: std::fs::File, tmp: &Path, to: &Path) -> Result<(), SnapshotError> {
    use std::os::unix::fs::PermissionsExt;
    start_writeback(&file);
    file.set_permissions(std::fs::Permissions::from_mode(0o444))
        .map_err(io_err("setting permissions of", tmp))?;
    drop(file);
    match std::fs::rename(tmp, to) {
        Ok(()) => Ok(()),
        // Most files share their directory with another (a package's other
        // architectures), so the directory is made only when the rename says it is
        // missing: one system call per file, not three.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ensure_parent(to)?;
            std::fs::rename(tmp, to).map_err(io_err("renaming into staging", to))
        }
        Err(e) => Err(io_err("renaming into staging", to)(e)),
    }
}

/// Writes a small file generated by the run (Release, trace) into staging.
pub fn write_file(
    to: &Path,
    bytes: &[u8],
    mtime: Option<std::time::SystemTime>,
) -> Result<(), SnapshotError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    ensure_parent(to)?;
    // A fresh name created with O_EXCL: never an existing file, which in staging
    // may be a hard link into a published snapshot.
    let tmp = crate::atomic::Pending::unique(to).map_err(SnapshotError::Atomic)?;
    tmp.file()
        .write_all(bytes)
        .map_err(io_err("writing", tmp.path()))?;
    if let Some(t) = mtime {
        tmp.file()
            .set_modified(t)
            .map_err(io_err("setting the mtime of", to))?;
    }
    tmp.file()
        .set_permissions(std::fs::Permissions::from_mode(0o444))
        .map_err(io_err("setting permissions of", to))?;
    // rename(2) replaces `to` (even a hard link into a published snapshot) with the
    // new inode; the old one is untouched. Publishing's syncfs makes it durable.
    tmp.rename_unsynced().map_err(SnapshotError::Atomic)?;
    Ok(())
}

fn ensure_parent(p: &Path) -> Result<(), SnapshotError> {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    }
    Ok(())
}

/// A failed step of a walk of `staging`, naming the path.
fn walk_error(staging: &Path, e: walkdir::Error) -> SnapshotError {
    let path = e
        .path()
        .map_or_else(|| staging.to_path_buf(), Path::to_path_buf);
    io_err("walking", &path)(io::Error::other(e.to_string()))
}

/// Removes from staging every file the next snapshot should not hold (left over from
/// a failed run or linked from an older tree), and empty directories.
pub fn clean_staging(staging: &Path, keep: &dyn Fn(&str) -> bool) -> Result<u64, SnapshotError> {
    let mut removed = 0;
    // The directories above the current entry, each with whether anything stays in
    // it: only those left empty are removed, as the walk leaves them, instead of an
    // rmdir tried on every directory of the tree (and a list of them all held).
    let mut open: Vec<(PathBuf, bool)> = Vec::new();
    let close = |open: &mut Vec<(PathBuf, bool)>| {
        if let Some((dir, holds)) = open.pop() {
            // An rmdir that fails (something the walk did not show) keeps it.
            let stays = holds || std::fs::remove_dir(&dir).is_err();
            if stays && let Some(parent) = open.last_mut() {
                parent.1 = true;
            }
        }
    };
    for entry in walkdir::WalkDir::new(staging).min_depth(1) {
        let entry = entry.map_err(|e| walk_error(staging, e))?;
        // Depth-first: the directories deeper than this entry's parent are done.
        while open.len() >= entry.depth() {
            close(&mut open);
        }
        if entry.file_type().is_dir() {
            open.push((entry.path().to_path_buf(), false));
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(staging)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The symlinks into the shared content stay; anything else is judged.
        let ours = entry.path_is_symlink() && crate::shared::is_our_link(staging, &rel);
        if ours || keep(&rel) {
            if let Some(parent) = open.last_mut() {
                parent.1 = true;
            }
        } else {
            std::fs::remove_file(entry.path()).map_err(io_err("removing", entry.path()))?;
            removed += 1;
        }
    }
    while !open.is_empty() {
        close(&mut open);
    }
    Ok(removed)
}

/// Makes staging the published snapshot `id`, with `manifest`, in one rename of the
/// served symlink. Everything is on disk before the rename, and the rename is on disk
/// before this returns: a power cut at any point leaves one of the two trees served.
pub fn publish(dirs: &MirrorDirs, id: &str, manifest: &Manifest) -> Result<(), SnapshotError> {
    let manifest_file = new_manifest(dirs, id)?;
    manifest.write_into(&manifest_file)?;
    publish_written(dirs, id, manifest_file)
}

/// The file snapshot `id`'s manifest is written into before [`publish_written`]:
/// `.<id>.manifest.tmp` until the snapshot is in place (prune sweeps one a killed run
/// left).
pub fn new_manifest(dirs: &MirrorDirs, id: &str) -> Result<crate::atomic::Pending, SnapshotError> {
    let manifest_path = dirs.manifest_path(id);
    let pending =
        crate::atomic::Pending::new(&manifest_path).map_err(|source| ManifestError::Io {
            path: crate::atomic::temp_path(&manifest_path),
            source,
        })?;
    Ok(pending)
}

/// [`publish`] with the manifest already written (and fsynced) into `manifest_file`.
pub fn publish_written(
    dirs: &MirrorDirs,
    id: &str,
    manifest_file: crate::atomic::Pending,
) -> Result<(), SnapshotError> {
    // One syncfs flushes every file and directory written into staging, far cheaper
    // on a slow disk than an fsync per file.
    sync_filesystem(&dirs.staging)?;
    let snap = dirs.snapshots.join(id);
    std::fs::rename(&dirs.staging, &snap).map_err(io_err("renaming staging to", &snap))?;
    let manifest_tmp = manifest_file.path().to_path_buf();
    // Both renames are made durable by the one directory fsync below.
    manifest_file
        .rename_unsynced()
        .map_err(io_err("renaming", &manifest_tmp))?;
    fsync_dir(&dirs.snapshots)?;

    let link_tmp = dirs.root.join(format!(".{}.new-link", dirs.name));
    let _ = std::fs::remove_file(&link_tmp);
    let target = Path::new(".mirrorsync")
        .join(&dirs.name)
        .join("snapshots")
        .join(id);
    std::os::unix::fs::symlink(&target, &link_tmp)
        .map_err(io_err("creating symlink", &link_tmp))?;
    if let Ok(m) = std::fs::symlink_metadata(&dirs.served)
        && !m.file_type().is_symlink()
    {
        let _ = std::fs::remove_file(&link_tmp);
        return Err(SnapshotError::NotOurs {
            path: dirs.served.clone(),
        });
    }
    std::fs::rename(&link_tmp, &dirs.served).map_err(io_err("publishing", &dirs.served))?;
    fsync_dir(&dirs.root)?;
    std::fs::create_dir_all(&dirs.staging).map_err(io_err("creating", &dirs.staging))?;
    Ok(())
}

/// Keeps the served snapshot and the newest others up to `keep` in all; removes the
/// rest with their manifests. Returns the ids removed.
pub fn prune(dirs: &MirrorDirs, keep: usize) -> Result<Vec<String>, SnapshotError> {
    let current = dirs.current_id()?;
    // A run killed inside publish leaves its manifest's temporary file behind, or a
    // snapshot without its manifest (killed between the two renames): never served.
    if let Ok(entries) = std::fs::read_dir(&dirs.snapshots) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".manifest.tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut ids = dirs.snapshot_ids()?;
    for id in ids.iter().filter(|id| Some(*id) != current.as_ref()) {
        if !dirs.manifest_path(id).is_file() {
            remove_tree(&dirs.snapshots.join(id))?;
        }
    }
    ids.retain(|id| Some(id) == current.as_ref() || dirs.manifest_path(id).is_file());
    let others: Vec<&String> = ids
        .iter()
        .filter(|id| Some(*id) != current.as_ref())
        .collect();
    let keep_others = keep.saturating_sub(usize::from(current.is_some()));
    let drop_count = others.len().saturating_sub(keep_others);
    let dropped: Vec<&String> = others.into_iter().take(drop_count).collect();
    let mut listing: Vec<PathBuf> = ids
        .iter()
        .filter(|id| !dropped.contains(id))
        .map(|id| dirs.manifest_path(id))
        .collect();
    if let Some(missing) = listing.iter().find(|m| !m.is_file()) {
        // Without every kept snapshot's list, the shared content cannot tell what is
        // still needed: keep everything rather than guess.
        tracing::warn!(manifest = %missing.display(), "a kept snapshot has no manifest; nothing pruned");
        return Ok(Vec::new());
    }
    // Oldest first; while one is collected, the ones still to go count as kept, so a
    // prune cut short never leaves a snapshot on disk with files taken from under it.
    listing.extend(dropped.iter().map(|id| dirs.manifest_path(id)));
    let mut removed = Vec::new();
    for id in dropped {
        let manifest = dirs.manifest_path(id);
        listing.retain(|m| *m != manifest);
        let gone = crate::shared::collect_garbage(&dirs.content, &manifest, &listing)?;
        tracing::debug!(snapshot = %id, files = gone, "shared files no snapshot lists removed");
        remove_tree(&dirs.snapshots.join(id))?;
        let _ = std::fs::remove_file(&manifest);
        removed.push(id.clone());
    }
    Ok(removed)
}

/// The files in staging, as paths (not through the symlinks into the shared content:
/// the files there are the content's, listed by the plan).
pub fn staged_files(staging: &Path) -> Result<std::collections::HashSet<RelPath>, SnapshotError> {
    let mut out = std::collections::HashSet::new();
    if !staging.exists() {
        return Ok(out);
    }
    for entry in walkdir::WalkDir::new(staging).min_depth(1) {
        let entry = entry.map_err(|e| walk_error(staging, e))?;
        if entry.file_type().is_dir() || entry.path_is_symlink() {
            continue;
        }
        if let Some(p) = entry
            .path()
            .strip_prefix(staging)
            .ok()
            .and_then(|p| RelPath::new(&p.to_string_lossy()).ok())
        {
            out.insert(p);
        }
    }
    Ok(out)
}

/// Refuses to start downloads that cannot fit: an upstream claiming a 10 TB file, or
/// a disk that filled up, must not end in ENOSPC halfway through with the disk full
/// for everything else on the host.
pub fn check_free_space(staging: &Path, need: u64) -> anyhow::Result<()> {
    use anyhow::Context;
    const MIN_MARGIN: u64 = 64 << 20;
    let st = rustix::fs::statvfs(staging)
        .with_context(|| format!("checking the free space of {}", staging.display()))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let margin = (need / 20).max(MIN_MARGIN);
    if need.saturating_add(margin) > free {
        anyhow::bail!(
            "not enough free space in {}: this run would download {} bytes and {} are free (keeping a margin of {} bytes)",
            staging.display(),
            need,
            free,
            margin
        );
    }
    Ok(())
}

pub fn remove_tree(dir: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", dir)(e)),
    }
}

/// Asks the kernel to start writing a finished download to disk now, without waiting,
/// so the syncfs before publishing finds little left to do and the disk works while
/// the network does. Best effort: any failure only moves the work to the syncfs.
fn start_writeback(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor, whole-file range, a flag that only
        // initiates writeback; no memory is passed to the kernel.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

pub fn sync_filesystem(path: &Path) -> Result<(), SnapshotError> {
    let f = std::fs::File::open(path).map_err(io_err("opening", path))?;
    rustix::fs::syncfs(&f).map_err(|e| io_err("syncing the filesystem of", path)(e.into()))
}

pub fn fsync_dir(path: &Path) -> Result<(), SnapshotError> {
    let f = std::fs::File::open(path).map_err(io_err("opening", path))?;
    f.sync_all().map_err(io_err("syncing", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relpath::RelPath;

    fn manifest_of(files: &[(&str, &[u8])]) -> Manifest {
        let mut m = Manifest::default();
        for (p, data) in files {
            use sha2::Digest;
            m.files.insert(
                RelPath::new(p).unwrap(),
                crate::manifest::Entry {
                    size: data.len() as u64,
                    sha256: sha2::Sha256::digest(data).into(),
                    gone_since: None,
                },
            );
        }
        m
    }

    #[test]
    fn publishing_swaps_the_served_symlink_and_prune_keeps_the_newest() {
        let root = tempfile::tempdir().unwrap();
        let dirs = MirrorDirs::new(root.path(), "debian");
        dirs.create().unwrap();
        assert_eq!(dirs.current_id().unwrap(), None);

        for (i, id) in ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"]
            .iter()
            .enumerate()
        {
            let body = format!("version {i}");
            write_file(&dirs.staging.join("dists/x/Release"), body.as_bytes(), None).unwrap();
            publish(
                &dirs,
                id,
                &manifest_of(&[("dists/x/Release", body.as_bytes())]),
            )
            .unwrap();
            assert_eq!(dirs.current_id().unwrap().as_deref(), Some(*id));
            assert_eq!(
                std::fs::read_to_string(dirs.served.join("dists/x/Release")).unwrap(),
                body
            );
        }
        let removed = prune(&dirs, 2).unwrap();
        assert_eq!(removed, vec!["20260101T000000Z".to_string()]);
        assert_eq!(
            dirs.snapshot_ids().unwrap(),
            vec!["20260102T000000Z", "20260103T000000Z"]
        );
        let current = dirs.current().unwrap().unwrap();
        assert_eq!(current.manifest.files.len(), 1);
    }

    /// The served link is ours only when it points into this mirror's snapshots: a
    /// regular file or a link an operator made elsewhere is never taken for one.
    #[test]
    fn only_a_link_into_our_snapshots_is_taken_for_the_published_one() {
        let root = tempfile::tempdir().unwrap();
        let dirs = MirrorDirs::new(root.path(), "debian");
        dirs.create().unwrap();
        assert_eq!(dirs.current_id().unwrap(), None);
        std::fs::write(&dirs.served, b"a file an operator put here").unwrap();
        assert!(matches!(
            dirs.current_id(),
            Err(SnapshotError::NotOurs { .. })
        ));
        std::fs::remove_file(&dirs.served).unwrap();
        std::os::unix::fs::symlink("/srv/elsewhere/20260101T000000Z", &dirs.served).unwrap();
        assert!(matches!(
            dirs.current_id(),
            Err(SnapshotError::NotOurs { .. })
        ));
        std::fs::remove_file(&dirs.served).unwrap();
        std::os::unix::fs::symlink(
            ".mirrorsync/debian/snapshots/20260101T000000Z",
            &dirs.served,
        )
        .unwrap();
        assert_eq!(
            dirs.current_id().unwrap().as_deref(),
            Some("20260101T000000Z")
        );
    }

    /// A link replaces what was at its place and shares the published file's inode:
    /// staging costs no copy, and the published file is never written through it.
    #[test]
    fn link_file_shares_the_inode_and_replaces_a_stale_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("published/pool/a.deb");
        write_file(&from, b"published bytes", None).unwrap();
        let to = dir.path().join("staging/pool/a.deb");
        write_file(&to, b"a stale partial copy", None).unwrap();
        link_file(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"published bytes");
        let (a, b) = (
            std::fs::metadata(&from).unwrap(),
            std::fs::metadata(&to).unwrap(),
        );
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        // Linking again is a no-op; a missing parent is made.
        link_file(&from, &to).unwrap();
        let deeper = dir.path().join("staging/by-hash/SHA256/abc");
        link_file(&from, &deeper).unwrap();
        assert_eq!(std::fs::metadata(&deeper).unwrap().ino(), a.ino());
    }

    #[test]
    fn a_real_directory_where_the_symlink_goes_is_not_overwritten() {
        let root = tempfile::tempdir().unwrap();
        let dirs = MirrorDirs::new(root.path(), "debian");
        dirs.create().unwrap();
        std::fs::create_dir_all(dirs.served.join("pool")).unwrap();
        let err = publish(&dirs, "20260101T000000Z", &Manifest::default()).unwrap_err();
        assert!(matches!(err, SnapshotError::NotOurs { .. }));
        assert!(dirs.served.join("pool").is_dir());
    }

    #[test]
    fn writing_over_a_hard_link_leaves_the_published_inode_alone() {
        let root = tempfile::tempdir().unwrap();
        let published = root.path().join("published");
        let staged = root.path().join("staging/dists/x/InRelease");
        write_file(&published, b"served", None).unwrap();
        link_file(&published, &staged).unwrap();
        write_file(&staged, b"next", None).unwrap();
        assert_eq!(std::fs::read(&published).unwrap(), b"served");
        assert_eq!(std::fs::read(&staged).unwrap(), b"next");
        let leftovers: Vec<_> = std::fs::read_dir(staged.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["InRelease"]);
    }

    /// The directories still open when the walk ends are emptied too: a staging tree
    /// must not publish a directory upstream no longer has.
    #[test]
    fn directories_emptied_at_the_end_of_the_walk_go_too() {
        let root = tempfile::tempdir().unwrap();
        let s = root.path();
        write_file(&s.join("pool/main/z/zz/drop.deb"), b"d", None).unwrap();
        let removed = clean_staging(s, &|_| false).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(std::fs::read_dir(s).unwrap().count(), 0, "pool/ is left");
    }

    #[test]
    fn cleaning_staging_removes_what_is_not_wanted() {
        let root = tempfile::tempdir().unwrap();
        let s = root.path();
        write_file(&s.join("pool/a/keep.deb"), b"k", None).unwrap();
        write_file(&s.join("pool/b/drop.deb"), b"d", None).unwrap();
        write_file(&s.join("pool/c/d/drop.deb"), b"d", None).unwrap();
        write_file(&s.join("pool/c/e/keep.deb"), b"k", None).unwrap();
        std::fs::create_dir_all(s.join("pool/empty/left/by/a/failed/run")).unwrap();
        let removed = clean_staging(s, &|p| p.ends_with("keep.deb")).unwrap();
        assert_eq!(removed, 2);
        assert!(s.join("pool/a/keep.deb").exists());
        assert!(s.join("pool/c/e/keep.deb").exists());
        assert!(!s.join("pool/b").exists());
        assert!(!s.join("pool/c/d").exists());
        assert!(!s.join("pool/empty").exists());
    }
}
