//! `mirrorsync completions` and `mirrorsync man`: the command line, documented.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
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

/// The man pages (roff): `mirrorsync(1)` on stdout, or with `dir` one page for
/// `mirrorsync` and one per subcommand (`mirrorsync-sync.1`...) written there.
pub fn man(dir: Option<&Path>) -> anyhow::Result<u8> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = dir else {
        std::io::stdout().write_all(&page(&cmd)?)?;
        return Ok(exit::OK);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pages = std::iter::once(&cmd).chain(cmd.get_subcommands().filter(|s| !s.is_hide_set()));
    for c in pages {
        let file = dir.join(clap_mangen::Man::new(c.clone()).get_filename());
        crate::atomic::write(&file, &page(c)?)
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(exit::OK)
}

/// One page: what clap knows of the command, then what it does not.
fn page(cmd: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    out.extend_from_slice(COMMON_SECTIONS.as_bytes());
    Ok(out)
}

/// EXIT STATUS, FILES and ENVIRONMENT, the same on every page (roff).
const COMMON_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success: every mirror synced (or was unchanged), verified or probed healthy; also a
push trigger queued behind a running sync.
.TP
\fB1\fR
A mirror failed (its served tree is left as it was), or the command failed at run time.
.TP
\fB2\fR
Usage or configuration error: nothing was done.
.TP
\fB3\fR
Another run holds the lock of the mirror root; this run did nothing.
.TP
\fB4\fR
\fBverify\fR found damaged files.
.TP
\fB5\fR
\fBprobe\fR found a mirror unhealthy.
.SH FILES
.TP
\fI/etc/mirrorsync/mirrors.toml\fR
The configuration, unless \fB\-c\fR or \fBMIRRORSYNC_CONFIG\fR names another; then
\fI./mirrors.toml\fR.
.TP
\fIROOT/NAME\fR
The served tree of mirror NAME: a symbolic link to its published snapshot.
.TP
\fIROOT/.mirrorsync/NAME/snapshots/\fR
The published snapshots, kept for rollback, and \fI.staging\fR, the next one.
.TP
\fIROOT/.mirrorsync/NAME/content/\fR
Files shared by every snapshot (an apt pool, by\-hash indices, dated image releases).
.TP
\fIROOT/.mirrorsync/NAME/state.json\fR
What the last runs did: times, outcome, error, validators of the signed files.
.TP
\fIROOT/.mirrorsync/metrics.prom\fR
The runs' figures in Prometheus text format, for node_exporter's textfile collector.
.TP
\fIROOT/.mirrorsync/lock\fR
The run lock (flock); it names the holder's pid.
.SH ENVIRONMENT
.TP
\fBMIRRORSYNC_CONFIG\fR
The configuration file, when \fB\-c\fR is not given.
.TP
\fBRUST_LOG\fR
What is logged, as a tracing filter (e.g. \fImirrorsync=debug\fR); overrides \fB\-v\fR and \fB\-q\fR.
.TP
\fBNO_COLOR\fR
No colour in messages, even on a terminal.
.TP
\fBJOURNAL_STREAM\fR
Set by systemd: messages then carry their syslog priority, and each mirror's run logs one line.
.TP
\fBAWS_ACCESS_KEY_ID\fR, \fBAWS_SECRET_ACCESS_KEY\fR
The bucket's credentials, when the configuration names no \fBs3_credentials\fR file.
.TP
\fBSSH_ORIGINAL_COMMAND\fR
Set by an ssh forced command: the sync was pushed by the upstream (\fB\-\-trigger push\fR).
"#;
