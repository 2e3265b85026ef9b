//! The next snapshot's manifest, built without holding it: the plan writes what the
//! content and grace keep, sorted, into a file as it joins; the few files staging
//! decides on (indices, metadata, tolerated failures, traces) are overrides held in
//! memory; publishing merges the two into the manifest in one pass.

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::manifest::{Entry, Manifest, ManifestError, Reader, write_line};
use crate::relpath::RelPath;

pub struct NextManifest {
    base: tempfile::NamedTempFile,
    overrides: BTreeMap<RelPath, Option<Entry>>,
}

/// Writes the sorted lines of the next manifest's base as the plan goes.
pub struct BaseWriter {
    file: tempfile::NamedTempFile,
    out: BufWriter<std::fs::File>,
    last: Option<RelPath>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BaseWriter {
    /// A new base in `dir` (the mirror's own directory: a tmpfs /tmp is RAM on a Pi),
    /// named so a killed run's leftover is swept (see [`crate::snapshot::MirrorDirs`]).
    pub fn new(dir: &Path) -> Result<BaseWriter, ManifestError> {
        let file = tempfile::Builder::new()
            .prefix(crate::merge::SPILL_PREFIX)
            .tempfile_in(dir)
            .map_err(io(dir))?;
        let out = BufWriter::new(file.reopen().map_err(io(file.path()))?);
        Ok(BaseWriter {
            file,
            out,
            last: None,
        })
    }

    /// Adds a line; callers go in path order, each path once (a manifest out of
    /// order would be refused by every later run, so it is refused here first).
    pub fn push(&mut self, path: &RelPath, entry: &Entry) -> Result<(), ManifestError> {
        let at = self.file.path().to_path_buf();
        if self.last.as_ref().is_some_and(|last| last >= path) {
            return Err(ManifestError::Syntax {
                path: at,
                line: 0,
                detail: format!("{path} written out of order"),
            });
        }
        self.last = Some(path.clone());
        write_line(&mut self.out, path, entry).map_err(io(&at))
    }

    pub fn finish(self) -> Result<NextManifest, ManifestError> {
        let at = self.file.path().to_path_buf();
        self.out.into_inner().map_err(|e| io(&at)(e.into_error()))?;
        Ok(NextManifest {
            base: self.file,
            overrides: BTreeMap::new(),
        })
    }
}

impl NextManifest {
    /// Lists `path` with `entry`, whatever the base says.
    pub fn set(&mut self, path: RelPath, entry: Entry) {
        self.overrides.insert(path, Some(entry));
    }

    /// Leaves `path` out, whatever the base says.
    pub fn remove(&mut self, path: RelPath) {
        self.overrides.insert(path, None);
    }

    /// Every line, base and overrides merged, in path order.
    fn merged(&self) -> Result<Merged<'_>, ManifestError> {
        Ok(Merged {
            base: Reader::open(self.base.path())?.peekable(),
            overrides: self.overrides.iter().peekable(),
        })
    }

    /// Writes the manifest into `pending` and fsyncs it, showing each path to
    /// `on_path` as it goes; returns the number of files.
    pub fn write_into(
        &self,
        pending: &crate::atomic::Pending,
        on_path: &mut dyn FnMut(&RelPath),
    ) -> Result<Totals, ManifestError> {
        let at: PathBuf = pending.path().to_path_buf();
        let mut w = BufWriter::new(pending.file());
        let mut totals = Totals::default();
        for item in self.merged()? {
            let (p, e) = item?;
            write_line(&mut w, &p, &e).map_err(io(&at))?;
            on_path(&p);
            totals.files += 1;
            totals.bytes += e.size;
        }
        let f = w.into_inner().map_err(|e| io(&at)(e.into_error()))?;
        f.sync_all().map_err(io(&at))?;
        Ok(totals)
    }

    /// The whole manifest in memory, for a kind whose tree is small (image trees) and
    /// whose last checks look files up in it.
    pub fn to_manifest(&self) -> Result<Manifest, ManifestError> {
        let mut m = Manifest::default();
        for item in self.merged()? {
            let (p, e) = item?;
            m.files.insert(p, e);
        }
        Ok(m)
    }
}

/// What a manifest lists: files, and the bytes they hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    pub bytes: u64,
}

struct Merged<'a> {
    base: std::iter::Peekable<Reader>,
    overrides: std::iter::Peekable<std::collections::btree_map::Iter<'a, RelPath, Option<Entry>>>,
}

impl Iterator for Merged<'_> {
    type Item = Result<(RelPath, Entry), ManifestError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        loop {
            let order = match (self.base.peek(), self.overrides.peek()) {
                (Some(Err(_)), _) => Ordering::Less,
                (Some(Ok((b, _))), Some((o, _))) => b.cmp(o),
                (Some(Ok(_)), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => return None,
            };
            if order == Ordering::Less {
                return self.base.next();
            }
            if order == Ordering::Equal {
                // The override stands for the base's line.
                self.base.next();
            }
            let (p, e) = self.overrides.next()?;
            if let Some(e) = e {
                return Some(Ok((p.clone(), e.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(tag: u8) -> Entry {
        Entry {
            size: tag as u64,
            sha256: [tag; 32],
            gone_since: None,
        }
    }

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn overrides_replace_add_and_remove_lines_of_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BaseWriter::new(dir.path()).unwrap();
        for (path, tag) in [("a", 1), ("c", 3), ("e", 5)] {
            w.push(&p(path), &e(tag)).unwrap();
        }
        let mut next = w.finish().unwrap();
        next.set(p("b"), e(2));
        next.set(p("c"), e(9));
        next.remove(p("e"));
        next.remove(p("z"));
        next.set(p("f"), e(6));
        let m = next.to_manifest().unwrap();
        let mut got: Vec<(String, u8)> = m
            .files
            .iter()
            .map(|(p, e)| (p.to_string(), e.sha256[0]))
            .collect();
        got.sort();
        let want: Vec<(String, u8)> = [("a", 1), ("b", 2), ("c", 9), ("f", 6)]
            .iter()
            .map(|(p, t)| (p.to_string(), *t))
            .collect();
        assert_eq!(got, want);
        let out = dir.path().join("m");
        let pending = crate::atomic::Pending::new(&out).unwrap();
        assert_eq!(next.write_into(&pending, &mut |_| {}).unwrap().files, 4);
        pending.commit().unwrap();
        let order: Vec<String> = Reader::open(&out)
            .unwrap()
            .map(|r| r.unwrap().0.to_string())
            .collect();
        assert_eq!(order, ["a", "b", "c", "f"], "sorted, as a manifest is");
    }
}
