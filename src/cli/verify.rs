//! `mirrorsync verify`: the local trees, or with `--url` the copy served elsewhere;
//! with `--repair`, what is damaged is fetched or uploaded again.

use std::path::Path;

use super::args::Resolve;
use super::exit;
use super::logging;
use super::progress::CliReporter;
use super::render;
use crate::config::{Config, Mirror};
use crate::sync::{self, RunError, SyncOptions};
use crate::trace::Trigger;
use crate::verify::VerifyReport;

/// Re-hashes the published trees; 4 if one is damaged and not repaired.
pub fn verify_local(
    config_path: Option<&Path>,
    names: &[String],
    repair: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let Some(config) = super::load_config(config_path) else {
        return Ok(exit::USAGE);
    };
    let mirrors = match sync::select(&config, names) {
        Ok(m) => m,
        Err(e) => return Ok(exit::run_error_code(e)),
    };
    let mut damaged = Vec::new();
    let mut reports = Vec::new();
    let mut entries = Vec::new();
    let mut failed = false;
    for m in mirrors {
        match crate::verify::verify_mirror(&config.global, m) {
            Ok(r) => {
                let code = if r.damaged.is_empty() {
                    exit::OK
                } else {
                    damaged.push(m.name.clone());
                    exit::DAMAGED
                };
                entries.push(render::json_entry(&r, code)?);
                reports.push(r);
            }
            Err(e) => {
                failed = true;
                logging::error(format_args!("{e:#}"));
                entries.push(render::error_entry(
                    &m.name,
                    "failed",
                    &e,
                    exit::MIRROR_FAILED,
                ));
            }
        }
    }
    if json {
        render::json(&entries)?;
    } else {
        render::local_verify(&reports);
    }
    if failed {
        return Ok(exit::MIRROR_FAILED);
    }
    if damaged.is_empty() {
        return Ok(exit::OK);
    }
    if !repair {
        return Ok(exit::DAMAGED);
    }
    resync(&config, &damaged)
}

/// Repair: a sync that re-hashes everything it keeps and fetches again whatever
/// does not match, then publishes a whole, verified snapshot.
fn resync(config: &Config, damaged: &[String]) -> anyhow::Result<u8> {
    let options = SyncOptions {
        verify_all: true,
        trigger: Trigger::Manual,
        ..SyncOptions::default()
    };
    let reporter = CliReporter::new(false);
    let results = match super::runtime()?.block_on(sync::run(config, damaged, &options, &reporter))
    {
        Ok(r) => r,
        Err(e) => return Ok(exit::run_error_code(e)),
    };
    let mut code = exit::OK;
    for r in results {
        match r.result {
            Ok(rep) => logging::say(
                // Damage was found and repaired: worth the operator's mail.
                logging::Severity::Warning,
                &format!(
                    "mirrorsync: {}: repaired, fetched {} file(s) again, published {}",
                    rep.name,
                    rep.files_fetched,
                    rep.snapshot.as_deref().unwrap_or("-")
                ),
            ),
            Err(e) => {
                logging::error(format_args!("{e:#}"));
                code = exit::MIRROR_FAILED;
            }
        }
    }
    Ok(code)
}

/// `verify --url`: the served copy of one mirror, and with --repair its bucket.
pub fn verify_served(
    config_path: Option<&Path>,
    names: &[String],
    url: &url::Url,
    resolve: &[Resolve],
    repair: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let Some(config) = super::load_config(config_path) else {
        return Ok(exit::USAGE);
    };
    let mirrors = match sync::select(&config, names) {
        Ok(m) => m,
        Err(e) => return Ok(exit::run_error_code(e)),
    };
    let [mirror] = mirrors.as_slice() else {
        logging::error("verify --url checks one mirror; name it");
        return Ok(exit::USAGE);
    };
    let client = http_client(mirror, url, resolve)?;
    let rt = super::runtime()?;
    let report = match rt.block_on(crate::verify::verify_served(
        &config.global,
        mirror,
        url,
        &client,
    )) {
        Ok(r) => r,
        Err(e) => {
            logging::error(format_args!("{e:#}"));
            if json {
                render::json(&[render::error_entry(
                    &mirror.name,
                    "failed",
                    &e,
                    exit::MIRROR_FAILED,
                )])?;
            }
            return Ok(exit::MIRROR_FAILED);
        }
    };
    if json {
        let code = if report.damaged.is_empty() {
            exit::OK
        } else {
            exit::DAMAGED
        };
        render::json(&[render::json_entry(&report, code)?])?;
    } else {
        render::served_verify(&report, &crate::upstream::redact(url));
    }
    if report.damaged.is_empty() {
        return Ok(exit::OK);
    }
    if !repair {
        return Ok(exit::DAMAGED);
    }
    Ok(reupload(&rt, &config, mirror, &report))
}

/// The client `verify --url` reads the served copy with, `--resolve` applied.
fn http_client(
    mirror: &Mirror,
    url: &url::Url,
    resolve: &[Resolve],
) -> reqwest::Result<reqwest::Client> {
    let port = url.port_or_known_default().unwrap_or(80);
    let mut client = reqwest::Client::builder()
        .user_agent(concat!(
            "mirrorsync/",
            env!("CARGO_PKG_VERSION"),
            " (verify)"
        ))
        .timeout(mirror.network.timeout);
    for (host, addrs) in resolve {
        let addrs: Vec<std::net::SocketAddr> = addrs
            .iter()
            .map(|a| std::net::SocketAddr::new(*a, port))
            .collect();
        client = client.resolve_to_addrs(host, &addrs);
    }
    client.build()
}

/// Repair of a served copy: the damaged objects are uploaded again to the mirror's
/// bucket, under the run lock.
fn reupload(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    mirror: &Mirror,
    report: &VerifyReport,
) -> u8 {
    let Some(target) = &mirror.publish else {
        logging::error(format_args!(
            "{}: --repair with --url needs the mirror to publish there itself (publish = \"s3://...\")",
            mirror.name
        ));
        return exit::DAMAGED;
    };
    let replace: Vec<crate::relpath::RelPath> = report
        .damaged
        .iter()
        .filter_map(|d| crate::relpath::RelPath::new(&d.path).ok())
        .collect();
    let _lock = match crate::lock::RunLock::acquire(&config.global.root) {
        Ok(l) => l,
        Err(e) => return exit::run_error_code(RunError::Locked(e)),
    };
    match rt.block_on(crate::s3::publish_mirror(
        &config.global.root,
        mirror,
        target,
        true,
        &replace,
    )) {
        Ok(b) => {
            let uploaded = b.map_or(0, |b| b.uploaded);
            logging::say(
                // Damage was found and repaired: worth the operator's mail.
                logging::Severity::Warning,
                &format!(
                    "mirrorsync: {}: repaired, uploaded {uploaded} object(s) again to {}",
                    mirror.name,
                    target.url()
                ),
            );
            exit::OK
        }
        Err(e) => {
            logging::error(format_args!("{e:#}"));
            exit::MIRROR_FAILED
        }
    }
}
