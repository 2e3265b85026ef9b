//! Where messages go and how they look, for the three places a run ends up:
//! - a terminal: colour (unless NO_COLOR), warnings and errors, above the progress
//!   bar (which steps aside while a line prints);
//! - the journal, under a systemd unit (stderr is the stream JOURNAL_STREAM names):
//!   no colour, no timestamp of our own, each line with its syslog priority (`<3>`
//!   error, `<4>` warning, `<6>` info) so `journalctl -p err` finds the failures, and
//!   info by default, so each mirror's run leaves a line saying what it did;
//! - anything else (cron mails stderr): no colour, errors only: success is silent.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use super::args::LogFormat;

/// Where stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Terminal,
    Journal,
    Other,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Where stderr goes, decided once.
pub fn sink() -> Sink {
    *SINK.get_or_init(|| {
        if std::io::stderr().is_terminal() {
            Sink::Terminal
        } else if stderr_is_journal() {
            Sink::Journal
        } else {
            Sink::Other
        }
    })
}

/// systemd's rule: JOURNAL_STREAM is `<device>:<inode>` of the stream it connected,
/// and only counts while stderr is still that stream (not a pipe a script set up).
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    // st_dev and st_ino are u64 here, narrower on some targets (armhf's libc).
    #[allow(clippy::unnecessary_cast)]
    let (st_dev, st_ino) = (stat.st_dev as u64, stat.st_ino as u64);
    dev.parse::<u64>().ok() == Some(st_dev) && ino.parse::<u64>().ok() == Some(st_ino)
}

/// Colour only for a person at a terminal who has not asked for none.
fn colour() -> bool {
    sink() == Sink::Terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The level logged without -v, -q or RUST_LOG.
fn default_level(verbose: u8, quiet: bool) -> &'static str {
    match (quiet, verbose, sink()) {
        (true, _, _) => "error",
        (_, 0, Sink::Terminal) => "warn",
        // The journal keeps each mirror's history: one info line per run.
        (_, 0, Sink::Journal) => "info",
        // Cron mails whatever is printed: retries that then worked are noise.
        (_, 0, Sink::Other) => "error",
        (_, 1, _) => "info",
        (_, _, _) => "debug",
    }
}

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the operator asked for more (-v): then the run says what it read.
pub fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    VERBOSE.store(verbose > 0, std::sync::atomic::Ordering::Relaxed);
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("mirrorsync={}", default_level(verbose, quiet)))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(AboveProgress);
    match (format, sink()) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Text, Sink::Journal) => builder
            .event_format(Prioritised(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_target(false)
                    .with_level(false),
            ))
            .init(),
        (LogFormat::Text, _) => builder.init(),
    }
}

/// The syslog priority the journal files a line of `level` under.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// An event format that starts each line with its `<priority>` (sd-daemon(3)).
struct Prioritised<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritised<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// stderr, with the progress bar out of the way while a line is written.
struct AboveProgress;

impl<'a> MakeWriter<'a> for AboveProgress {
    type Writer = AboveProgress;

    fn make_writer(&'a self) -> Self::Writer {
        AboveProgress
    }
}

impl Write for AboveProgress {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        super::progress::suspended(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// How bad a message printed for the operator is.
#[derive(Debug, Clone, Copy)]
pub enum Severity {
    Error,
    Warning,
    Notice,
}

/// Prints `text` for the operator on stderr: in the journal each line carries the
/// priority (`<3>` error, `<4>` warning, `<5>` notice); on a terminal the progress
/// bar steps aside; under cron a notice is not printed.
pub fn say(severity: Severity, text: &str) {
    // Cron mails whatever is printed: a notice (another run holds the lock, a push
    // was queued) is not worth a mail.
    if let (Sink::Other, Severity::Notice) = (sink(), severity) {
        return;
    }
    let prefix = match (sink(), severity) {
        (Sink::Journal, Severity::Error) => "<3>",
        (Sink::Journal, Severity::Warning) => "<4>",
        (Sink::Journal, Severity::Notice) => "<5>",
        _ => "",
    };
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    let _ = super::progress::suspended(|| std::io::stderr().write_all(out.as_bytes()));
}

/// An error for the operator: `mirrorsync: <text>`.
pub fn error(text: impl std::fmt::Display) {
    say(Severity::Error, &format!("mirrorsync: {text}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_the_journals_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }
}
