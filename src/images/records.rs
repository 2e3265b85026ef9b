//! `root/.mirrorsync/<name>/images.json`: what the published snapshot knew of each
//! image-tree file when it took it: the listing's size/date text and the validators
//! of the response. With them an unchanged file costs no request at all, and a file no
//! checksum vouches for is compared by size and ETag/Last-Modified.
//!
//! Written after a publish, like state.json; a missing or damaged file only costs
//! HEAD requests on the next run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::upstream::Validators;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The size/date text the listing showed; empty when the file was not listed.
    #[serde(default)]
    pub hint: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
    /// Asked for and not there (a `.sha256` an OS-list image may have): not asked
    /// again while the hint stays the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
}

impl Record {
    /// True if a HEAD answer describes the same file as this record did.
    pub fn same_validators(&self, v: &Validators) -> bool {
        let etag = matches!((&self.etag, &v.etag), (Some(a), Some(b)) if a == b);
        let date = matches!((&self.last_modified, &v.last_modified), (Some(a), Some(b)) if a == b);
        // An ETag that changed means a new file even if the date did not.
        match (&self.etag, &v.etag) {
            (Some(_), Some(_)) => etag,
            _ => date,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Records {
    pub files: BTreeMap<String, Record>,
}

impl Records {
    pub fn path(base: &Path) -> PathBuf {
        base.join("images.json")
    }

    pub fn load(base: &Path) -> Records {
        let path = Self::path(base);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "damaged; every file will be checked again");
                Records::default()
            }),
            Err(_) => Records::default(),
        }
    }

    pub fn save(&self, base: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::atomic::write(&Self::path(base), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etag_decides_over_the_date() {
        let r = Record {
            hint: String::new(),
            etag: Some("\"a\"".into()),
            last_modified: Some("Mon, 01 Jan 2024 00:00:00 GMT".into()),
            absent: false,
        };
        let mut v = Validators {
            etag: Some("\"a\"".into()),
            last_modified: Some("Tue, 02 Jan 2024 00:00:00 GMT".into()),
            content_sha256: None,
        };
        assert!(r.same_validators(&v));
        v.etag = Some("\"b\"".into());
        v.last_modified = r.last_modified.clone();
        assert!(!r.same_validators(&v));
        v.etag = None;
        assert!(r.same_validators(&v));
        assert!(!Record::default().same_validators(&Validators::default()));
    }
}
