//! A path inside a mirror tree, checked once where it enters from upstream.
//!
//! Every path an upstream hands us (`Filename:`, `Directory:`, a Release entry, a listing
//! link) is untrusted. [`RelPath::new`] refuses anything that could leave the tree or
//! confuse the tools around it; the rest of the crate joins a `RelPath` under a root
//! without further checks.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("absolute path")]
    Absolute,
    #[error("'..' or '.' component")]
    Traversal,
    #[error("empty component (\"//\") or trailing '/'")]
    EmptyComponent,
    #[error("NUL, control character or backslash")]
    BadCharacter,
    #[error("longer than {max} bytes")]
    TooLong { max: usize },
    /// Would fail deep in staging with ENAMETOOLONG; said here, with the path.
    #[error("a component longer than {max} bytes (the file system's limit)")]
    ComponentTooLong { max: usize },
    /// Where mirrorsync keeps its own records (the bucket record is
    /// `<prefix>/.mirrorsync/bucket`): upstream may not write there.
    #[error("first component \".mirrorsync\" is reserved for mirrorsync's own records")]
    Reserved,
}

/// The longest file name Linux file systems (ext4, btrfs, xfs, vfat) take.
const MAX_COMPONENT: usize = 255;

/// The longest path we accept; Linux's PATH_MAX less room for the root.
const MAX_LEN: usize = 3072;

/// A relative, normalised path with '/' separators and no way out of its root.
///
/// Shared, not copied: a mirror of Debian holds ~65,000 of these, and the plan, the
/// staging outcomes and the manifest all refer to the same ones (a clone is a
/// reference count, which keeps a Raspberry Pi's memory for the page cache).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(Arc<str>);

impl RelPath {
    pub fn new(s: &str) -> Result<RelPath, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(PathError::TooLong { max: MAX_LEN });
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute);
        }
        // Backslashes would be separators on some servers and clients; control
        // characters break the manifest and logs.
        if s.chars().any(|c| c.is_control() || c == '\\') {
            return Err(PathError::BadCharacter);
        }
        // A server may decode "%2e%2e" or "%2f" before resolving the path we ask for.
        let lower = s.to_ascii_lowercase();
        if ["%2e", "%2f", "%5c", "%00"]
            .iter()
            .any(|enc| lower.contains(enc))
        {
            return Err(PathError::Traversal);
        }
        for part in s.split('/') {
            match part {
                "" => return Err(PathError::EmptyComponent),
                "." | ".." => return Err(PathError::Traversal),
                p if p.len() > MAX_COMPONENT => {
                    return Err(PathError::ComponentTooLong { max: MAX_COMPONENT });
                }
                _ => {}
            }
        }
        if s.split('/').next() == Some(".mirrorsync") {
            return Err(PathError::Reserved);
        }
        Ok(RelPath(Arc::from(s)))
    }

    /// Joins `self` under `dir`, which may itself be a RelPath string.
    pub fn join(&self, more: &str) -> Result<RelPath, PathError> {
        RelPath::new(&format!("{}/{}", self.0, more))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path under `root` on disk.
    pub fn under(&self, root: &Path) -> PathBuf {
        root.join(&*self.0)
    }

    /// The directory part, if any.
    pub fn parent(&self) -> Option<&str> {
        self.0.rsplit_once('/').map(|(d, _)| d)
    }

    pub fn file_name(&self) -> &str {
        self.0.rsplit_once('/').map_or(&*self.0, |(_, f)| f)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_pool_paths_pass() {
        let p = RelPath::new("pool/main/h/hello/hello_2.10-3_arm64.deb").unwrap();
        assert_eq!(p.parent(), Some("pool/main/h/hello"));
        assert_eq!(p.file_name(), "hello_2.10-3_arm64.deb");
    }

    #[test]
    fn ways_out_of_the_tree_are_refused() {
        for (bad, why) in [
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("pool/../../etc/passwd", PathError::Traversal),
            ("..", PathError::Traversal),
            ("pool/./x", PathError::Traversal),
            ("pool//x", PathError::EmptyComponent),
            ("pool/x/", PathError::EmptyComponent),
            ("pool/x\0y", PathError::BadCharacter),
            ("pool\\..\\x", PathError::BadCharacter),
            ("pool/x\ny", PathError::BadCharacter),
            ("pool/%2E%2e/%2e%2e/etc", PathError::Traversal),
            ("pool/a%2fb", PathError::Traversal),
        ] {
            assert_eq!(RelPath::new(bad), Err(why), "{bad:?}");
        }
        assert!(matches!(
            RelPath::new(&"a/".repeat(2000)),
            Err(PathError::TooLong { .. })
        ));
    }

    #[test]
    fn a_path_is_placed_under_its_root_and_nowhere_else() {
        let p = RelPath::new("pool/main/h/hello/hello_2.10-3_arm64.deb").unwrap();
        let root = Path::new("/srv/mirror/.mirrorsync/debian/staging");
        let placed = p.under(root);
        assert_eq!(
            placed,
            Path::new(
                "/srv/mirror/.mirrorsync/debian/staging/pool/main/h/hello/hello_2.10-3_arm64.deb"
            )
        );
        assert!(placed.starts_with(root));
        assert_eq!(placed.strip_prefix(root).unwrap(), Path::new(p.as_str()));
    }

    #[test]
    fn the_records_directory_is_not_upstreams_to_write() {
        for bad in [
            ".mirrorsync",
            ".mirrorsync/bucket",
            ".mirrorsync/x/state.json",
        ] {
            assert_eq!(RelPath::new(bad), Err(PathError::Reserved), "{bad:?}");
        }
        // Only the first component is reserved, and only that exact name.
        for good in [
            "pool/.mirrorsync",
            ".mirrorsync-old/x",
            "x/.mirrorsync/bucket",
        ] {
            RelPath::new(good).unwrap();
        }
        assert_eq!(
            RelPath::new("pool/.mirrorsync")
                .unwrap()
                .join(".mirrorsync")
                .unwrap()
                .as_str(),
            "pool/.mirrorsync/.mirrorsync"
        );
    }

    #[test]
    fn a_file_name_longer_than_the_file_system_takes_is_refused_up_front() {
        let longest = "x".repeat(255);
        RelPath::new(&format!("pool/{longest}")).unwrap();
        let err = RelPath::new(&format!("pool/{longest}y/file.deb")).unwrap_err();
        assert_eq!(err, PathError::ComponentTooLong { max: 255 });
        assert_eq!(
            err.to_string(),
            "a component longer than 255 bytes (the file system's limit)"
        );
    }
}
