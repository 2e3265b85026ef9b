//! The `mirrorsync` command line: parse, set up logging and progress, call the
//! library, map the result to an exit code. Nothing else lives here.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mirrorsync::config::Config;
use mirrorsync::plan::PlanSummary;
use mirrorsync::report::Reporter;
use mirrorsync::sync::{self, MirrorReport, RunError, RunOutcome, SyncOptions};
use mirrorsync::trace::Trigger;

/// Exit codes, as DESIGN.md fixes them.
mod exit {
    pub const OK: u8 = 0;
    pub const MIRROR_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const LOCKED: u8 = 3;
    pub const DAMAGED: u8 = 4;
    pub const UNHEALTHY: u8 = 5;
}

#[derive(Parser)]
#[command(
    name = "mirrorsync",
    version,
    about = "Keep apt repositories and OS image trees mirrored: verified, staged, published atomically"
)]
struct Cli {
    /// The config file [default: ./mirrors.toml, then /etc/mirrorsync/mirrors.toml]
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors
    #[arg(short, long, global = true)]
    quiet: bool,
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Sync every mirror of the config, or the named ones
    Sync {
        names: Vec<String>,
        /// Print the plan (files and bytes to fetch, keep, delete); write nothing
        #[arg(long)]
        dry_run: bool,
        /// Re-hash the files kept from the published tree too
        #[arg(long)]
        verify_all: bool,
        /// Publish even if the plan deletes more than max_delete_ratio
        #[arg(long)]
        allow_mass_delete: bool,
        /// A machine-readable summary on stdout
        #[arg(long)]
        json: bool,
        /// Cap the total download rate of this run ("40Mbit", "5MB/s"), overriding
        /// bandwidth_limit
        #[arg(long, value_parser = parse_bwlimit)]
        bwlimit: Option<u64>,
        /// What started this run, recorded in the trace file [default: cron without
        /// a terminal, manual with one]
        #[arg(long, value_enum)]
        trigger: Option<TriggerArg>,
    },
    /// Re-hash the published trees against their manifests and signatures
    Verify {
        names: Vec<String>,
        /// Fetch again what is damaged, and republish
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        json: bool,
        /// Check the copy served at this URL (a bucket's website endpoint, a CDN)
        /// instead of the local tree; one mirror. With --repair, damaged objects are
        /// uploaded again to the mirror's bucket
        #[arg(long)]
        url: Option<url::Url>,
        /// Connect to these addresses for HOST instead of resolving it (with --url)
        #[arg(long, value_parser = parse_resolve)]
        resolve: Vec<(String, Vec<std::net::IpAddr>)>,
    },
    /// Show the last run, result and snapshot of each mirror
    Status {
        names: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Health-check mirrors as mirror-list checkers do, IPv4 and IPv6 separately
    /// (exit 5 if one is unhealthy)
    Probe {
        /// Mirror URLs: an apt tree root or an image tree root
        #[arg(required = true)]
        urls: Vec<url::Url>,
        /// The master to compare Release dates (and image sizes) with
        #[arg(long)]
        upstream: Option<url::Url>,
        /// Verify each InRelease with this keyring
        #[arg(long)]
        keyring: Option<PathBuf>,
        /// Suites to check [default: those dists/ lists]
        #[arg(long = "suite")]
        suites: Vec<String>,
        /// Per request
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        timeout: std::time::Duration,
        /// A trace or Release older than this (or this far behind the upstream) is
        /// unhealthy
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        max_age: std::time::Duration,
        /// Indices, pool files and images sampled per suite or mirror
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Resolve HOST to these addresses instead of asking DNS (HOST=ADDR[,ADDR])
        #[arg(long, value_parser = parse_resolve)]
        resolve: Vec<(String, Vec<std::net::IpAddr>)>,
        /// One JSON document with an object per mirror and check
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Prometheus text exposition format
        #[arg(long)]
        prometheus: bool,
    },
    /// Validate the config and exit (0, or 2 with the errors)
    CheckConfig,
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) on stdout
    Man,
    /// Build a signed repository, serve it on loopback, mirror it, change it, resync
    Demo {
        /// Where to put it [default: ./demo-mirror]
        dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum TriggerArg {
    Cron,
    Manual,
    Push,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet, cli.log_format);
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mirrorsync: {e:#}");
            exit::USAGE
        }
    };
    ExitCode::from(code)
}

fn init_tracing(verbose: u8, quiet: bool, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    // Under cron, warnings about retries that then succeeded are noise in a mail.
    let default = match (quiet, verbose, std::io::stderr().is_terminal()) {
        (true, _, _) => "error",
        (_, 0, true) => "warn",
        (_, 0, false) => "error",
        (_, 1, _) => "info",
        (_, _, _) => "debug",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("mirrorsync={default}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
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

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::CheckConfig => match Config::load(cli.config.as_deref()) {
            Ok(c) => {
                if std::io::stdout().is_terminal() {
                    println!(
                        "{}: {} mirror(s), root {}",
                        c.source.display(),
                        c.mirrors.len(),
                        c.global.root.display()
                    );
                }
                Ok(exit::OK)
            }
            Err(e) => {
                eprintln!("mirrorsync: {e}");
                Ok(exit::USAGE)
            }
        },
        Command::Sync {
            names,
            dry_run,
            verify_all,
            allow_mass_delete,
            json,
            bwlimit,
            trigger,
        } => {
            let Some(mut config) = load_config(cli.config.as_deref()) else {
                return Ok(exit::USAGE);
            };
            if let Some(rate) = bwlimit {
                for m in &mut config.mirrors {
                    m.network.bandwidth_limit = Some(rate);
                }
            }
            let interactive = std::io::stderr().is_terminal();
            let options = SyncOptions {
                dry_run,
                verify_all,
                allow_mass_delete,
                trigger: match trigger {
                    Some(TriggerArg::Cron) => Trigger::Cron,
                    Some(TriggerArg::Manual) => Trigger::Manual,
                    Some(TriggerArg::Push) => Trigger::Push,
                    // An ssh forced command, as ftpsync's push mirroring uses.
                    None if std::env::var_os("SSH_ORIGINAL_COMMAND").is_some() => Trigger::Push,
                    None if interactive => Trigger::Manual,
                    None => Trigger::Cron,
                },
            };
            let reporter = CliReporter::new(interactive && !cli.quiet && !json);
            let results = runtime()?.block_on(sync::run(&config, &names, &options, &reporter));
            reporter.finish();
            let results = match results {
                Ok(r) => r,
                Err(e) => return Ok(run_error_code(e)),
            };
            let mut failed = false;
            let mut reports = Vec::new();
            for r in results {
                match r.result {
                    Ok(report) => reports.push(report),
                    Err(e) => {
                        failed = true;
                        eprintln!("mirrorsync: {e:#}");
                        eprintln!("  the served tree of {:?} was left as it was", r.name);
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else if dry_run {
                for r in &reports {
                    print_plan(r);
                }
            } else if std::io::stdout().is_terminal() {
                for r in &reports {
                    print_summary(r);
                }
            }
            Ok(if failed {
                exit::MIRROR_FAILED
            } else {
                exit::OK
            })
        }
        Command::Verify {
            names,
            repair,
            json,
            url: Some(url),
            resolve,
        } => {
            let Some(config) = load_config(cli.config.as_deref()) else {
                return Ok(exit::USAGE);
            };
            verify_served(&config, &names, &url, &resolve, repair, json)
        }
        Command::Verify {
            names,
            repair,
            json,
            url: None,
            resolve: _,
        } => {
            let Some(config) = load_config(cli.config.as_deref()) else {
                return Ok(exit::USAGE);
            };
            let mirrors = sync::select(&config, &names)?;
            let mut damaged = Vec::new();
            let mut reports = Vec::new();
            let mut failed = false;
            for m in mirrors {
                match mirrorsync::verify::verify_mirror(&config.global, m) {
                    Ok(r) => {
                        if !r.damaged.is_empty() {
                            damaged.push(m.name.clone());
                        }
                        reports.push(r);
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("mirrorsync: {e:#}");
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                for r in &reports {
                    if r.damaged.is_empty() {
                        if std::io::stdout().is_terminal() {
                            println!(
                                "{}: snapshot {} intact, {} files ({})",
                                r.name,
                                r.snapshot.as_deref().unwrap_or("-"),
                                r.files_checked,
                                bytes(r.bytes_checked)
                            );
                        }
                        continue;
                    }
                    print_damage(
                        r,
                        &format!("in snapshot {}", r.snapshot.as_deref().unwrap_or("-")),
                    );
                }
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
            // Repair: a sync that re-hashes everything it keeps and fetches again
            // whatever does not match, then publishes a whole, verified snapshot.
            let options = SyncOptions {
                verify_all: true,
                trigger: Trigger::Manual,
                ..SyncOptions::default()
            };
            let reporter = CliReporter::new(false);
            let results =
                match runtime()?.block_on(sync::run(&config, &damaged, &options, &reporter)) {
                    Ok(r) => r,
                    Err(e) => return Ok(run_error_code(e)),
                };
            let mut code = exit::OK;
            for r in results {
                match r.result {
                    Ok(rep) => eprintln!(
                        "mirrorsync: {}: repaired, fetched {} file(s) again, published {}",
                        rep.name,
                        rep.files_fetched,
                        rep.snapshot.as_deref().unwrap_or("-")
                    ),
                    Err(e) => {
                        eprintln!("mirrorsync: {e:#}");
                        code = exit::MIRROR_FAILED;
                    }
                }
            }
            Ok(code)
        }
        Command::Status { names, json } => {
            let Some(config) = load_config(cli.config.as_deref()) else {
                return Ok(exit::USAGE);
            };
            let mirrors = sync::select(&config, &names)?;
            let mut all = Vec::new();
            for m in mirrors {
                let dirs = mirrorsync::snapshot::MirrorDirs::new(&config.global.root, &m.name);
                let state = mirrorsync::state::MirrorState::load(&dirs.base)?;
                let current = dirs.current_id()?;
                let snapshots = dirs.snapshot_ids()?;
                all.push(serde_json::json!({
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
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for s in &all {
                    let last = &s["last_run"];
                    let ok = &s["last_success"];
                    println!(
                        "{} ({}): {}",
                        s["name"].as_str().unwrap_or(""),
                        s["kind"].as_str().unwrap_or(""),
                        last["result"].as_str().unwrap_or("never run"),
                    );
                    println!(
                        "  last run     {} -> {}{}",
                        last["started"].as_str().unwrap_or("-"),
                        last["finished"].as_str().unwrap_or("-"),
                        last["error"]
                            .as_str()
                            .map(|e| format!("\n  error        {e}"))
                            .unwrap_or_default(),
                    );
                    println!(
                        "  last success {}: fetched {} files ({}), {} in grace",
                        ok["finished"].as_str().unwrap_or("never"),
                        ok["files_fetched"].as_u64().unwrap_or(0),
                        bytes(ok["bytes_fetched"].as_u64().unwrap_or(0)),
                        ok["files_in_grace"].as_u64().unwrap_or(0),
                    );
                    println!(
                        "  snapshot     {} ({} kept)",
                        s["snapshot"].as_str().unwrap_or("-"),
                        s["snapshots"].as_array().map_or(0, |a| a.len()),
                    );
                    if let Some(age) = s["upstream_age_seconds"].as_i64() {
                        println!(
                            "  upstream     Release Date {} ({} old)",
                            ok["upstream_date"].as_str().unwrap_or("-"),
                            humantime::format_duration(std::time::Duration::from_secs(
                                age.max(0) as u64
                            ))
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "mirrorsync",
                &mut std::io::stdout(),
            );
            Ok(exit::OK)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(exit::OK)
        }
        Command::Probe {
            urls,
            upstream,
            keyring,
            suites,
            timeout,
            max_age,
            samples,
            resolve,
            json,
            prometheus,
        } => {
            let opts = mirrorsync::probe::ProbeOptions {
                upstream,
                keyring,
                suites,
                timeout,
                max_age,
                samples,
                resolve: resolve.into_iter().collect(),
            };
            let reports = runtime()?.block_on(mirrorsync::probe::probe_all(&urls, &opts))?;
            let out = if json {
                mirrorsync::probe::output::json(&reports)
            } else if prometheus {
                mirrorsync::probe::output::prometheus(&reports)
            } else {
                mirrorsync::probe::output::table(&reports)
            };
            print!("{out}");
            if json && !out.ends_with('\n') {
                println!();
            }
            Ok(if reports.iter().all(|r| r.healthy) {
                exit::OK
            } else {
                exit::UNHEALTHY
            })
        }
        Command::Demo { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("demo-mirror"));
            let mut out = std::io::stdout();
            runtime()?.block_on(mirrorsync::demo::run(&dir, &mut out))?;
            Ok(exit::OK)
        }
    }
}

/// The damage `verify` found, the first 20 files named; `place` says where.
fn print_damage(r: &mirrorsync::verify::VerifyReport, place: &str) {
    eprintln!(
        "mirrorsync: {}: {} damaged file(s) {place}:",
        r.name,
        r.damaged.len()
    );
    for d in r.damaged.iter().take(20) {
        eprintln!("  {}: {}", d.path, d.problem);
    }
    if r.damaged.len() > 20 {
        eprintln!("  ... and {} more", r.damaged.len() - 20);
    }
}

/// `verify --url`: the served copy of one mirror, and with --repair its bucket.
fn verify_served(
    config: &Config,
    names: &[String],
    url: &url::Url,
    resolve: &[(String, Vec<std::net::IpAddr>)],
    repair: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let mirrors = sync::select(config, names)?;
    let [mirror] = mirrors.as_slice() else {
        eprintln!("mirrorsync: verify --url checks one mirror; name it");
        return Ok(exit::USAGE);
    };
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
    let client = client.build()?;
    let rt = runtime()?;
    let report = match rt.block_on(mirrorsync::verify::verify_served(
        &config.global,
        mirror,
        url,
        &client,
    )) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mirrorsync: {e:#}");
            return Ok(exit::MIRROR_FAILED);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&[&report])?);
    } else if report.damaged.is_empty() {
        if std::io::stdout().is_terminal() {
            println!(
                "{}: {} serves snapshot {} intact, {} files ({})",
                report.name,
                mirrorsync::upstream::redact(url),
                report.snapshot.as_deref().unwrap_or("-"),
                report.files_checked,
                bytes(report.bytes_checked)
            );
        }
    } else {
        print_damage(
            &report,
            &format!("served at {}", mirrorsync::upstream::redact(url)),
        );
    }
    if report.damaged.is_empty() {
        return Ok(exit::OK);
    }
    if !repair {
        return Ok(exit::DAMAGED);
    }
    let Some(target) = &mirror.publish else {
        eprintln!(
            "mirrorsync: {}: --repair with --url needs the mirror to publish there itself (publish = \"s3://...\")",
            mirror.name
        );
        return Ok(exit::DAMAGED);
    };
    let replace: Vec<mirrorsync::relpath::RelPath> = report
        .damaged
        .iter()
        .filter_map(|d| mirrorsync::relpath::RelPath::new(&d.path).ok())
        .collect();
    let _lock = match mirrorsync::lock::RunLock::acquire(&config.global.root) {
        Ok(l) => l,
        Err(e) => return Ok(run_error_code(RunError::Locked(e))),
    };
    match rt.block_on(mirrorsync::s3::publish_mirror(
        &config.global.root,
        mirror,
        target,
        true,
        &replace,
    )) {
        Ok(b) => {
            let uploaded = b.map_or(0, |b| b.uploaded);
            eprintln!(
                "mirrorsync: {}: repaired, uploaded {uploaded} object(s) again to {}",
                mirror.name,
                target.url()
            );
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("mirrorsync: {e:#}");
            Ok(exit::MIRROR_FAILED)
        }
    }
}

/// Says why a run did not start, and the exit code for it.
fn run_error_code(e: RunError) -> u8 {
    eprintln!("mirrorsync: {e}");
    match e {
        // Queued behind the running sync, which will do the work: not a failure.
        RunError::Queued(_) => exit::OK,
        RunError::Locked(_) => exit::LOCKED,
        RunError::UnknownMirror(_) => exit::USAGE,
    }
}

/// The config, or None after saying on stderr what is wrong with it.
fn load_config(path: Option<&std::path::Path>) -> Option<Config> {
    Config::load(path)
        .map_err(|e| eprintln!("mirrorsync: {e}"))
        .ok()
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("bad duration {s:?} ({e}); write it like \"10s\" or \"24h\""))
}

fn parse_resolve(s: &str) -> Result<(String, Vec<std::net::IpAddr>), String> {
    let (host, addrs) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write it as HOST=ADDR[,ADDR]"))?;
    let addrs = addrs
        .split(',')
        .map(|a| {
            a.trim()
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|e| format!("{s:?}: {a:?} is not an IP address ({e})"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((host.to_string(), addrs))
}

fn parse_bwlimit(s: &str) -> Result<u64, String> {
    mirrorsync::config::parse_rate(s)
        .ok_or_else(|| format!("bad rate {s:?}; write it like \"40Mbit\" or \"5MB/s\""))
}

fn print_plan(r: &MirrorReport) {
    let p: &PlanSummary = &r.plan;
    println!("{} (dry run):", r.name);
    println!(
        "  fetch  {:>7} files {:>12}",
        p.fetch_files,
        bytes(p.fetch_bytes)
    );
    println!(
        "  keep   {:>7} files {:>12}",
        p.link_files,
        bytes(p.link_bytes)
    );
    println!(
        "  delete {:>7} files {:>12}",
        p.delete_files,
        bytes(p.delete_bytes)
    );
    if r.files_unverified > 0 {
        println!(
            "  unverified {:>3} files (no checksum upstream)",
            r.files_unverified
        );
    }
    for (path, until) in r.grace.iter().take(20) {
        let until = jiff::Timestamp::from_second(*until)
            .map(|t| t.to_string())
            .unwrap_or_default();
        println!("  kept for grace until {until}: {path}");
    }
    if r.grace.len() > 20 {
        println!("  ... and {} more kept for grace", r.grace.len() - 20);
    }
}

fn print_summary(r: &MirrorReport) {
    match r.outcome {
        RunOutcome::Unchanged => println!(
            "{}: upstream unchanged ({} request(s), {:.2}s)",
            r.name, r.requests, r.seconds
        ),
        _ => println!(
            "{}: published {} — fetched {} files ({}), linked {}, {} in grace, {} deleted, {:.1}s",
            r.name,
            r.snapshot.as_deref().unwrap_or("-"),
            r.files_fetched,
            bytes(r.bytes_fetched),
            r.plan.link_files,
            r.plan.grace_files,
            r.plan.delete_files,
            r.seconds
        ),
    }
    if r.files_unverified > 0 {
        println!(
            "{}: {} file(s) unverified: no checksum upstream, compared by size and ETag/date",
            r.name, r.files_unverified
        );
    }
    if let Some(b) = &r.bucket {
        println!(
            "{}: bucket {} at {} — uploaded {} objects ({}), {} unchanged, {} deleted, {} PUT requests, {:.1}s",
            r.name,
            b.url,
            b.snapshot.as_deref().unwrap_or("-"),
            b.uploaded,
            bytes(b.uploaded_bytes),
            b.unchanged,
            b.deleted,
            b.put_requests,
            b.seconds
        );
    }
}

fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Progress on a terminal; nothing otherwise.
struct CliReporter {
    bar: Option<Mutex<Option<ProgressBar>>>,
}

impl CliReporter {
    fn new(enabled: bool) -> CliReporter {
        CliReporter {
            bar: enabled.then(|| Mutex::new(None)),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar
            && let Ok(mut b) = bar.lock()
            && let Some(b) = b.take()
        {
            b.finish_and_clear();
        }
    }
}

impl Reporter for CliReporter {
    fn on_plan(&self, mirror: &str, summary: &PlanSummary) {
        let Some(bar) = &self.bar else { return };
        let pb = ProgressBar::new(summary.fetch_bytes);
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(mirror.to_string());
        if let Ok(mut b) = bar.lock() {
            if let Some(old) = b.take() {
                old.finish_and_clear();
            }
            *b = Some(pb);
        }
    }

    fn on_progress(&self, n: u64) {
        if let Some(bar) = &self.bar
            && let Ok(b) = bar.lock()
            && let Some(b) = b.as_ref()
        {
            b.inc(n);
        }
    }

    fn on_warning(&self, mirror: &str, message: &str) {
        if self.bar.is_some() {
            eprintln!("mirrorsync: {mirror}: {message}");
        }
    }
}
