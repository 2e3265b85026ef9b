//! `mirrorsync completions` and `mirrorsync man`: the command line, documented.

use clap::CommandFactory;

use super::args::Cli;
use super::exit;

/// Shell completions on stdout.
pub fn completions(shell: clap_complete::Shell) -> u8 {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "mirrorsync",
        &mut std::io::stdout(),
    );
    exit::OK
}

/// The man page (roff) on stdout.
pub fn man() -> anyhow::Result<u8> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(exit::OK)
}
