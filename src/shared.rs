//! Content shared by the snapshots: files whose bytes never change under their name
//! (apt pool files, by-hash objects, dated image release directories) live once, in `.mirrorsync/<name>/content/`, and
//! each snapshot holds a relative symlink at the top of each such directory (`pool`,
//! `dists/<suite>/main/binary-arm64/by-hash`) instead of a hard link per file. A run
//! then writes what changed, not what it keeps; the snapshot itself carries only what
//! really changes between versions (indices, Release files, traces).
//!
//! New files land in the content before the switch (a snapshot still served sees them
//! as files its indices do not name), and a file leaves the content only when the
//! last snapshot whose manifest lists it is pruned, which is after `grace`: so every
//! kept snapshot stays whole for rollback, and a client holding the previous indices
//! never gets a 404.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::manifest::{ManifestError, Reader};
use crate::relpath::RelPath;

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not the symlink into the shared content that belongs there; remove it (a leftover of an interrupted run of an older version, or not mirrorsync's)"
    )]
    NotALink { path: PathBuf },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Merge(#[from] crate::merge::MergeError),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SharedError + 'a {
    move |source| SharedError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Which directories of a kind's tree hold content that never changes under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Nothing shared: every snapshot is a tree of hard links (what `verify`, S3 and
    /// status read: the whole manifest).
    Nothing,
    /// apt: `pool/` and every `by-hash/` directory.
    Apt,
    /// Image trees: each dated release directory (`raspios_lite_armhf-2024-11-19/`),
    /// whose image, checksums and signature never change once published.
    Images,
}

impl Rule {
    pub fn for_kind(kind: &crate::config::MirrorKind) -> Rule {
        match kind {
            crate::config::MirrorKind::Apt(_) => Rule::Apt,
            crate::config::MirrorKind::Images(_) => Rule::Images,
        }
    }

    /// The shared directory `path` lies in (`pool`, `dists/s/main/binary-arm64/by-hash`),
    /// if any.
    pub fn root_of(self, path: &str) -> Option<&str> {
        match self {
            Rule::Nothing => None,
            Rule::Apt => {
                if path.starts_with("pool/") {
                    return Some("pool");
                }
                let at = path.find("/by-hash/")?;
                Some(&path[..at + "/by-hash".len()])
            }
            Rule::Images => {
                // The first dated directory above the file.
                let dir = &path[..path.rfind('/')?];
                let mut end = 0;
                for part in dir.split('/') {
                    end += part.len();
                    if dated(part).is_some() {
                        return Some(&path[..end]);
                    }
                    end += 1;
                }
                None
            }
        }
    }

    /// Whether a run reads this path's manifest line from disk as it needs it rather
    /// than holding it: the pool, the part of the tree that grows with the archive.
    pub fn streams(self, path: &str) -> bool {
        match self {
            Rule::Nothing | Rule::Images => false,
            Rule::Apt => path.starts_with("pool/"),
        }
    }
}

/// (year, month, day), ordered as dates are.
pub type Date = (u16, u8, u8);

/// `name-YYYY-MM-DD` -> its date: a release directory of an image tree.
pub fn dated(component: &str) -> Option<Date> {
    let date = component.get(component.len().checked_sub(10)?..)?;
    let before = component.get(..component.len() - 10)?;
    if !before.ends_with('-') || before.len() < 2 {
        return None;
    }
    let b = date.as_bytes();
    if !date.is_ascii() || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = date[..4].parse().ok()?;
    let month: u8 = date[5..7].parse().ok()?;
    let day: u8 = date[8..10].parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((year, month, day))
}

/// The symlink a snapshot holds at `root` (a path inside it): relative, so a root
/// copied or mounted elsewhere still serves. A snapshot is
/// `.mirrorsync/<name>/snapshots/<id>/`, the content `.mirrorsync/<name>/content/`.
pub fn link_target(root: &str) -> PathBuf {
    let depth = root.split('/').count() - 1;
    let mut target = PathBuf::new();
    for _ in 0..depth + 2 {
        target.push("..");
    }
    target.join("content").join(root)
}

/// Whether the symlink at `rel` in a snapshot is one this module made.
pub fn is_our_link(snapshot: &Path, rel: &str) -> bool {
    std::fs::read_link(snapshot.join(rel)).is_ok_and(|t| t == link_target(rel))
}

/// Whether `dir` (a published snapshot) reaches `root` through the shared content,
/// rather than holding its own tree (a snapshot of the previous layout).
pub fn shares(dir: &Path, root: &str) -> bool {
    std::fs::symlink_metadata(dir.join(root)).is_ok_and(|m| m.file_type().is_symlink())
}

/// The shared content of one mirror, as a staging tree uses it: each shared
/// directory gets its symlink before the first file goes there, and a file that
/// would replace one already in the content (served by the published snapshot) is
/// held aside until the run has passed its last checks ([`Shared::dest`]).
#[derive(Debug)]
pub struct Shared {
    pub rule: Rule,
    pub content: PathBuf,
    staging: PathBuf,
    held: PathBuf,
    made: Mutex<HashSet<String>>,
}

impl Shared {
    /// `held` is where replacements wait for the publish (on the same filesystem).
    pub fn new(rule: Rule, content: &Path, staging: &Path, held: &Path) -> Shared {
        Shared {
            rule,
            content: content.to_path_buf(),
            staging: staging.to_path_buf(),
            held: held.to_path_buf(),
            made: Mutex::new(HashSet::new()),
        }
    }

    /// Where a file for `path` goes: into staging (through the symlink, so into the
    /// content when it is a new shared file), or, when it would replace a file the
    /// content already has, into the held area: the served snapshots keep reading
    /// the old bytes until the run publishes.
    pub fn dest(&self, path: &RelPath) -> PathBuf {
        if self.rule.root_of(path.as_str()).is_some()
            && std::fs::symlink_metadata(path.under(&self.content)).is_ok()
        {
            return path.under(&self.held);
        }
        path.under(&self.staging)
    }

    /// Whether `path` lives in the shared content, which the published snapshot
    /// `published` already reaches: nothing to link for it.
    pub fn reached_by(&self, published: &Path, path: &RelPath) -> bool {
        self.rule
            .root_of(path.as_str())
            .is_some_and(|root| shares(published, root))
    }

    /// Where the run reads the file it placed for `path` (held, or in staging).
    pub fn read_path(&self, path: &RelPath) -> PathBuf {
        let held = path.under(&self.held);
        if std::fs::symlink_metadata(&held).is_ok() {
            return held;
        }
        path.under(&self.staging)
    }

    /// Makes sure staging reaches `path`'s shared directory, if it has one, through
    /// the symlink (the content directory made first, so the link never dangles).
    pub fn prepare(&self, path: &RelPath) -> Result<(), SharedError> {
        let Some(root) = self.rule.root_of(path.as_str()) else {
            return Ok(());
        };
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if made.contains(root) {
            return Ok(());
        }
        let dir = self.content.join(root);
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let link = self.staging.join(root);
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() && is_our_link(&self.staging, root) => {}
            Ok(_) => return Err(SharedError::NotALink { path: link }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
                }
                std::os::unix::fs::symlink(link_target(root), &link)
                    .map_err(io_err("creating the symlink", &link))?;
            }
            Err(e) => return Err(io_err("reading", &link)(e)),
        }
        made.insert(root.to_string());
        Ok(())
    }
}

/// Moves the held replacements `moved` (those the next manifest lists) into the
/// content, each with one rename, after recording them in `journal`: if the run dies
/// before the switch, the next run fetches them again rather than trusting the
/// content against the published manifest. Then drops the held area with the rest.
pub fn apply_held(
    held: &Path,
    content: &Path,
    journal: &Path,
    moved: &[RelPath],
) -> Result<(), SharedError> {
    if !moved.is_empty() {
        // Added to what an earlier run that died here left: those stay suspect until a
        // publish lists none of them unchecked.
        let mut all = suspects(journal);
        all.extend(moved.iter().cloned());
        let mut all: Vec<RelPath> = all.into_iter().collect();
        all.sort();
        let mut text = String::new();
        for p in &all {
            text.push_str(p.as_str());
            text.push('\n');
        }
        crate::atomic::write(journal, text.as_bytes()).map_err(io_err("recording", journal))?;
        for p in moved {
            let to = p.under(content);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            }
            std::fs::rename(p.under(held), &to).map_err(io_err("moving into the content", &to))?;
        }
    }
    match std::fs::remove_dir_all(held) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", held)(e)),
    }
}

/// The paths a run that died between moving replacements into the content and
/// publishing left in `journal`: their bytes in the content may not be what the
/// published manifest says.
pub fn suspects(journal: &Path) -> HashSet<RelPath> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| RelPath::new(l).ok())
        .collect()
}

/// Removes from `content` the files the pruned snapshot's manifest lists that no
/// kept snapshot's manifest lists, in one merge of the sorted manifests: memory is a
/// line per manifest, whatever the tree's size. Run before the pruned snapshot's own
/// files go, so a prune cut short is done again by the next one. Returns the count.
pub fn collect_garbage(
    content: &Path,
    pruned: &Path,
    kept: &[PathBuf],
) -> Result<u64, SharedError> {
    let candidates = Reader::open(pruned)?.map(|r| r.map(|(p, _)| p).map_err(Into::into));
    remove_unlisted(content, candidates, kept)
}

/// Removes from `content` each of `candidates` (sorted by path) that none of the
/// sorted manifests `kept` lists. Returns the count.
fn remove_unlisted(
    content: &Path,
    candidates: impl Iterator<Item = Result<RelPath, SharedError>>,
    kept: &[PathBuf],
) -> Result<u64, SharedError> {
    let mut others: Vec<std::iter::Peekable<Reader>> = Vec::new();
    for k in kept {
        others.push(Reader::open(k)?.peekable());
    }
    let mut removed = 0;
    for path in candidates {
        let path = path?;
        if still_listed(&mut others, &path)? {
            continue;
        }
        let file = path.under(content);
        match std::fs::remove_file(&file) {
            Ok(()) => {
                removed += 1;
                remove_empty_parents(content, &file);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &file)(e)),
        }
    }
    Ok(removed)
}

/// Removes from `content` every file no kept snapshot's manifest lists: what runs
/// that failed after fetching left there and no later run wanted (upstream dropped
/// it meanwhile). It walks the whole content, so it runs with `sync --verify-all`,
/// which reads the whole tree anyway; the walk is sorted through files in `work`, so
/// memory stays a chunk of paths. Returns the count.
pub fn sweep_unlisted(content: &Path, kept: &[PathBuf], work: &Path) -> Result<u64, SharedError> {
    let mut spill = crate::merge::Spill::new(work, 32_768)?;
    for entry in walkdir::WalkDir::new(content).min_depth(1) {
        let entry = entry.map_err(|e| SharedError::Io {
            action: "walking",
            path: e.path().unwrap_or(content).to_path_buf(),
            source: io::Error::other(e.to_string()),
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(content).ok();
        // A name no manifest could hold is left for the operator to judge.
        if let Some(p) = rel.and_then(|r| RelPath::new(&r.to_string_lossy()).ok()) {
            let none = crate::manifest::Entry {
                size: 0,
                sha256: [0; 32],
                gone_since: None,
            };
            spill.push(p, none)?;
        }
    }
    let candidates = spill
        .finish()?
        .map(|r| r.map(|(p, _)| p).map_err(Into::into));
    remove_unlisted(content, candidates, kept)
}

/// Whether any of the sorted manifests lists `path`; each is advanced past what
/// sorts before it.
fn still_listed(
    others: &mut [std::iter::Peekable<Reader>],
    path: &RelPath,
) -> Result<bool, SharedError> {
    let mut listed = false;
    for reader in others.iter_mut() {
        loop {
            match reader.peek() {
                Some(Ok((p, _))) if p < path => {
                    reader.next();
                }
                Some(Ok((p, _))) => {
                    listed |= p == path;
                    break;
                }
                Some(Err(_)) => {
                    if let Some(Err(e)) = reader.next() {
                        return Err(e.into());
                    }
                }
                None => break,
            }
        }
    }
    Ok(listed)
}

/// Removes the directories `file` leaves empty, up to `content` itself (a pool
/// package directory whose last version went).
fn remove_empty_parents(content: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == content || !d.starts_with(content) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, Manifest};

    #[test]
    fn apt_shares_the_pool_and_every_by_hash_directory() {
        let r = Rule::Apt;
        assert_eq!(r.root_of("pool/main/h/hello/hello_1.deb"), Some("pool"));
        assert_eq!(
            r.root_of("dists/s/main/binary-arm64/by-hash/SHA256/00ff"),
            Some("dists/s/main/binary-arm64/by-hash")
        );
        assert_eq!(r.root_of("dists/s/main/binary-arm64/Packages.xz"), None);
        assert_eq!(r.root_of("pool"), None);
        assert_eq!(r.root_of("project/trace/master"), None);
        assert_eq!(Rule::Nothing.root_of("pool/a.deb"), None);
    }

    #[test]
    fn only_real_dates_make_a_directory_dated() {
        assert_eq!(dated("raspios-2024-11-19"), Some((2024, 11, 19)));
        assert_eq!(dated("2024-11-19"), None);
        assert_eq!(dated("x-2024-13-01"), None);
        assert_eq!(dated("x-2024_11_19"), None);
        assert_eq!(dated("x-ñ-2024-11-19"), Some((2024, 11, 19)));
        assert_eq!(dated("ñ"), None);
    }

    #[test]
    fn an_image_tree_shares_each_dated_release_directory() {
        let r = Rule::Images;
        let d = "raspios_lite_armhf/images/raspios_lite_armhf-2024-11-19";
        assert_eq!(r.root_of(&format!("{d}/2024-11-19-lite.img.xz")), Some(d));
        assert_eq!(r.root_of(&format!("{d}/sub/x.sha256")), Some(d));
        // A dated file name is not a directory; undated trees share nothing.
        assert_eq!(r.root_of("images/raspios-2024-11-19"), None);
        assert_eq!(r.root_of("os_list_imagingutility_v4.json"), None);
        assert_eq!(r.root_of("imager/imager_1.9.exe"), None);
        assert_eq!(r.root_of("x-2024-13-01/a"), None);
    }

    #[test]
    fn a_link_climbs_out_of_its_snapshot_into_the_content() {
        assert_eq!(link_target("pool"), Path::new("../../content/pool"));
        let deep = "dists/s/main/binary-arm64/by-hash";
        let target = link_target(deep);
        // From .mirrorsync/<name>/snapshots/<id>/dists/s/main/binary-arm64/.
        let from = Path::new("/r/.mirrorsync/m/snapshots/id/dists/s/main/binary-arm64");
        let mut resolved = from.to_path_buf();
        for c in target.components() {
            match c {
                std::path::Component::ParentDir => {
                    resolved.pop();
                }
                other => resolved.push(other),
            }
        }
        assert_eq!(resolved, Path::new("/r/.mirrorsync/m/content").join(deep));
    }

    fn manifest(dir: &Path, name: &str, paths: &[&str]) -> PathBuf {
        let mut m = Manifest::default();
        for p in paths {
            m.files.insert(
                RelPath::new(p).unwrap(),
                Entry {
                    size: 1,
                    sha256: [1; 32],
                    gone_since: None,
                },
            );
        }
        let path = dir.join(name);
        m.write(&path).unwrap();
        path
    }

    #[test]
    fn a_pruned_snapshot_takes_only_what_no_kept_snapshot_lists() {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        for p in [
            "pool/a/a.deb",
            "pool/b/b.deb",
            "pool/c/c.deb",
            "pool/d/d.deb",
        ] {
            let f = content.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, p).unwrap();
        }
        let pruned = manifest(
            dir.path(),
            "old",
            &[
                "pool/a/a.deb",
                "pool/b/b.deb",
                "pool/c/c.deb",
                "dists/s/Release",
            ],
        );
        let kept = [
            manifest(dir.path(), "mid", &["pool/b/b.deb"]),
            manifest(dir.path(), "new", &["pool/c/c.deb", "pool/d/d.deb"]),
        ];
        assert_eq!(collect_garbage(&content, &pruned, &kept).unwrap(), 1);
        assert!(
            !content.join("pool/a").exists(),
            "its empty directory goes too"
        );
        for p in ["pool/b/b.deb", "pool/c/c.deb", "pool/d/d.deb"] {
            assert!(
                content.join(p).is_file(),
                "{p} is listed by a kept snapshot"
            );
        }
        // Done again (a prune cut short), nothing more goes.
        assert_eq!(collect_garbage(&content, &pruned, &kept).unwrap(), 0);

        // A file a failed run left, which no snapshot lists, goes with a full sweep;
        // what the kept snapshots list stays.
        std::fs::create_dir_all(content.join("pool/e")).unwrap();
        std::fs::write(content.join("pool/e/e.deb"), b"left by a failed run").unwrap();
        assert_eq!(sweep_unlisted(&content, &kept, dir.path()).unwrap(), 1);
        assert!(!content.join("pool/e").exists());
        for p in ["pool/b/b.deb", "pool/c/c.deb", "pool/d/d.deb"] {
            assert!(
                content.join(p).is_file(),
                "{p} is listed by a kept snapshot"
            );
        }
    }
}
