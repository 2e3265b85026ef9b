//! The command line, as clap derives it. Public because `man` and `completions`
//! render it, and the binary parses it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "mirrorsync",
    version,
    about = "Keep apt repositories and OS image trees mirrored: verified, staged, published atomically"
)]
pub struct Cli {
    /// The config file [default: $MIRRORSYNC_CONFIG, then /etc/mirrorsync/mirrors.toml,
    /// then ./mirrors.toml]
    #[arg(short, long, global = true)]
    pub config: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `HOST=ADDR[,ADDR]`, as `--resolve` takes it.
pub type Resolve = (String, Vec<std::net::IpAddr>);

#[derive(Subcommand)]
pub enum Command {
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
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// Write the status page (HTML, as written after each run) to this file
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
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
        /// Accept this weakness of apt's signature policy for --keyring, as a
        /// mirror's allow_weak_signatures does (rsa1024, dsa, sha1-self-signatures,
        /// sha224, v3-signatures); repeatable
        #[arg(
            long = "allow-weak-signature",
            value_name = "WEAKNESS",
            requires = "keyring"
        )]
        allow_weak_signatures: Vec<crate::apt::signature::Weakness>,
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
    /// Validate the config and exit (0, or 2 with the errors); says what it read (each
    /// mirror, and the auth.conf entry its login comes from) on a terminal or with -v
    CheckConfig,
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) on stdout, or write every page into a directory
    Man {
        /// Write mirrorsync.1 and a page per subcommand (mirrorsync-sync.1...) here
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Build a signed repository, serve it on loopback, mirror it, change it, resync
    #[cfg(feature = "demo")]
    Demo {
        /// Where to put it [default: ./demo-mirror]
        dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TriggerArg {
    Cron,
    Manual,
    Push,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("bad duration {s:?} ({e}); write it like \"10s\" or \"24h\""))
}

fn parse_resolve(s: &str) -> Result<Resolve, String> {
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
    crate::config::parse_rate(s)
        .ok_or_else(|| format!("bad rate {s:?}; write it like \"40Mbit\" or \"5MB/s\""))
}
