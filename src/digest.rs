//! Whether a file on disk holds exactly the bytes a checksum vouches for: asked before
//! a download (is it staged already?) and before a link (is the published copy sound?).

use std::path::Path;

use sha2::{Digest, Sha256};

/// True if the file at `path` has exactly this size and SHA256.
pub fn file_matches(path: &Path, size: u64, sha256: &[u8; 32]) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.metadata().map(|m| m.len()).ok() != Some(size) {
        return false;
    }
    let mut h = Sha256::new();
    if std::io::copy(&mut f, &mut h).is_err() {
        return false;
    }
    let digest: [u8; 32] = h.finalize().into();
    &digest == sha256
}
