//! An external sort of (path, entry) records: a chunk is sorted in memory and written
//! out as a run (in the manifest's line format), the runs are merged on reading. The
//! same path twice is one file if the entries agree, a conflict if not.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::MergeError;
use crate::manifest::{Entry, Reader, write_line};
use crate::relpath::RelPath;

type Record = (RelPath, Entry);

/// Records pushed in any order, read back sorted by path.
pub struct Spill {
    dir: tempfile::TempDir,
    chunk: usize,
    buf: Vec<Record>,
    runs: Vec<PathBuf>,
}

impl Spill {
    /// Spills every `chunk` records into a run file in a new directory under `parent`
    /// (on the mirror's disk: a tmpfs /tmp on a Pi is RAM).
    pub fn new(parent: &Path, chunk: usize) -> Result<Spill, MergeError> {
        let dir = tempfile::Builder::new()
            .prefix(super::SPILL_PREFIX)
            .tempdir_in(parent)
            .map_err(|source| MergeError::Io {
                action: "creating a spill directory in",
                path: parent.to_path_buf(),
                source,
            })?;
        Ok(Spill {
            dir,
            chunk: chunk.max(1),
            buf: Vec::new(),
            runs: Vec::new(),
        })
    }

    pub fn push(&mut self, path: RelPath, entry: Entry) -> Result<(), MergeError> {
        self.buf.push((path, entry));
        if self.buf.len() >= self.chunk {
            self.spill()?;
        }
        Ok(())
    }

    /// Sorts the buffer, folds duplicates, and writes it out as one run.
    fn spill(&mut self) -> Result<(), MergeError> {
        let run = sorted_unique(std::mem::take(&mut self.buf))?;
        let path = self.dir.path().join(format!("run-{}", self.runs.len()));
        let io = |source| MergeError::Io {
            action: "writing",
            path: path.clone(),
            source,
        };
        let mut w = BufWriter::new(std::fs::File::create(&path).map_err(io)?);
        for (p, e) in &run {
            write_line(&mut w, p, e).map_err(io)?;
        }
        w.flush().map_err(io)?;
        self.runs.push(path);
        Ok(())
    }

    /// Everything pushed, sorted by path, each path once.
    pub fn finish(mut self) -> Result<Sorted, MergeError> {
        if self.runs.is_empty() {
            let memory = sorted_unique(std::mem::take(&mut self.buf))?;
            return Ok(Sorted {
                _dir: self.dir,
                source: Source::Memory(memory.into_iter()),
                last: None,
                failed: false,
            });
        }
        if !self.buf.is_empty() {
            self.spill()?;
        }
        let mut readers = Vec::new();
        let mut heap = BinaryHeap::new();
        for (i, run) in self.runs.iter().enumerate() {
            let mut reader = Reader::open(run)?;
            if let Some(first) = reader.next() {
                let (p, e) = first?;
                heap.push(Reverse((p, i, e.size, e.sha256, e.gone_since)));
            }
            readers.push(reader);
        }
        Ok(Sorted {
            _dir: self.dir,
            source: Source::Runs { readers, heap },
            last: None,
            failed: false,
        })
    }
}

/// `records` sorted by path, duplicates that agree folded into one.
fn sorted_unique(mut records: Vec<Record>) -> Result<Vec<Record>, MergeError> {
    records.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<Record> = Vec::with_capacity(records.len());
    for (p, e) in records {
        match out.last() {
            Some((last, have)) if *last == p => {
                if !same_file(have, &e) {
                    return Err(MergeError::conflict(p, have, &e));
                }
            }
            _ => out.push((p, e)),
        }
    }
    Ok(out)
}

fn same_file(a: &Entry, b: &Entry) -> bool {
    a.size == b.size && a.sha256 == b.sha256
}

type HeapItem = Reverse<(RelPath, usize, u64, [u8; 32], Option<i64>)>;

enum Source {
    Memory(std::vec::IntoIter<Record>),
    Runs {
        readers: Vec<Reader>,
        heap: BinaryHeap<HeapItem>,
    },
}

/// The records of a [`Spill`], in path order.
pub struct Sorted {
    _dir: tempfile::TempDir,
    source: Source,
    /// The record handed out last, to fold the same path from two runs.
    last: Option<Record>,
    /// An error ends the stream: records after it would be out of context.
    failed: bool,
}

impl Sorted {
    /// The next record from the runs, smallest path first.
    fn next_raw(&mut self) -> Option<Result<Record, MergeError>> {
        match &mut self.source {
            Source::Memory(it) => it.next().map(Ok),
            Source::Runs { readers, heap } => {
                let Reverse((p, i, size, sha256, gone_since)) = heap.pop()?;
                if let Some(next) = readers[i].next() {
                    match next {
                        Ok((np, ne)) => {
                            heap.push(Reverse((np, i, ne.size, ne.sha256, ne.gone_since)))
                        }
                        Err(e) => return Some(Err(e.into())),
                    }
                }
                let entry = Entry {
                    size,
                    sha256,
                    gone_since,
                };
                Some(Ok((p, entry)))
            }
        }
    }
}

impl Iterator for Sorted {
    type Item = Result<Record, MergeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let (p, e) = match self.next_raw() {
                None => return self.last.take().map(Ok),
                Some(Err(err)) => {
                    self.failed = true;
                    return Some(Err(err));
                }
                Some(Ok(r)) => r,
            };
            match self.last.take() {
                Some((lp, le)) if lp == p => {
                    if !same_file(&le, &e) {
                        self.failed = true;
                        return Some(Err(MergeError::conflict(p, &le, &e)));
                    }
                    self.last = Some((lp, le));
                }
                Some(prev) => {
                    self.last = Some((p, e));
                    return Some(Ok(prev));
                }
                None => self.last = Some((p, e)),
            }
        }
    }
}
