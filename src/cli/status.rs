//! `mirrorsync status`.

use std::path::Path;

use anyhow::Context;

use super::exit;
use super::render;
use crate::config::{Config, Mirror};
use crate::snapshot::MirrorDirs;
use crate::state::MirrorState;

/// The last run, last success and snapshots of each named mirror (all without names).
pub fn status(
    config_path: Option<&Path>,
    names: &[String],
    json: bool,
    html: Option<&Path>,
) -> anyhow::Result<u8> {
    let Some(config) = super::load_config(config_path) else {
        return Ok(exit::USAGE);
    };
    if let Some(file) = html {
        let now = jiff::Timestamp::now();
        let selected = match crate::sync::select(&config, names) {
            Ok(m) => m,
            Err(e) => return Ok(exit::run_error_code(e)),
        };
        let views: Vec<_> = crate::page::gather(&config, now)
            .into_iter()
            .filter(|v| selected.iter().any(|m| m.name == v.name))
            .collect();
        crate::page::write_to(file, &views, now)
            .with_context(|| format!("writing {}", file.display()))?;
        return Ok(exit::OK);
    }
    let all = match crate::sync::select(&config, names) {
        Ok(m) => m,
        Err(e) => return Ok(exit::run_error_code(e)),
    }
    .into_iter()
    .map(|m| mirror_status(&config, m))
    .collect::<anyhow::Result<Vec<_>>>()?;
    if json {
        render::json(&all)?;
    } else {
        render::status(&all);
    }
    Ok(exit::OK)
}

/// One mirror's status document, as `status --json` prints it.
fn mirror_status(config: &Config, m: &Mirror) -> anyhow::Result<serde_json::Value> {
    let dirs = MirrorDirs::new(&config.global.root, &m.name);
    let state = MirrorState::load(&dirs.base)?;
    let current = dirs.current_id()?;
    let snapshots = dirs.snapshot_ids()?;
    Ok(serde_json::json!({
        "name": m.name,
        "kind": m.kind_name(),
        "upstream": m.upstream.as_str(),
        "snapshot": current,
        "snapshots": snapshots,
        "upstream_age_seconds": state
            .last_success
            .as_ref()
            .and_then(|r| r.upstream_date.as_deref())
            .and_then(|d| d.parse::<jiff::Timestamp>().ok())
            .map(|d| jiff::Timestamp::now().as_second() - d.as_second()),
        "last_run": state.last_run,
        "last_success": state.last_success,
        "history": crate::history::load(&dirs.base),
    }))
}
