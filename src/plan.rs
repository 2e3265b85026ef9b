//! The planner: what upstream lists and what the published snapshot holds, in; the
//! actions that build the next snapshot, out. No I/O, so it is cheap to test and bench.
//!
//! A wanted file already published with the same size and SHA256 is linked (the
//! published tree was verified when it was built, and snapshots never change). A file
//! with the same content under another path (a by-hash copy, a moved package) is linked
//! from there. Everything else is fetched. Published files upstream no longer lists are
//! kept for `grace` after the run that first missed them, then dropped.

use std::collections::HashMap;
#[cfg(test)]
use std::collections::HashSet;
use std::time::Duration;

use crate::manifest::{Entry, Manifest};
use crate::relpath::RelPath;

/// A file the next snapshot must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub path: RelPath,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Where to fetch it, relative to the upstream URL (a by-hash path may differ).
    pub source: RelPath,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hard-link `from` of the published snapshot to `to` in staging.
    Link { from: RelPath, to: Wanted },
    /// Download into staging.
    Fetch(Wanted),
}

impl Action {
    pub fn wanted(&self) -> &Wanted {
        match self {
            Action::Link { to, .. } => to,
            Action::Fetch(w) => w,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{path} is listed twice with different contents ({first_size} bytes {first_sha256} and {second_size} bytes {second_sha256})"
)]
pub struct Conflict {
    pub path: RelPath,
    pub first_size: u64,
    pub first_sha256: String,
    pub second_size: u64,
    pub second_sha256: String,
}

/// The wanted files of a run, deduplicated by path.
#[derive(Debug, Default)]
pub struct WantedSet {
    files: HashMap<RelPath, Wanted>,
}

impl WantedSet {
    /// Adds `w`; the same path twice is fine if it is the same file (Architecture: all
    /// packages appear in every Packages), an error if not.
    pub fn insert(&mut self, w: Wanted) -> Result<bool, Conflict> {
        if let Some(have) = self.files.get(&w.path) {
            if have.size == w.size && have.sha256 == w.sha256 {
                return Ok(false);
            }
            return Err(Conflict {
                path: w.path.clone(),
                first_size: have.size,
                first_sha256: hex::encode(have.sha256),
                second_size: w.size,
                second_sha256: hex::encode(w.sha256),
            });
        }
        self.files.insert(w.path.clone(), w);
        Ok(true)
    }

    pub fn remove(&mut self, p: &RelPath) -> Option<Wanted> {
        self.files.remove(p)
    }

    pub fn contains(&self, p: &RelPath) -> bool {
        self.files.contains_key(p)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Wanted> {
        self.files.values()
    }

    pub fn get(&self, p: &RelPath) -> Option<&Wanted> {
        self.files.get(p)
    }
}

/// Decides link or fetch for each wanted file, in a stable order (by path), with a
/// digest index of the whole manifest: the plain statement of what [`plan_owned`]
/// does in less memory, kept as the model its tests compare it with.
#[cfg(test)]
fn plan_files<'a>(
    wanted: impl IntoIterator<Item = &'a Wanted>,
    published: &Manifest,
    by_digest: &HashMap<[u8; 32], &RelPath>,
) -> Vec<Action> {
    let mut actions: Vec<Action> = wanted
        .into_iter()
        .map(|w| {
            if let Some(e) = published.files.get(&w.path)
                && e.size == w.size
                && e.sha256 == w.sha256
            {
                return Action::Link {
                    from: w.path.clone(),
                    to: w.clone(),
                };
            }
            match by_digest.get(&w.sha256) {
                Some(from) if published.files.get(*from).is_some_and(|e| e.size == w.size) => {
                    Action::Link {
                        from: (*from).clone(),
                        to: w.clone(),
                    }
                }
                _ => Action::Fetch(w.clone()),
            }
        })
        .collect();
    actions.sort_by(|a, b| a.wanted().path.cmp(&b.wanted().path));
    actions
}

/// Decides link or fetch for each wanted file, in a stable order (by path), for a
/// pool of tens of thousands: takes the wanted files by value and
/// needs no digest index of the whole published manifest (5 MB at Debian scale). Files
/// published under their own path are linked from there, sharing its path; the digests
/// of the rest, usually a few, are looked up in one pass over the manifest.
pub fn plan_owned(wanted: impl IntoIterator<Item = Wanted>, published: &Manifest) -> Vec<Action> {
    let wanted = wanted.into_iter();
    let mut actions = Vec::with_capacity(wanted.size_hint().0);
    let mut misses = Vec::new();
    for w in wanted {
        match published.files.get_key_value(&w.path) {
            Some((from, e)) if e.size == w.size && e.sha256 == w.sha256 => {
                actions.push(Action::Link {
                    from: from.clone(),
                    to: w,
                })
            }
            _ => misses.push(w),
        }
    }
    if !misses.is_empty() {
        let mut elsewhere: HashMap<[u8; 32], Option<(&RelPath, u64)>> =
            misses.iter().map(|w| (w.sha256, None)).collect();
        for (p, e) in &published.files {
            if let Some(slot @ None) = elsewhere.get_mut(&e.sha256) {
                *slot = Some((p, e.size));
            }
        }
        for w in misses {
            actions.push(match elsewhere.get(&w.sha256) {
                Some(Some((from, size))) if *size == w.size => Action::Link {
                    from: (*from).clone(),
                    to: w,
                },
                _ => Action::Fetch(w),
            });
        }
    }
    // In place: a stable sort would allocate half the plan again, and paths are unique.
    actions.sort_unstable_by(|a, b| a.wanted().path.cmp(&b.wanted().path));
    actions
}

/// Published files upstream no longer lists: those still within grace, and the rest.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removals {
    /// Kept in the next snapshot; the entry carries when the file was first missed.
    pub kept: Vec<(RelPath, Entry)>,
    /// Not carried into the next snapshot.
    pub dropped: Vec<(RelPath, u64)>,
    /// Those of both that upstream stopped listing in this very run: what the
    /// mass-deletion guard weighs (files already in grace were weighed before).
    pub newly_gone: Vec<(RelPath, u64)>,
}

impl Removals {
    /// Files kept for grace, with the Unix time each of them goes.
    pub fn grace_ends(&self, grace: Duration) -> Vec<(String, i64)> {
        self.kept
            .iter()
            .map(|(p, e)| {
                (
                    p.to_string(),
                    e.gone_since.unwrap_or(0) + grace.as_secs() as i64,
                )
            })
            .collect()
    }

    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.iter().map(|(_, s)| s).sum()
    }
}

impl From<&Wanted> for Entry {
    /// A wanted file as the next snapshot's manifest lists it.
    fn from(w: &Wanted) -> Entry {
        Entry {
            size: w.size,
            sha256: w.sha256,
            gone_since: None,
        }
    }
}

/// Bytes the fetches of a plan will download.
pub fn fetch_bytes(actions: &[Action]) -> u64 {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Fetch(w) => Some(w.size),
            Action::Link { .. } => None,
        })
        .sum()
}

/// A published file upstream no longer lists, while `grace` lasts: the entry the
/// next snapshot keeps it with (since when it is gone: now, the first time it is
/// missed); None once grace is over.
pub fn in_grace(entry: &Entry, now_unix: i64, grace: Duration) -> Option<Entry> {
    let since = entry.gone_since.unwrap_or(now_unix);
    (now_unix.saturating_sub(since) < grace.as_secs() as i64).then(|| Entry {
        gone_since: Some(since),
        ..entry.clone()
    })
}

/// What a run will do, in numbers: the `--dry-run` output and the run summary.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanSummary {
    pub fetch_files: u64,
    pub fetch_bytes: u64,
    pub link_files: u64,
    pub link_bytes: u64,
    pub grace_files: u64,
    pub grace_bytes: u64,
    pub delete_files: u64,
    pub delete_bytes: u64,
}

impl PlanSummary {
    pub fn add_actions(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Link { to, .. } => {
                    self.link_files += 1;
                    self.link_bytes += to.size;
                }
                Action::Fetch(w) => {
                    self.fetch_files += 1;
                    self.fetch_bytes += w.size;
                }
            }
        }
    }

    pub fn add_removals(&mut self, r: &Removals) {
        self.grace_files += r.kept.len() as u64;
        self.grace_bytes += r.kept.iter().map(|(_, e)| e.size).sum::<u64>();
        self.delete_files += r.dropped.len() as u64;
        self.delete_bytes += r.dropped_bytes();
    }
}

/// The mass-deletion guard: a run in which upstream stops listing more than
/// `max_ratio` of the published files or bytes is refused, because a broken upstream
/// or a captive portal looks exactly like "everything was removed". It is weighed on
/// the run that sees them go, the one that would publish the gutted indices, whether
/// grace keeps the files a while longer or not.
///
/// `weighs` says which files count: content, not the indices that turn over with
/// every publish; `published` is the count and bytes of the published files that do.
pub fn deletes_too_much(
    r: &Removals,
    (count, bytes): (u64, u64),
    max_ratio: f64,
    weighs: &dyn Fn(&RelPath) -> bool,
) -> Option<String> {
    let total_files = count as f64;
    let total_bytes = bytes as f64;
    if total_files == 0.0 {
        return None;
    }
    let gone: Vec<&(RelPath, u64)> = r.newly_gone.iter().filter(|(p, _)| weighs(p)).collect();
    let gone_bytes: u64 = gone.iter().map(|(_, s)| s).sum();
    let file_ratio = gone.len() as f64 / total_files;
    let byte_ratio = if total_bytes > 0.0 {
        gone_bytes as f64 / total_bytes
    } else {
        0.0
    };
    (file_ratio > max_ratio || byte_ratio > max_ratio).then(|| {
        format!(
            "upstream no longer lists {} of {} published files ({:.0}%, {:.0}% of the bytes), more than max_delete_ratio = {}",
            gone.len(),
            count,
            file_ratio * 100.0,
            byte_ratio * 100.0,
            max_ratio
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(path: &str, size: u64, h: u8) -> Wanted {
        Wanted {
            path: RelPath::new(path).unwrap(),
            size,
            sha256: [h; 32],
            source: RelPath::new(path).unwrap(),
        }
    }

    fn published(files: &[(&str, u64, u8, Option<i64>)]) -> Manifest {
        let mut m = Manifest::default();
        for (p, size, h, gone) in files {
            m.files.insert(
                RelPath::new(p).unwrap(),
                Entry {
                    size: *size,
                    sha256: [*h; 32],
                    gone_since: *gone,
                },
            );
        }
        m
    }

    /// The removals of a run that keeps `keep`, as the plan's join makes them.
    fn plan_removals(
        keep: &HashSet<&RelPath>,
        published: &Manifest,
        now_unix: i64,
        grace: Duration,
    ) -> Removals {
        let mut out = Removals::default();
        let mut paths: Vec<_> = published.files.iter().collect();
        paths.sort_by(|a, b| a.0.cmp(b.0));
        for (path, entry) in paths {
            if keep.contains(path) {
                continue;
            }
            if entry.gone_since.is_none() {
                out.newly_gone.push((path.clone(), entry.size));
            }
            match in_grace(entry, now_unix, grace) {
                Some(kept) => out.kept.push((path.clone(), kept)),
                None => out.dropped.push((path.clone(), entry.size)),
            }
        }
        out
    }

    /// The published files and bytes that weigh, as the plan's join counts them.
    fn totals(m: &Manifest, weighs: &dyn Fn(&RelPath) -> bool) -> (u64, u64) {
        m.files
            .iter()
            .filter(|(p, _)| weighs(p))
            .fold((0, 0), |(n, b), (_, e)| (n + 1, b + e.size))
    }

    #[test]
    fn unchanged_files_are_linked_and_changed_ones_fetched() {
        let m = published(&[("pool/a.deb", 10, 1, None), ("pool/b.deb", 20, 2, None)]);
        let wanted = [
            w("pool/a.deb", 10, 1),
            w("pool/b.deb", 21, 9),
            w("pool/c.deb", 5, 3),
        ];
        let actions = plan_owned(wanted.clone(), &m);
        assert_eq!(
            actions,
            vec![
                Action::Link {
                    from: RelPath::new("pool/a.deb").unwrap(),
                    to: wanted[0].clone()
                },
                Action::Fetch(wanted[1].clone()),
                Action::Fetch(wanted[2].clone()),
            ]
        );
    }

    /// A file unchanged at its own path is linked from that path, whatever other
    /// path holds the same bytes (two releases sharing a pool file, a by-hash copy).
    #[test]
    fn an_unchanged_file_is_linked_from_its_own_path_first() {
        let m = published(&[("pool/a.deb", 10, 1, None), ("pool/copy.deb", 10, 1, None)]);
        let wanted = w("pool/a.deb", 10, 1);
        let actions = plan_owned([wanted.clone()], &m);
        assert_eq!(
            actions,
            vec![Action::Link {
                from: wanted.path.clone(),
                to: wanted.clone()
            }]
        );
        // Same digest, another size: not the same file; fetched.
        let other_size = w("pool/a.deb", 11, 1);
        let actions = plan_owned([other_size.clone()], &m);
        assert_eq!(actions, vec![Action::Fetch(other_size.clone())]);
    }

    #[test]
    fn same_content_elsewhere_is_linked_not_fetched() {
        let m = published(&[("dists/s/main/binary-arm64/Packages.xz", 100, 7, None)]);
        let byhash = w("dists/s/main/binary-arm64/by-hash/SHA256/0707", 100, 7);
        let actions = plan_owned([byhash], &m);
        assert!(
            matches!(&actions[0], Action::Link { from, .. } if from.as_str().ends_with("Packages.xz"))
        );
    }

    #[test]
    fn the_lean_planner_plans_as_the_indexed_one() {
        let m = published(&[
            ("pool/a.deb", 10, 1, None),
            ("pool/b.deb", 20, 2, None),
            ("dists/s/main/binary-arm64/Packages.xz", 100, 7, None),
        ]);
        let wanted = vec![
            w("pool/c.deb", 5, 3),
            w("pool/a.deb", 10, 1),
            w("pool/b.deb", 21, 9),
            w("dists/s/main/binary-arm64/by-hash/SHA256/0707", 100, 7),
            w("pool/moved.deb", 20, 2),
            w("pool/same-digest-other-size.deb", 11, 1),
        ];
        let lean = plan_owned(wanted.clone(), &m);
        assert_eq!(lean, plan_files(&wanted, &m, &m.by_digest()));
    }

    #[test]
    fn removed_files_stay_for_grace_then_go() {
        let hour = 3600;
        let now = 100 * hour;
        let m = published(&[
            ("pool/kept.deb", 1, 1, None),
            ("pool/just-removed.deb", 2, 2, None),
            ("pool/removed-earlier.deb", 3, 3, Some(now - 2 * hour)),
            ("pool/removed-long-ago.deb", 4, 4, Some(now - 7 * hour)),
        ]);
        let kept = RelPath::new("pool/kept.deb").unwrap();
        let keep: HashSet<&RelPath> = [&kept].into_iter().collect();
        let r = plan_removals(&keep, &m, now, Duration::from_secs(6 * 3600));
        let kept_paths: Vec<_> = r
            .kept
            .iter()
            .map(|(p, e)| (p.as_str(), e.gone_since))
            .collect();
        assert_eq!(
            kept_paths,
            vec![
                ("pool/just-removed.deb", Some(now)),
                ("pool/removed-earlier.deb", Some(now - 2 * hour)),
            ]
        );
        assert_eq!(
            r.dropped,
            vec![(RelPath::new("pool/removed-long-ago.deb").unwrap(), 4)]
        );
    }

    /// Grace is a promise of `grace` and no more: a file gone one second less is
    /// still served, one gone exactly that long is let go.
    #[test]
    fn grace_ends_exactly_when_it_says() {
        let grace = 6 * 3600;
        let now = 100 * 3600;
        let m = published(&[
            ("pool/one-second-left.deb", 1, 1, Some(now - grace + 1)),
            ("pool/grace-over.deb", 2, 2, Some(now - grace)),
        ]);
        let r = plan_removals(&HashSet::new(), &m, now, Duration::from_secs(grace as u64));
        let kept: Vec<&str> = r.kept.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(kept, ["pool/one-second-left.deb"]);
        assert_eq!(
            r.dropped,
            vec![(RelPath::new("pool/grace-over.deb").unwrap(), 2)]
        );
    }

    #[test]
    fn a_file_listed_twice_differently_is_a_conflict() {
        let mut set = WantedSet::default();
        assert_eq!(set.insert(w("pool/a.deb", 1, 1)), Ok(true));
        assert_eq!(set.insert(w("pool/a.deb", 1, 1)), Ok(false));
        let err = set.insert(w("pool/a.deb", 2, 2)).unwrap_err();
        assert!(err.to_string().starts_with("pool/a.deb is listed twice"));
    }

    /// An image tree that loses its few big images loses the mirror, though most of
    /// its small files stay: bytes count as much as files. And the limit is "more
    /// than": exactly the ratio passes.
    #[test]
    fn losing_most_of_the_bytes_is_refused_and_the_limit_itself_passes() {
        let mut files: Vec<(String, u64)> = (0..9).map(|i| (format!("small{i}"), 10)).collect();
        files.push(("big.img.xz".into(), 1000));
        let rows: Vec<(&str, u64, u8, Option<i64>)> = files
            .iter()
            .enumerate()
            .map(|(i, (p, size))| (p.as_str(), *size, i as u8, None))
            .collect();
        let m = published(&rows);
        let all = |_: &RelPath| true;
        let big = RelPath::new("big.img.xz").unwrap();
        let keep: HashSet<&RelPath> = m.files.keys().filter(|p| **p != big).collect();
        let r = plan_removals(&keep, &m, 0, Duration::ZERO);
        let msg =
            deletes_too_much(&r, totals(&m, &all), 0.4, &all).expect("most of the bytes gone");
        assert!(
            msg.contains("1 of 10 published files (10%, 92% of the bytes)"),
            "{msg}"
        );

        // Four of ten equal files is 40%: at the limit, not over it.
        let m = published(&[
            ("a", 1, 1, None),
            ("b", 1, 2, None),
            ("c", 1, 3, None),
            ("d", 1, 4, None),
            ("e", 1, 5, None),
            ("f", 1, 6, None),
            ("g", 1, 7, None),
            ("h", 1, 8, None),
            ("i", 1, 9, None),
            ("j", 1, 10, None),
        ]);
        let stay: Vec<RelPath> = ["e", "f", "g", "h", "i", "j"]
            .iter()
            .map(|p| RelPath::new(p).unwrap())
            .collect();
        let keep: HashSet<&RelPath> = stay.iter().collect();
        let r = plan_removals(&keep, &m, 0, Duration::ZERO);
        assert_eq!(r.newly_gone.len(), 4);
        assert_eq!(deletes_too_much(&r, totals(&m, &all), 0.4, &all), None);
    }

    #[test]
    fn wiping_most_of_the_mirror_is_refused() {
        let m = published(&[("a", 1, 1, None), ("b", 1, 2, None), ("c", 1, 3, None)]);
        let r = plan_removals(&HashSet::new(), &m, 0, Duration::ZERO);
        let all = |_: &RelPath| true;
        let msg = deletes_too_much(&r, totals(&m, &all), 0.4, &all).unwrap();
        assert!(
            msg.starts_with("upstream no longer lists 3 of 3 published files (100%"),
            "{msg}"
        );
        // With grace the files stay a while, but the run that sees them go is the
        // one to stop.
        let r = plan_removals(&HashSet::new(), &m, 0, Duration::from_secs(3600));
        assert!(r.dropped.is_empty());
        assert!(deletes_too_much(&r, totals(&m, &all), 0.4, &all).is_some());
        let r = Removals {
            kept: vec![],
            dropped: vec![(RelPath::new("a").unwrap(), 1)],
            newly_gone: vec![(RelPath::new("a").unwrap(), 1)],
        };
        assert_eq!(deletes_too_much(&r, totals(&m, &all), 0.4, &all), None);
        // Files that do not weigh (indices) never trip it.
        let r = plan_removals(&HashSet::new(), &m, 0, Duration::ZERO);
        let only_a = |p: &RelPath| p.as_str() == "a";
        assert_eq!(deletes_too_much(&r, totals(&m, &only_a), 0.4, &only_a), Some(
            "upstream no longer lists 1 of 1 published files (100%, 100% of the bytes), more than max_delete_ratio = 0.4".into()
        ));
    }
}
