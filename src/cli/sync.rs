//! `mirrorsync sync`.

use std::io::IsTerminal;
use std::path::Path;

use super::args::TriggerArg;
use super::exit;
use super::logging;
use super::progress::CliReporter;
use super::render;
use crate::sync::{self, SyncOptions};
use crate::trace::Trigger;

/// The flags of `sync`, and the global `--quiet`.
pub struct SyncArgs {
    pub dry_run: bool,
    pub verify_all: bool,
    pub allow_mass_delete: bool,
    pub json: bool,
    pub bwlimit: Option<u64>,
    pub trigger: Option<TriggerArg>,
    pub quiet: bool,
}

/// Syncs the named mirrors (all without names); 1 if one of them failed.
pub fn sync(config_path: Option<&Path>, names: &[String], args: &SyncArgs) -> anyhow::Result<u8> {
    let Some(mut config) = super::load_config(config_path) else {
        return Ok(exit::USAGE);
    };
    if let Some(rate) = args.bwlimit {
        for m in &mut config.mirrors {
            m.network.bandwidth_limit = Some(rate);
        }
    }
    let interactive = std::io::stderr().is_terminal();
    let options = SyncOptions {
        dry_run: args.dry_run,
        verify_all: args.verify_all,
        allow_mass_delete: args.allow_mass_delete,
        trigger: trigger(args.trigger, interactive),
    };
    let reporter = CliReporter::new(interactive && !args.quiet && !args.json);
    let results = super::runtime()?.block_on(sync::run(&config, names, &options, &reporter));
    reporter.finish();
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            if args.json {
                // Every mirror the run was for, each saying why it did not run.
                let code = exit::code_of(&e);
                let why = anyhow::anyhow!("{e}");
                let entries: Vec<_> = sync::select(&config, names)
                    .unwrap_or_default()
                    .iter()
                    .map(|m| render::error_entry(&m.name, "not run", &why, code))
                    .collect();
                render::json(&entries)?;
            }
            return Ok(exit::run_error_code(e));
        }
    };
    let mut failed = false;
    let mut reports = Vec::new();
    let mut entries = Vec::new();
    for r in results {
        match r.result {
            Ok(report) => {
                entries.push(render::json_entry(&report, exit::OK)?);
                reports.push(report);
            }
            Err(e) => {
                failed = true;
                logging::error(format_args!(
                    "{e:#}\n  the served tree of {:?} was left as it was",
                    r.name
                ));
                entries.push(render::error_entry(
                    &r.name,
                    "failed",
                    &e,
                    exit::MIRROR_FAILED,
                ));
            }
        }
    }
    if args.json {
        render::json(&entries)?;
    } else if args.dry_run {
        reports.iter().for_each(render::plan);
    } else if std::io::stdout().is_terminal() {
        reports.iter().for_each(render::summary);
    }
    Ok(if failed {
        exit::MIRROR_FAILED
    } else {
        exit::OK
    })
}

/// What started this run, as the trace file records it.
fn trigger(arg: Option<TriggerArg>, interactive: bool) -> Trigger {
    match arg {
        Some(TriggerArg::Cron) => Trigger::Cron,
        Some(TriggerArg::Manual) => Trigger::Manual,
        Some(TriggerArg::Push) => Trigger::Push,
        // An ssh forced command, as ftpsync's push mirroring uses.
        None if std::env::var_os("SSH_ORIGINAL_COMMAND").is_some() => Trigger::Push,
        None if interactive => Trigger::Manual,
        None => Trigger::Cron,
    }
}
