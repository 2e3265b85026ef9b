//! `mirrorsync demo`.

use std::path::PathBuf;

use super::exit;

/// The whole product against a fixture on loopback, in `dir` (./demo-mirror).
pub fn demo(dir: Option<PathBuf>) -> anyhow::Result<u8> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("demo-mirror"));
    let mut out = std::io::stdout();
    super::runtime()?.block_on(crate::demo::run(&dir, &mut out))?;
    Ok(exit::OK)
}
