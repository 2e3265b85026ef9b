//! Detached signatures (`X.sig`, `X.gpg`, `X.asc`) checked over the staged files.

use std::collections::BTreeMap;

use anyhow::anyhow;

use super::meta::MetaFile;
use crate::apt::signature::{self, Keyring};
use crate::failures::failed;
use crate::manifest::Manifest;
use crate::relpath::RelPath;

pub(super) fn is_signature(p: &RelPath) -> bool {
    let name = p.file_name();
    [".sig", ".gpg", ".asc"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Checks each detached signature (`X.sig`, `X.gpg`, `X.asc`) whose file `X` is
/// mirrored, where either changed this run (or all, with --verify-all).
pub(super) async fn check_signatures(
    keyring: &std::sync::Arc<Keyring>,
    meta: &BTreeMap<RelPath, MetaFile>,
    manifest: &Manifest,
    fetched: &(dyn Fn(&RelPath) -> bool + Sync),
    read_path: &(dyn Fn(&RelPath) -> std::path::PathBuf + Sync),
    verify_all: bool,
) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for (sig_path, sig) in meta {
        if !is_signature(sig_path) {
            continue;
        }
        let Some(target) = [".sig", ".gpg", ".asc"]
            .iter()
            .find_map(|ext| sig_path.as_str().strip_suffix(ext))
            .and_then(|t| RelPath::new(t).ok())
        else {
            continue;
        };
        if !manifest.files.contains_key(&target) {
            continue;
        }
        if !verify_all && !fetched(&target) && !fetched(sig_path) {
            continue;
        }
        let file = read_path(&target);
        let bytes = sig.bytes.clone();
        let keyring = keyring.clone();
        let result = tokio::task::spawn_blocking(move || {
            signature::verify_detached_file(&keyring, &file, &bytes)
        })
        .await
        .map_err(|e| anyhow!("signature check task: {e}"))?;
        match result {
            Ok(signer) => tracing::debug!(path = %target, %signer, "signature good"),
            Err(e) => errors.push(format!("{target}: {sig_path}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(failed("checking signatures", errors))
    }
}
