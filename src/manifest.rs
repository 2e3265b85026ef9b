//! The manifest of a published snapshot: every file it holds, with size and SHA256.
//!
//! Written once when a snapshot is published (snapshots are never modified after), and
//! read by the next run's planner: a file listed here with the size and digest that
//! upstream now lists is known good and is hard-linked, not fetched or re-hashed. The
//! manifest also remembers since when a file has been gone upstream, for `grace`.
//!
//! Format: one line per file, tab separated, sorted by path:
//! `<sha256 hex>\t<size>\t<gone-since unix seconds or ->\t<path>`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::relpath::RelPath;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {detail}")]
    Syntax {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub sha256: [u8; 32],
    /// Unix seconds since which upstream no longer lists this file; kept for grace.
    pub gone_since: Option<i64>,
}

#[derive(Debug, Default, Clone)]
pub struct Manifest {
    pub files: HashMap<RelPath, Entry>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        Manifest::load_where(path, &|_| true)
    }

    /// The files of the manifest at `path` that `hold` picks.
    pub fn load_where(path: &Path, hold: &dyn Fn(&str) -> bool) -> Result<Manifest, ManifestError> {
        let mut files = HashMap::new();
        // Loaded into a map, the order does not matter (and a manifest an operator
        // edited by hand still loads).
        for item in Reader::open(path)?.any_order() {
            let (rel, entry) = item?;
            if hold(rel.as_str()) {
                files.insert(rel, entry);
            }
        }
        Ok(Manifest { files })
    }

    /// Writes the manifest to `path`, atomically and durably.
    pub fn write(&self, path: &Path) -> Result<(), ManifestError> {
        let pending = crate::atomic::Pending::new(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.write_into(&pending)?;
        pending.commit().map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the manifest into `pending` and fsyncs it; the caller puts it in place.
    pub fn write_into(&self, pending: &crate::atomic::Pending) -> Result<(), ManifestError> {
        let io = |source| ManifestError::Io {
            path: pending.path().to_path_buf(),
            source,
        };
        let mut entries: Vec<_> = self.files.iter().collect();
        // In place: paths are unique, and a stable sort would allocate half again.
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut w = BufWriter::new(pending.file());
        for (p, e) in entries {
            write_line(&mut w, p, e).map_err(io)?;
        }
        let f = w.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
        Ok(())
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|e| e.size).sum()
    }

    /// Files in this snapshot by content, to link a file that moved or a by-hash copy.
    pub fn by_digest(&self) -> HashMap<[u8; 32], &RelPath> {
        self.files.iter().map(|(p, e)| (e.sha256, p)).collect()
    }
}

/// One manifest line: `<sha256 hex>\t<size>\t<gone-since or ->\t<path>`.
pub fn write_line(w: &mut impl Write, p: &RelPath, e: &Entry) -> std::io::Result<()> {
    let gone = e
        .gone_since
        .map_or_else(|| "-".to_string(), |g| g.to_string());
    writeln!(w, "{}\t{}\t{}\t{}", hex::encode(e.sha256), e.size, gone, p)
}

/// The entries of the manifest at `path` whose SHA256 `wanted` picks, each other
/// line read no further than its digest: the pass for the few files a plan looks
/// for by content (a package moved to another path).
pub fn entries_with_digest(
    path: &Path,
    wanted: &dyn Fn(&[u8; 32]) -> bool,
) -> Result<Vec<(RelPath, Entry)>, ManifestError> {
    let mut reader = Reader::open(path)?.any_order();
    let mut out = Vec::new();
    let mut sha256 = [0u8; 32];
    while let Some(line) = reader.lines.next() {
        reader.line += 1;
        let line = line.map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let hash = line.get(..64).ok_or_else(|| reader.syntax("bad SHA256"))?;
        hex::decode_to_slice(hash, &mut sha256).map_err(|_| reader.syntax("bad SHA256"))?;
        if wanted(&sha256) {
            out.push(reader.parse(&line)?);
        }
    }
    Ok(out)
}

/// A manifest read line by line as it lies on disk, in path order, holding one line
/// in memory: for planning against a published tree of any size. A line out of order
/// is an error, since the merges built on this rely on the order.
pub struct Reader {
    path: PathBuf,
    lines: std::io::Lines<BufReader<std::fs::File>>,
    line: usize,
    last: Option<RelPath>,
    check_order: bool,
    /// An error ends the stream: lines after it would be out of context.
    failed: bool,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, ManifestError> {
        let f = std::fs::File::open(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Reader {
            path: path.to_path_buf(),
            lines: BufReader::new(f).lines(),
            line: 0,
            last: None,
            check_order: true,
            failed: false,
        })
    }

    /// Reads lines in whatever order they come.
    pub fn any_order(mut self) -> Reader {
        self.check_order = false;
        self
    }

    fn syntax(&self, detail: &str) -> ManifestError {
        ManifestError::Syntax {
            path: self.path.clone(),
            line: self.line,
            detail: detail.to_string(),
        }
    }

    fn parse(&self, line: &str) -> Result<(RelPath, Entry), ManifestError> {
        let mut parts = line.splitn(4, '\t');
        let (Some(hash), Some(size), Some(gone), Some(p)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(self.syntax("expected 4 tab-separated fields"));
        };
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(hash, &mut sha256).map_err(|_| self.syntax("bad SHA256"))?;
        let size = size.parse().map_err(|_| self.syntax("bad size"))?;
        let gone_since = match gone {
            "-" => None,
            g => Some(g.parse().map_err(|_| self.syntax("bad gone-since"))?),
        };
        let rel = RelPath::new(p).map_err(|_| self.syntax("unsafe path"))?;
        let entry = Entry {
            size,
            sha256,
            gone_since,
        };
        Ok((rel, entry))
    }
}

impl Iterator for Reader {
    type Item = Result<(RelPath, Entry), ManifestError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let line = self.lines.next()?;
        self.line += 1;
        let item = line
            .map_err(|source| ManifestError::Io {
                path: self.path.clone(),
                source,
            })
            .and_then(|l| self.parse(&l));
        let item = item.and_then(|(rel, entry)| {
            if self.check_order && self.last.as_ref().is_some_and(|last| *last >= rel) {
                return Err(self.syntax("path out of order (the file is sorted by path)"));
            }
            if self.check_order {
                self.last = Some(rel.clone());
            }
            Ok((rel, entry))
        });
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_survives_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::default();
        m.files.insert(
            RelPath::new("pool/main/a/a.deb").unwrap(),
            Entry {
                size: 10,
                sha256: [7; 32],
                gone_since: None,
            },
        );
        m.files.insert(
            RelPath::new("pool/main/b/b b.deb").unwrap(),
            Entry {
                size: 0,
                sha256: [0; 32],
                gone_since: Some(1_700_000_000),
            },
        );
        let p = dir.path().join("m");
        m.write(&p).unwrap();
        let back = Manifest::load(&p).unwrap();
        assert_eq!(back.files, m.files);
        assert_eq!(back.total_bytes(), 10);
    }

    #[test]
    fn a_look_up_by_content_finds_every_path_with_that_digest() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::default();
        for (p, tag) in [
            ("pool/a.deb", 1),
            ("pool/b.deb", 2),
            ("pool/moved/a.deb", 1),
        ] {
            m.files.insert(
                RelPath::new(p).unwrap(),
                Entry {
                    size: 3,
                    sha256: [tag; 32],
                    gone_since: None,
                },
            );
        }
        let path = dir.path().join("m");
        m.write(&path).unwrap();
        let found = entries_with_digest(&path, &|d| d == &[1; 32]).unwrap();
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["pool/a.deb", "pool/moved/a.deb"]);
        std::fs::write(&path, "00\t1\t-\tpool/x\n").unwrap();
        let err = entries_with_digest(&path, &|_| true)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("m, line 1: bad SHA256"), "{err}");
    }

    #[test]
    fn a_damaged_manifest_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        std::fs::write(&p, "zz\t1\t-\tpool/x\n").unwrap();
        let err = Manifest::load(&p).unwrap_err().to_string();
        assert!(err.ends_with("m, line 1: bad SHA256"), "{err}");
    }

    #[test]
    fn a_manifest_reads_back_in_path_order_one_line_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::default();
        for p in [
            "pool/b.deb",
            "dists/x/InRelease",
            "pool/a.deb",
            "pool/a/b.deb",
        ] {
            m.files.insert(
                RelPath::new(p).unwrap(),
                Entry {
                    size: p.len() as u64,
                    sha256: [p.len() as u8; 32],
                    gone_since: None,
                },
            );
        }
        let path = dir.path().join("m");
        m.write(&path).unwrap();
        let read: Vec<_> = Reader::open(&path).unwrap().map(Result::unwrap).collect();
        let paths: Vec<&str> = read.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "dists/x/InRelease",
                "pool/a.deb",
                "pool/a/b.deb",
                "pool/b.deb"
            ]
        );
        for (p, e) in &read {
            assert_eq!(&m.files[p], e);
        }
    }

    #[test]
    fn a_manifest_out_of_order_is_refused_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let hash = "00".repeat(32);
        std::fs::write(
            &path,
            format!("{hash}\t1\t-\tpool/b\n{hash}\t1\t-\tpool/a\n"),
        )
        .unwrap();
        let mut reader = Reader::open(&path).unwrap();
        let err = reader.find_map(Result::err).unwrap().to_string();
        assert!(
            err.contains("line 2") && err.contains("out of order"),
            "{err}"
        );
        assert!(reader.next().is_none(), "the stream ends at its error");
    }
}
