//! The bucket's own record of what it holds, kept as an object beside the mirror
//! (`<prefix>/.mirrorsync/bucket`): every path with its size and SHA256, which
//! snapshot it reflects, and whether the last publish finished.
//!
//! With it, a publish compares the local manifest against one GET instead of a HEAD
//! per object. A publish that dies midway leaves `complete no`, and the next one
//! does not trust the record alone: it lists the bucket and asks the objects that
//! landed since the last checkpoint for their SHA256 (kept in object metadata).
//!
//! Format, line based:
//! ```text
//! mirrorsync-bucket 1
//! snapshot 20261125T101500Z
//! complete yes
//! <sha256 hex>\t<size>\t<path>
//! ```

use std::fmt::Write;

use super::order::Held;
use crate::relpath::RelPath;

pub const RECORD_KEY: &str = ".mirrorsync/bucket";
const MAGIC: &str = "mirrorsync-bucket 1";

#[derive(Debug, Default, Clone, PartialEq)]
pub struct BucketRecord {
    pub snapshot: Option<String>,
    pub complete: bool,
    pub held: Held,
}

#[derive(Debug, thiserror::Error)]
#[error("{key}, line {line}: {detail}")]
pub struct RecordError {
    pub key: String,
    pub line: usize,
    pub detail: String,
}

impl BucketRecord {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 + self.held.len() * 120);
        let _ = writeln!(out, "{MAGIC}");
        let _ = writeln!(out, "snapshot {}", self.snapshot.as_deref().unwrap_or("-"));
        let _ = writeln!(out, "complete {}", if self.complete { "yes" } else { "no" });
        let mut paths: Vec<_> = self.held.iter().collect();
        paths.sort_by(|a, b| a.0.cmp(b.0));
        for (path, (size, sha)) in paths {
            let _ = writeln!(out, "{}\t{size}\t{path}", hex::encode(sha));
        }
        out
    }

    /// `key` names the object in errors.
    pub fn parse(text: &str, key: &str) -> Result<BucketRecord, RecordError> {
        let err = |line: usize, detail: &str| RecordError {
            key: key.to_string(),
            line,
            detail: detail.to_string(),
        };
        let mut lines = text.lines().enumerate();
        if lines.next().map(|(_, l)| l) != Some(MAGIC) {
            return Err(err(1, "not a mirrorsync bucket record"));
        }
        let mut record = BucketRecord::default();
        for (n, line) in lines {
            let line_no = n + 1;
            if let Some(s) = line.strip_prefix("snapshot ") {
                record.snapshot = (s != "-").then(|| s.to_string());
                continue;
            }
            if let Some(c) = line.strip_prefix("complete ") {
                record.complete = match c {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(err(line_no, "complete must be yes or no")),
                };
                continue;
            }
            let mut parts = line.splitn(3, '\t');
            let (Some(hash), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(err(line_no, "expected <sha256> <size> <path>"));
            };
            let mut sha = [0u8; 32];
            hex::decode_to_slice(hash, &mut sha).map_err(|_| err(line_no, "bad SHA256"))?;
            let size = size.parse().map_err(|_| err(line_no, "bad size"))?;
            let path = RelPath::new(path).map_err(|_| err(line_no, "unsafe path"))?;
            record.held.insert(path, (size, sha));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_a_round_trip() {
        let mut r = BucketRecord {
            snapshot: Some("20261125T101500Z".into()),
            complete: true,
            held: Held::new(),
        };
        r.held.insert(
            RelPath::new("pool/main/h/hello/hello_1.0~rc1_arm64.deb").unwrap(),
            (1234, [0xab; 32]),
        );
        r.held
            .insert(RelPath::new("dists/s/InRelease").unwrap(), (99, [1; 32]));
        let text = r.render();
        assert_eq!(BucketRecord::parse(&text, "k").unwrap(), r);
    }

    #[test]
    fn a_damaged_record_names_its_line() {
        let e = BucketRecord::parse(
            "mirrorsync-bucket 1\ncomplete no\nzz\t1\tpool/a\n",
            "m/.mirrorsync/bucket",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "m/.mirrorsync/bucket, line 3: bad SHA256");
        let e = BucketRecord::parse(
            &format!(
                "mirrorsync-bucket 1\n{}\t1\t../etc/passwd\n",
                "00".repeat(32)
            ),
            "k",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(BucketRecord::parse("<html>", "k").is_err());
    }
}
