//! The order objects reach the bucket in. Object stores have no rename, so a reader
//! (apt behind any web front end) sees each object the moment it lands; consistency
//! comes from never uploading a file that points at another before that other is
//! there: content first, then the indices that list it, then the signed Release
//! files that list the indices, then the trace probes read.

use std::collections::HashMap;

use crate::manifest::Entry;
use crate::relpath::RelPath;

/// Upload waves, in order; a wave starts only when the one before it has landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Wave {
    /// Pool files, by-hash objects, images: nothing else refers to them yet.
    Content,
    /// Packages, Sources, Contents, checksum files, OS lists.
    Indices,
    /// Release, Release.gpg, InRelease: what apt reads first.
    Signed,
    /// project/trace/: says the mirror is complete, so it goes last of all.
    Trace,
}

impl Wave {
    pub const ALL: [Wave; 4] = [Wave::Content, Wave::Indices, Wave::Signed, Wave::Trace];

    pub fn name(self) -> &'static str {
        match self {
            Wave::Content => "content",
            Wave::Indices => "indices",
            Wave::Signed => "signed Release files",
            Wave::Trace => "trace",
        }
    }
}

pub fn wave_of(path: &str) -> Wave {
    if path.starts_with("project/trace/") {
        return Wave::Trace;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    if path.starts_with("dists/") {
        if path.contains("/by-hash/") {
            // Named by their digest: a new one never replaces what a reader has.
            return Wave::Content;
        }
        if matches!(name, "InRelease" | "Release" | "Release.gpg") {
            return Wave::Signed;
        }
        return Wave::Indices;
    }
    // Image trees: checksum files and OS lists describe the images beside them.
    if name.ends_with(".json")
        || name.ends_with(".sha256")
        || name == "SHA256SUMS"
        || name == "SHA256SUMS.gpg"
        || name == "SHA256SUMS.sign"
    {
        return Wave::Indices;
    }
    Wave::Content
}

/// What the bucket holds of one path: size and SHA256.
pub type Held = HashMap<RelPath, (u64, [u8; 32])>;

/// The work that brings the bucket from `held` to `wanted`.
#[derive(Debug, Default)]
pub struct BucketPlan {
    /// Per wave, the paths to upload, largest first so a long upload starts early.
    pub uploads: Vec<(Wave, Vec<(RelPath, Entry)>)>,
    /// Held, not wanted: deleted once the new Release is in place. The local
    /// manifest still lists files within their grace, so they are not here.
    pub deletes: Vec<RelPath>,
    pub unchanged: u64,
}

impl BucketPlan {
    pub fn upload_count(&self) -> usize {
        self.uploads.iter().map(|(_, v)| v.len()).sum()
    }

    pub fn upload_bytes(&self) -> u64 {
        self.uploads
            .iter()
            .flat_map(|(_, v)| v.iter().map(|(_, e)| e.size))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.upload_count() == 0 && self.deletes.is_empty()
    }
}

/// Pure: compares the snapshot's files with what the bucket holds.
pub fn plan(wanted: &HashMap<RelPath, Entry>, held: &Held) -> BucketPlan {
    let mut waves: HashMap<Wave, Vec<(RelPath, Entry)>> = HashMap::new();
    let mut unchanged = 0;
    for (path, entry) in wanted {
        if held.get(path) == Some(&(entry.size, entry.sha256)) {
            unchanged += 1;
            continue;
        }
        waves
            .entry(wave_of(path.as_str()))
            .or_default()
            .push((path.clone(), entry.clone()));
    }
    let mut uploads = Vec::new();
    for wave in Wave::ALL {
        if let Some(mut v) = waves.remove(&wave) {
            v.sort_by(|a, b| b.1.size.cmp(&a.1.size).then_with(|| a.0.cmp(&b.0)));
            uploads.push((wave, v));
        }
    }
    let mut deletes: Vec<RelPath> = held
        .keys()
        .filter(|p| !wanted.contains_key(*p))
        .cloned()
        .collect();
    deletes.sort();
    BucketPlan {
        uploads,
        deletes,
        unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: u64, b: u8) -> Entry {
        Entry {
            size,
            sha256: [b; 32],
            gone_since: None,
        }
    }

    #[test]
    fn apt_paths_land_content_first_and_release_files_last() {
        assert_eq!(
            wave_of("pool/main/h/hello/hello_2.10-3_arm64.deb"),
            Wave::Content
        );
        assert_eq!(
            wave_of("dists/bookworm/main/binary-arm64/by-hash/SHA256/ab12"),
            Wave::Content
        );
        assert_eq!(
            wave_of("dists/bookworm/main/binary-arm64/Packages.xz"),
            Wave::Indices
        );
        assert_eq!(
            wave_of("dists/bookworm/main/i18n/Translation-en.bz2"),
            Wave::Indices
        );
        assert_eq!(wave_of("dists/bookworm/InRelease"), Wave::Signed);
        assert_eq!(wave_of("dists/bookworm/Release.gpg"), Wave::Signed);
        assert_eq!(wave_of("project/trace/mirror.example.org"), Wave::Trace);
    }

    #[test]
    fn image_checksums_and_os_lists_follow_the_images() {
        assert_eq!(
            wave_of("raspios_lite_arm64/images/2024-11-19/img.zip"),
            Wave::Content
        );
        assert_eq!(
            wave_of("raspios_lite_arm64/images/2024-11-19/img.zip.sha256"),
            Wave::Indices
        );
        assert_eq!(wave_of("os_list_imagingutility_v4.json"), Wave::Indices);
    }

    #[test]
    fn only_changed_files_are_uploaded_and_unlisted_ones_deleted() {
        let p = |s: &str| RelPath::new(s).unwrap();
        let wanted: HashMap<RelPath, Entry> = [
            (p("pool/a.deb"), entry(10, 1)),
            (p("pool/b.deb"), entry(20, 2)),
            (p("pool/big.deb"), entry(90, 9)),
            (p("dists/s/InRelease"), entry(5, 3)),
        ]
        .into();
        let held: Held = [
            (p("pool/a.deb"), (10, [1; 32])),
            (p("pool/b.deb"), (20, [7; 32])),
            (p("pool/old.deb"), (30, [4; 32])),
        ]
        .into();
        let plan = plan(&wanted, &held);
        assert_eq!(plan.unchanged, 1);
        assert_eq!(plan.upload_count(), 3);
        assert_eq!(plan.uploads[0].0, Wave::Content);
        let content: Vec<&str> = plan.uploads[0].1.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(content, ["pool/big.deb", "pool/b.deb"]);
        assert_eq!(plan.uploads[1].0, Wave::Signed);
        assert_eq!(plan.deletes, [p("pool/old.deb")]);
        assert_eq!(plan.upload_bytes(), 115);
    }
}
