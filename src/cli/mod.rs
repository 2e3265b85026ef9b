//! The `mirrorsync` command line: what each subcommand does with the library, and
//! the exit code it ends with. The binary only parses, sets up logging and calls
//! [`run`].
//!
//! - [`args`]: the clap types (also what `man` and `completions` render).
//! - one module per subcommand: `sync`, `verify`, `status`, `probe`, `check_config`,
//!   `docs` (`man` and `completions`) and `demo`.
//! - `render`: how results read (summaries, tables, JSON); `progress`: the bar.
//! - [`exit`]: the exit codes.

pub mod args;
mod check_config;
#[cfg(feature = "demo")]
mod demo;
mod docs;
pub mod exit;
pub mod logging;
mod probe;
mod progress;
mod render;
mod status;
mod sync;
mod verify;

use std::path::Path;

use crate::config::Config;
use args::{Cli, Command};

/// Runs the parsed command line; returns the exit code. An `Err` is a failure at
/// run time that no mirror's result covers (the binary exits 1 with it); mistakes of
/// the command line or the config are exit code 2, returned as such.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::CheckConfig => Ok(check_config::check_config(config, cli.verbose > 0)),
        Command::Sync {
            names,
            dry_run,
            verify_all,
            allow_mass_delete,
            json,
            bwlimit,
            trigger,
        } => {
            let args = sync::SyncArgs {
                dry_run,
                verify_all,
                allow_mass_delete,
                json,
                bwlimit,
                trigger,
                quiet: cli.quiet,
            };
            sync::sync(config, &names, &args)
        }
        Command::Verify {
            names,
            repair,
            json,
            url: Some(url),
            resolve,
        } => {
            let url = crate::config::with_slash(url);
            verify::verify_served(config, &names, &url, &resolve, repair, json)
        }
        Command::Verify {
            names,
            repair,
            json,
            url: None,
            resolve: _,
        } => verify::verify_local(config, &names, repair, json),
        Command::Status { names, json, html } => {
            status::status(config, &names, json, html.as_deref())
        }
        Command::Completions { shell } => Ok(docs::completions(shell)),
        Command::Man { dir } => docs::man(dir.as_deref()),
        Command::Probe {
            urls,
            upstream,
            keyring,
            allow_weak_signatures,
            suites,
            timeout,
            max_age,
            samples,
            resolve,
            json,
            prometheus,
        } => {
            let opts = crate::probe::ProbeOptions {
                upstream,
                keyring,
                allow_weak_signatures,
                suites,
                timeout,
                max_age,
                samples,
                resolve: resolve.into_iter().collect(),
            };
            let format = match (json, prometheus) {
                (true, _) => render::ProbeFormat::Json,
                (false, true) => render::ProbeFormat::Prometheus,
                (false, false) => render::ProbeFormat::Table,
            };
            probe::probe(&urls, &opts, format)
        }
        #[cfg(feature = "demo")]
        Command::Demo { dir } => demo::demo(dir),
    }
}

/// The async runtime of one command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    limit_malloc_arenas();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // File work (installs, links, hashing) runs on blocking threads; a few are
        // plenty for one disk, and each extra thread costs memory a Pi lacks.
        .max_blocking_threads(16)
        .build()?)
}

/// glibc gives every thread that allocates its own arena (up to 8 per core), which
/// shows up as RSS that is never used again; two are plenty for this workload.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before the runtime starts
    // any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The config, or None after saying on stderr what is wrong with it.
pub(crate) fn load_config(path: Option<&Path>) -> Option<Config> {
    let config = Config::load(path).map_err(logging::error).ok()?;
    if logging::verbose() {
        tracing::info!(config = %config.source.display(), "read the config");
    }
    Some(config)
}
