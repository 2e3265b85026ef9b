//! Release files: what a suite contains and the checksums of every index in it.
//!
//! The text comes from [`super::signature`] already verified; this module only parses it
//! and decides which of the listed index files a mirror configuration wants. Format:
//! <https://wiki.debian.org/DebianRepository/Format#A.22Release.22_files>.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::relpath::{PathError, RelPath};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("line {line}: {detail}")]
    Syntax { line: usize, detail: String },
    #[error("field {field}: cannot read date {value:?}")]
    BadDate { field: &'static str, value: String },
    #[error("line {line}: unsafe index path {path:?}: {source}")]
    UnsafePath {
        line: usize,
        path: String,
        #[source]
        source: PathError,
    },
    #[error("line {line}: {path} is listed with size {first} and {second}")]
    ConflictingSize {
        line: usize,
        path: String,
        first: u64,
        second: u64,
    },
}

/// One file a Release lists: its path below `dists/<suite>/` and checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub path: RelPath,
    pub size: u64,
    pub sha256: Option<[u8; 32]>,
    /// Hex, as it names the by-hash/SHA512/ copy; content is verified by SHA256.
    pub sha512: Option<String>,
}

/// A parsed Release (or the signed part of an InRelease).
#[derive(Debug, Clone)]
pub struct Release {
    pub fields: BTreeMap<String, String>,
    pub date: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    pub acquire_by_hash: bool,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// Keyed by path; the SHA256 section fills `sha256`, other sections only sizes.
    pub files: BTreeMap<RelPath, IndexFile>,
}

/// The hash sections and what we keep of each: all sizes, SHA256 digests.
const HASH_SECTIONS: [&str; 4] = ["MD5Sum", "SHA1", "SHA256", "SHA512"];

impl Release {
    pub fn parse(text: &str) -> Result<Release, ReleaseError> {
        let mut fields = BTreeMap::new();
        let mut files: BTreeMap<RelPath, IndexFile> = BTreeMap::new();
        let mut section: Option<&str> = None;
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                // Without a hash section, the continuation of a plain multi-line field
                // (Description): ignored.
                if let Some(sec) = section {
                    add_hash_line(&mut files, sec, line, line_no)?;
                }
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(ReleaseError::Syntax {
                    line: line_no,
                    detail: "expected \"Field: value\"".into(),
                });
            };
            let value = value.trim();
            section = HASH_SECTIONS.iter().find(|s| **s == key).copied();
            if section.is_none() {
                fields.insert(key.to_string(), value.to_string());
            }
        }
        Release::from_parts(fields, files)
    }

    /// The Release of these fields and files, the fields it reads parsed.
    fn from_parts(
        fields: BTreeMap<String, String>,
        files: BTreeMap<RelPath, IndexFile>,
    ) -> Result<Release, ReleaseError> {
        let date = parse_field_date(&fields, "Date")?;
        let valid_until = parse_field_date(&fields, "Valid-Until")?;
        let words = |k: &str| -> Vec<String> {
            fields
                .get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        Ok(Release {
            date,
            valid_until,
            acquire_by_hash: fields
                .get("Acquire-By-Hash")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            architectures: words("Architectures"),
            components: words("Components"),
            fields,
            files,
        })
    }

    /// The index files a mirror with these components and architectures serves, in
    /// Release order. Architecture "all" is always included; Sources only with `sources`.
    pub fn wanted_indices(
        &self,
        components: &[String],
        architectures: &[String],
        sources: bool,
    ) -> Vec<&IndexFile> {
        self.files
            .values()
            .filter(|f| index_wanted(f.path.as_str(), components, architectures, sources))
            .collect()
    }
}

/// Adds one "<hash> <size> <path>" line of hash section `sec` to `files`: every
/// section gives the size, which must agree; SHA256 and SHA512 give their digests.
fn add_hash_line(
    files: &mut BTreeMap<RelPath, IndexFile>,
    sec: &str,
    line: &str,
    line_no: usize,
) -> Result<(), ReleaseError> {
    let mut parts = line.split_whitespace();
    let (Some(hash), Some(size), Some(path), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReleaseError::Syntax {
            line: line_no,
            detail: format!("expected \"<hash> <size> <path>\" in {sec}"),
        });
    };
    let size: u64 = size.parse().map_err(|_| ReleaseError::Syntax {
        line: line_no,
        detail: format!("size {size:?} is not a number"),
    })?;
    let rel = RelPath::new(path).map_err(|source| ReleaseError::UnsafePath {
        line: line_no,
        path: path.to_string(),
        source,
    })?;
    let sha256 = if sec == "SHA256" {
        Some(parse_sha256(hash).ok_or_else(|| ReleaseError::Syntax {
            line: line_no,
            detail: format!("{hash:?} is not a SHA256 digest"),
        })?)
    } else {
        None
    };
    let entry = files.entry(rel.clone()).or_insert(IndexFile {
        path: rel,
        size,
        sha256: None,
        sha512: None,
    });
    if sec == "SHA512" {
        if hash.len() != 128 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReleaseError::Syntax {
                line: line_no,
                detail: format!("{hash:?} is not a SHA512 digest"),
            });
        }
        entry.sha512 = Some(hash.to_ascii_lowercase());
    }
    if entry.size != size {
        return Err(ReleaseError::ConflictingSize {
            line: line_no,
            path: path.to_string(),
            first: entry.size,
            second: size,
        });
    }
    if sha256.is_some() {
        entry.sha256 = sha256;
    }
    Ok(())
}

/// Decides from an index path (relative to `dists/<suite>/`) whether a mirror of
/// these components and architectures carries it.
pub fn index_wanted(path: &str, components: &[String], arches: &[String], sources: bool) -> bool {
    let arch_ok = |a: &str| a == "all" || arches.iter().any(|x| x == a);
    // Patches for pdiffs are not listed in Release; without them the Index files would
    // send apt after 404s, so pdiffs are not mirrored and apt downloads whole indices.
    if path.contains(".diff/") {
        return false;
    }
    let Some((component, rest)) = path.split_once('/') else {
        // A flat repository's indices (and a hybrid suite's flat ones) sit beside its
        // Release and list every architecture: mirrored whole, as apt reads them.
        if path.starts_with("Packages") {
            return true;
        }
        if path.starts_with("Sources") {
            return sources;
        }
        // Suite-level files (old layouts): Contents-<arch>.gz, Contents-source.gz.
        return contents_wanted(path, &arch_ok, sources);
    };
    if !components.iter().any(|c| c == component) {
        return false;
    }
    let first = rest.split('/').next().unwrap_or("");
    if let Some(arch) = first.strip_prefix("binary-") {
        return arch_ok(arch);
    }
    match first {
        "source" => sources,
        "i18n" => true,
        "dep11" => {
            let file = rest.rsplit('/').next().unwrap_or("");
            // Components-<arch>.yml.gz and CID-Index-<arch>.json.gz are per
            // architecture; icon tarballs are shared.
            match file
                .strip_prefix("Components-")
                .or_else(|| file.strip_prefix("CID-Index-"))
            {
                Some(tail) => arch_ok(tail.split('.').next().unwrap_or("")),
                None => true,
            }
        }
        "debian-installer" => rest
            .split('/')
            .nth(1)
            .and_then(|d| d.strip_prefix("binary-"))
            .is_some_and(arch_ok),
        "cnf" => {
            let file = rest.rsplit('/').next().unwrap_or("");
            match file.strip_prefix("Commands-") {
                Some(tail) => arch_ok(tail.split('.').next().unwrap_or("")),
                None => true,
            }
        }
        _ => contents_wanted(rest, &arch_ok, sources),
    }
}

fn contents_wanted(file: &str, arch_ok: &dyn Fn(&str) -> bool, sources: bool) -> bool {
    let Some(tail) = file.strip_prefix("Contents-") else {
        return false;
    };
    let tail = tail.strip_prefix("udeb-").unwrap_or(tail);
    match tail.split('.').next().unwrap_or("") {
        "source" => sources,
        arch => arch_ok(arch),
    }
}

pub fn parse_sha256(hex_str: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).ok()?;
    Some(out)
}

fn parse_field_date(
    fields: &BTreeMap<String, String>,
    field: &'static str,
) -> Result<Option<Timestamp>, ReleaseError> {
    let Some(value) = fields.get(field) else {
        return Ok(None);
    };
    parse_release_date(value)
        .map(Some)
        .ok_or_else(|| ReleaseError::BadDate {
            field,
            value: value.clone(),
        })
}

/// Release dates are RFC 2822 with the zone written "UTC" (not valid RFC 2822) or
/// "+0000"; see apt's `RFC1123StrToTime`.
pub fn parse_release_date(value: &str) -> Option<Timestamp> {
    let v = value.trim();
    let normalised = v
        .strip_suffix(" UTC")
        .or_else(|| v.strip_suffix(" GMT"))
        .or_else(|| v.strip_suffix(" Z"))
        .map(|head| format!("{head} +0000"))
        .unwrap_or_else(|| v.to_string());
    jiff::fmt::rfc2822::parse(&normalised)
        .ok()
        .map(|z| z.timestamp())
}

/// Formats a time the way Release files write it.
pub fn format_release_date(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/debian/bookworm-updates_InRelease"
    ));

    fn signed_part(inrelease: &str) -> String {
        // The one cleartext splitter; signature checks live in signature/.
        crate::apt::signature::unsigned_text(inrelease.as_bytes()).unwrap()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_real_bookworm_updates_release_parses() {
        let r = Release::parse(&signed_part(REAL)).unwrap();
        assert_eq!(r.fields["Codename"], "bookworm-updates");
        assert!(r.acquire_by_hash);
        assert!(r.architectures.contains(&"arm64".to_string()));
        assert_eq!(
            r.components,
            strs(&["main", "contrib", "non-free-firmware", "non-free"])
        );
        assert!(r.date.is_some());
        let packages = r
            .files
            .get(&RelPath::new("main/binary-arm64/Packages.xz").unwrap())
            .unwrap();
        assert!(packages.sha256.is_some());
        assert!(packages.size > 0);
    }

    #[test]
    fn a_mirror_of_main_arm64_wants_its_indices_and_nothing_else() {
        let r = Release::parse(&signed_part(REAL)).unwrap();
        let wanted: Vec<&str> = r
            .wanted_indices(&strs(&["main"]), &strs(&["arm64"]), false)
            .into_iter()
            .map(|f| f.path.as_str())
            .collect();
        assert!(wanted.contains(&"main/binary-arm64/Packages.xz"));
        assert!(wanted.contains(&"main/binary-all/Packages.xz"));
        assert!(wanted.contains(&"main/i18n/Translation-en.xz"));
        assert!(wanted.contains(&"main/Contents-arm64.gz"));
        assert!(!wanted.iter().any(|p| p.contains("amd64")), "{wanted:?}");
        assert!(!wanted.iter().any(|p| p.starts_with("contrib/")));
        assert!(!wanted.iter().any(|p| p.contains("/source/")));
        assert!(!wanted.iter().any(|p| p.contains(".diff/")));
    }

    #[test]
    fn index_choice_by_path() {
        let c = strs(&["main"]);
        let a = strs(&["armhf"]);
        assert!(index_wanted(
            "main/dep11/Components-armhf.yml.gz",
            &c,
            &a,
            false
        ));
        assert!(!index_wanted(
            "main/dep11/Components-amd64.yml.gz",
            &c,
            &a,
            false
        ));
        assert!(index_wanted("main/dep11/icons-64x64.tar.gz", &c, &a, false));
        assert!(index_wanted("main/source/Sources.xz", &c, &a, true));
        assert!(!index_wanted("main/source/Sources.xz", &c, &a, false));
        assert!(index_wanted(
            "main/debian-installer/binary-armhf/Packages.gz",
            &c,
            &a,
            false
        ));
        assert!(index_wanted("Contents-armhf.gz", &c, &a, false));
        assert!(!index_wanted("Contents-source.gz", &c, &a, false));
        // A flat repository's indices, whatever the configured architectures.
        assert!(index_wanted("Packages.xz", &c, &a, false));
        assert!(index_wanted("Packages", &[], &[], false));
        assert!(index_wanted("Sources.gz", &[], &[], true));
        assert!(!index_wanted("Sources.gz", &[], &[], false));
        assert!(index_wanted("main/i18n/Index", &c, &a, false));
    }

    #[test]
    fn dates_as_archives_write_them() {
        let t = parse_release_date("Tue, 24 Nov 2026 02:12:15 UTC").unwrap();
        assert_eq!(t.to_string(), "2026-11-24T02:12:15Z");
        assert_eq!(format_release_date(t), "Tue, 24 Nov 2026 02:12:15 UTC");
        assert!(parse_release_date("Tue, 24 Nov 2026 02:12:15 +0000").is_some());
        assert!(parse_release_date("yesterday").is_none());
    }

    #[test]
    fn a_traversing_index_path_is_refused_with_its_line() {
        let text = "Origin: x\nSHA256:\n 0000000000000000000000000000000000000000000000000000000000000000 1 ../../etc/passwd\n";
        let err = Release::parse(text).unwrap_err().to_string();
        assert!(
            err.starts_with("line 3: unsafe index path \"../../etc/passwd\""),
            "{err}"
        );
    }
}
