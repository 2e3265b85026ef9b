//! `mirrorsync probe`.

use super::exit;
use super::render::{self, ProbeFormat};
use crate::probe::ProbeOptions;

/// Health-checks the mirrors at `urls`; 5 if one of them is unhealthy.
pub fn probe(urls: &[url::Url], opts: &ProbeOptions, format: ProbeFormat) -> anyhow::Result<u8> {
    // A keyring that cannot be read is the command line's mistake, not a run's.
    if let Some(k) = &opts.keyring
        && let Err(e) = crate::apt::signature::Keyring::from_file(k)
    {
        super::logging::error(format_args!("--keyring {}: {e:#}", k.display()));
        return Ok(exit::USAGE);
    }
    let reports = super::runtime()?.block_on(crate::probe::probe_all(urls, opts))?;
    render::probe(&reports, format);
    Ok(if reports.iter().all(|r| r.healthy) {
        exit::OK
    } else {
        exit::UNHEALTHY
    })
}
