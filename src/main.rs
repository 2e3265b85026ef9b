//! The `mirrorsync` command line: parse, set up logging, call [`cli::run`], map the
//! result to an exit code. Nothing else lives here.

use std::process::ExitCode;

use clap::Parser;
use mirrorsync::cli::{self, args::Cli, exit, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    let code = match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            logging::error(format_args!("{e:#}"));
            exit::error_code(&e)
        }
    };
    ExitCode::from(code)
}
