//! The `mirrorsync` command line: parse, set up logging, call [`cli::run`], map the
//! result to an exit code. Nothing else lives here.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use mirrorsync::cli::{self, args::Cli, args::LogFormat, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet, cli.log_format);
    let code = match cli::run(cli) {
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
