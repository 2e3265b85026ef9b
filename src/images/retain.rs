//! `keep_latest`: which dated release directories of each image family to mirror.
//!
//! A family is a directory whose children are named `<name>-YYYY-MM-DD`
//! (`raspios_lite_armhf/images/raspios_lite_armhf-2024-11-19/`); the image inside may
//! carry another date, so the directory's date decides. The newest N are kept, and
//! any the OS list still points at, whatever their age: Imager users would otherwise
//! get 404s from the mirror for an image upstream still offers.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::shared::{Date, dated};

/// The dated directories to drop: for each family, all but the newest `keep`, minus
/// those holding a file in `referenced`. Returns directory paths ("a/b/x-2024-01-01").
pub fn dated_dirs_to_drop<'a>(
    files: impl Iterator<Item = &'a str>,
    keep: usize,
    referenced: &HashSet<&str>,
) -> BTreeSet<String> {
    // family (parent path) -> dated children, ordered by (date, name).
    let mut families: BTreeMap<String, BTreeSet<(Date, String)>> = BTreeMap::new();
    for path in files {
        let parts: Vec<&str> = path.split('/').collect();
        // Directories only: the last component is the file.
        for i in 0..parts.len().saturating_sub(1) {
            if let Some(date) = dated(parts[i]) {
                families
                    .entry(parts[..i].join("/"))
                    .or_default()
                    .insert((date, parts[..=i].join("/")));
            }
        }
    }
    let pinned: HashSet<String> = referenced
        .iter()
        .flat_map(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            (1..parts.len()).map(move |i| parts[..i].join("/"))
        })
        .collect();
    let mut drop = BTreeSet::new();
    for members in families.values() {
        let n = members.len();
        for (i, (_, dir)) in members.iter().enumerate() {
            if i + keep < n && !pinned.contains(dir) {
                drop.insert(dir.clone());
            }
        }
    }
    drop
}

/// True if `path` lies under one of the `dirs`.
pub fn under_any(path: &str, dirs: &BTreeSet<String>) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    (1..parts.len()).any(|i| dirs.contains(&parts[..i].join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &[&str] = &[
        "raspios_lite_armhf/images/raspios_lite_armhf-2024-03-15/2024-03-15-raspios-bookworm-armhf-lite.img.xz",
        "raspios_lite_armhf/images/raspios_lite_armhf-2024-07-04/2024-07-04-raspios-bookworm-armhf-lite.img.xz",
        "raspios_lite_armhf/images/raspios_lite_armhf-2024-10-28/2024-10-22-raspios-bookworm-armhf-lite.img.xz",
        "raspios_lite_armhf/images/raspios_lite_armhf-2024-10-28/2024-10-22-raspios-bookworm-armhf-lite.img.xz.sha256",
        "raspios_lite_armhf/images/raspios_lite_armhf-2024-11-19/2024-11-19-raspios-bookworm-armhf-lite.img.xz",
        "raspios_full_arm64/images/raspios_full_arm64-2024-11-19/2024-11-19-raspios-bookworm-arm64-full.img.xz",
        "os_list_imagingutility_v4.json",
    ];

    #[test]
    fn the_newest_dated_directories_of_each_family_stay() {
        let drop = dated_dirs_to_drop(TREE.iter().copied(), 2, &HashSet::new());
        assert_eq!(
            drop.into_iter().collect::<Vec<_>>(),
            vec![
                "raspios_lite_armhf/images/raspios_lite_armhf-2024-03-15".to_string(),
                "raspios_lite_armhf/images/raspios_lite_armhf-2024-07-04".to_string(),
            ]
        );
    }

    #[test]
    fn one_the_os_list_points_at_stays_however_old() {
        let referenced: HashSet<&str> = [TREE[0]].into_iter().collect();
        let drop = dated_dirs_to_drop(TREE.iter().copied(), 1, &referenced);
        assert_eq!(
            drop.iter().map(String::as_str).collect::<Vec<_>>(),
            vec![
                "raspios_lite_armhf/images/raspios_lite_armhf-2024-07-04",
                "raspios_lite_armhf/images/raspios_lite_armhf-2024-10-28",
            ]
        );
        assert!(under_any(TREE[2], &drop));
        assert!(under_any(TREE[3], &drop));
        assert!(!under_any(TREE[0], &drop));
        assert!(!under_any(TREE[6], &drop));
    }
}
