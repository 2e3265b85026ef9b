//! Where a configured suite lives below the upstream URL, as apt's sources.list
//! reads it: a suite name is `dists/<name>/`; a suite ending in '/' is a flat
//! repository at that path (`./` is the upstream URL itself, `subdir/`,
//! `dists/stable/`), with its Release and indices side by side and no components.
//! Pool paths (`Filename:`, `Directory:`) are relative to the upstream URL either way,
//! as apt fetches them.

use crate::relpath::{PathError, RelPath};

/// One configured suite's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteDir {
    name: String,
    /// "" for `./`, else the directory with a trailing '/'.
    prefix: String,
}

/// The names apt gives a suite's signed metadata.
pub const SIGNED_FILES: [&str; 3] = ["InRelease", "Release", "Release.gpg"];

impl SuiteDir {
    /// The directory of the configured suite `name` (already validated by the config).
    pub fn of(name: &str) -> SuiteDir {
        let prefix = match name.strip_suffix('/') {
            Some(flat) => {
                let path = flat.strip_prefix("./").unwrap_or(flat);
                if path.is_empty() || path == "." {
                    String::new()
                } else {
                    format!("{path}/")
                }
            }
            None => format!("dists/{name}/"),
        };
        SuiteDir {
            name: name.to_string(),
            prefix,
        }
    }

    /// As configured, for messages and state keys.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A flat repository (apt's `deb URL dir/`): no components, indices beside Release.
    pub fn is_flat(&self) -> bool {
        self.name.ends_with('/')
    }

    /// `file` (a path a Release lists, or a signed file's name) in this directory.
    pub fn file(&self, file: &str) -> Result<RelPath, PathError> {
        RelPath::new(&format!("{}{file}", self.prefix))
    }

    /// Whether `p` is one of this suite's own files: signed metadata, or an index a
    /// flat repository keeps beside it (they turn over with every publish).
    pub fn holds_index(&self, p: &RelPath) -> bool {
        p.as_str()
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| {
                !rest.contains('/')
                    && (SIGNED_FILES.contains(&rest)
                        || ["Packages", "Sources", "Contents-", "Translation-"]
                            .iter()
                            .any(|i| rest.starts_with(i)))
            })
    }

    /// Whether `p` is this suite's InRelease, Release or Release.gpg.
    pub fn holds_signed(&self, p: &RelPath) -> bool {
        p.as_str()
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| SIGNED_FILES.contains(&rest))
    }
}

/// A suite as the config accepts it: a plain name (`bookworm`, `stable-updates`) or a
/// flat repository's relative directory ending in '/' (`./`, `subdir/`, `dists/stable/`)
/// whose parts are plain names. None when acceptable, else why not.
pub fn suite_problem(suite: &str, plain: impl Fn(&str) -> bool) -> Option<&'static str> {
    let Some(flat) = suite.strip_suffix('/') else {
        return (!plain(suite)).then_some(
            "is not a plain name (a flat repository's directory ends in '/': \"./\", \"subdir/\")",
        );
    };
    if flat == "." {
        return None;
    }
    let flat = flat.strip_prefix("./").unwrap_or(flat);
    if flat.is_empty() || !flat.split('/').all(&plain) {
        return Some("is not a flat repository's directory (\"./\" or plain names ending in '/')");
    }
    // Where the mirror keeps what every snapshot shares, and the trace files: signed
    // metadata there would be shared by the kept snapshots, or written over.
    let first = flat.split('/').next().unwrap_or_default();
    if first == "pool" || first == "project" || flat.split('/').any(|p| p == "by-hash") {
        return Some("is inside pool/, project/ or a by-hash/ directory, which a suite cannot be");
    }
    None
}

/// A pool path as an index writes it, apt-style: `./x.deb` is `x.deb` below the
/// upstream URL (dpkg-scanpackages and apt-ftparchive write it so in flat repositories;
/// apt joins it to the URL and the server drops the `./`), `Directory: .` is the root.
pub fn pool_path(p: &str) -> &str {
    let mut p = p;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.trim_start_matches('/');
    }
    if p == "." { "" } else { p }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> bool {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }

    #[test]
    fn a_suite_name_is_below_dists_and_a_flat_suite_is_its_own_path() {
        let d = SuiteDir::of("bookworm");
        assert!(!d.is_flat());
        assert_eq!(
            d.file("InRelease").unwrap().as_str(),
            "dists/bookworm/InRelease"
        );
        let root = SuiteDir::of("./");
        assert!(root.is_flat());
        assert_eq!(root.file("Packages.gz").unwrap().as_str(), "Packages.gz");
        assert_eq!(
            SuiteDir::of("sub/").file("Release").unwrap().as_str(),
            "sub/Release"
        );
        assert_eq!(
            SuiteDir::of("dists/stable/")
                .file("InRelease")
                .unwrap()
                .as_str(),
            "dists/stable/InRelease"
        );
        assert_eq!(
            SuiteDir::of("./sub/").file("Release").unwrap().as_str(),
            "sub/Release"
        );
    }

    #[test]
    fn only_the_suites_own_signed_files_are_its_signed_metadata() {
        let root = SuiteDir::of("./");
        assert!(root.holds_signed(&RelPath::new("InRelease").unwrap()));
        assert!(!root.holds_signed(&RelPath::new("sub/InRelease").unwrap()));
        assert!(!root.holds_signed(&RelPath::new("Packages").unwrap()));
        let d = SuiteDir::of("bookworm");
        assert!(d.holds_signed(&RelPath::new("dists/bookworm/Release.gpg").unwrap()));
        assert!(!d.holds_signed(&RelPath::new("dists/bookworm-updates/Release").unwrap()));
    }

    #[test]
    fn suites_the_config_takes_and_refuses() {
        for ok in ["bookworm", "./", "sub/", "dists/stable/", "./sub/", "a/b/"] {
            assert_eq!(suite_problem(ok, plain), None, "{ok}");
        }
        for bad in [
            "../", "/", "a//", "sub/../", ".hidden/", "a b", "//", "./../", "",
        ] {
            assert!(suite_problem(bad, plain).is_some(), "{bad}");
        }
    }

    #[test]
    fn pool_paths_lose_their_leading_dot_slash() {
        assert_eq!(pool_path("./hello_1.0_all.deb"), "hello_1.0_all.deb");
        assert_eq!(pool_path("././sub/x.deb"), "sub/x.deb");
        assert_eq!(pool_path("pool/main/x.deb"), "pool/main/x.deb");
        assert_eq!(pool_path("."), "");
        assert_eq!(pool_path("./"), "");
        // Anything else stays for RelPath to refuse.
        assert_eq!(pool_path("a/../x"), "a/../x");
    }
}
