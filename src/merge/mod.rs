//! Sorted streams of (path, entry), the ground planning at scale stands on: the
//! published manifest read as it lies on disk ([`crate::manifest::Reader`]), the
//! wanted files sorted through disk in bounded memory ([`Spill`]), and the one-pass
//! [`join`] of the two. Memory stays a chunk of entries, whatever the tree's size.

mod join;
mod spill;

pub use join::{Joined, join};
pub use spill::{Sorted, Spill};

/// The name a spill's or a plan's temporary files start with: a run killed with them
/// open leaves them behind, and the next run sweeps them.
pub const SPILL_PREFIX: &str = ".mirrorsync-spill-";

use crate::manifest::ManifestError;
use crate::relpath::RelPath;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The same path with two contents: the planner's own error.
    #[error(transparent)]
    Conflict(#[from] crate::plan::Conflict),
}

impl MergeError {
    fn conflict(path: RelPath, a: &crate::manifest::Entry, b: &crate::manifest::Entry) -> Self {
        MergeError::Conflict(crate::plan::Conflict {
            path,
            first_size: a.size,
            first_sha256: hex::encode(a.sha256),
            second_size: b.size,
            second_sha256: hex::encode(b.sha256),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::manifest::{Entry, Manifest, Reader};

    fn entry(size: u64, tag: u8) -> Entry {
        Entry {
            size,
            sha256: [tag; 32],
            gone_since: None,
        }
    }

    fn path() -> impl Strategy<Value = String> {
        "[a-c]{1,2}(/[a-c]{1,2}){0,2}"
    }

    /// A path with the tag of its published and its wanted entry.
    type Row = (String, Option<u8>, Option<u8>);

    /// Published (a manifest on disk) joined with wanted records spilled in chunks
    /// of `chunk`, as (path, published tag, wanted tag).
    fn joined(
        published: &BTreeMap<String, u8>,
        wanted: &[(String, u8)],
        chunk: usize,
    ) -> Result<Vec<Row>, MergeError> {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::default();
        for (p, t) in published {
            m.files.insert(RelPath::new(p).unwrap(), entry(1, *t));
        }
        let file = dir.path().join("manifest");
        m.write(&file).unwrap();
        let mut spill = Spill::new(dir.path(), chunk).unwrap();
        for (p, t) in wanted {
            spill.push(RelPath::new(p).unwrap(), entry(1, *t))?;
        }
        let published = Reader::open(&file)?.map(|r| r.map_err(MergeError::from));
        join(published, spill.finish()?)
            .map(|j| {
                j.map(|j| {
                    let tag = |e: Option<Entry>| e.map(|e| e.sha256[0]);
                    (j.path.to_string(), tag(j.published), tag(j.wanted))
                })
            })
            .collect()
    }

    proptest! {
        /// Whatever the chunk size (one run or many), the join is the union of both
        /// sides in path order, each path once with each side's entry.
        #[test]
        fn the_join_is_the_sorted_union_of_published_and_wanted(
            published in prop::collection::btree_map(path(), 0u8..3, 0..30),
            wanted in prop::collection::btree_map(path(), 0u8..3, 0..30),
            repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            chunk in 1usize..6,
        ) {
            // Each wanted path pushed once, some of them again with the same entry.
            let mut records: Vec<(String, u8)> = wanted.clone().into_iter().collect();
            if !records.is_empty() {
                for i in &repeats {
                    let r = records[i.index(records.len())].clone();
                    records.push(r);
                }
            }
            records.reverse();
            let got = joined(&published, &records, chunk).unwrap();
            let mut model: BTreeMap<String, (Option<u8>, Option<u8>)> = BTreeMap::new();
            for (p, t) in &published {
                model.entry(p.clone()).or_default().0 = Some(*t);
            }
            for (p, t) in &wanted {
                model.entry(p.clone()).or_default().1 = Some(*t);
            }
            let model: Vec<_> = model.into_iter().map(|(p, (a, b))| (p, a, b)).collect();
            prop_assert_eq!(got, model);
        }
    }

    #[test]
    fn the_same_path_wanted_with_two_contents_is_a_conflict_across_runs() {
        let published = BTreeMap::new();
        // Chunk 1: the two records land in different runs, so the merge finds it.
        let wanted = [("pool/a".to_string(), 1), ("pool/a".to_string(), 2)];
        let err = joined(&published, &wanted, 1).unwrap_err().to_string();
        assert!(
            err.contains("pool/a is listed twice with different contents"),
            "{err}"
        );
        // Chunk 10: both in one run, found when it is sorted.
        let err = joined(&published, &wanted, 10).unwrap_err().to_string();
        assert!(err.contains("pool/a is listed twice"), "{err}");
    }

    #[test]
    fn a_spill_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::new(dir.path(), 2).unwrap();
        for p in ["c", "b", "a", "d", "e"] {
            spill.push(RelPath::new(p).unwrap(), entry(1, 0)).unwrap();
        }
        let sorted: Vec<String> = spill
            .finish()
            .unwrap()
            .map(|r| r.unwrap().0.to_string())
            .collect();
        assert_eq!(sorted, ["a", "b", "c", "d", "e"]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
