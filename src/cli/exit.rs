//! Exit codes, as DESIGN.md fixes them, and how a run that never started maps to one.

use crate::lock::LockError;
use crate::sync::RunError;

pub const OK: u8 = 0;
/// A mirror failed, or the command failed at run time (not the command line's fault).
pub const MIRROR_FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const LOCKED: u8 = 3;
pub const DAMAGED: u8 = 4;
pub const UNHEALTHY: u8 = 5;

/// A mistake of the command line found only while running (a directory the demo may
/// not use): exit 2, not a run-time failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error `cli::run` returned: 2 for a [`UsageError`], else 1.
pub fn error_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        USAGE
    } else {
        MIRROR_FAILED
    }
}

/// Says why a run did not start, and the exit code for it.
pub fn run_error_code(e: RunError) -> u8 {
    let code = code_of(&e);
    let text = format!("{:#}", anyhow::Error::new(e));
    match code {
        OK | LOCKED => super::logging::say(
            super::logging::Severity::Notice,
            &format!("mirrorsync: {text}"),
        ),
        _ => super::logging::error(text),
    }
    code
}

/// The exit code of a run that did not start.
pub fn code_of(e: &RunError) -> u8 {
    match e {
        // Queued behind the running sync, which will do the work: not a failure.
        RunError::Queued(_) => OK,
        // Only another run really holding the lock is the "did nothing, fine" code
        // that units and cron take for success; a lock file that cannot be opened
        // is a failure like any other.
        RunError::Locked(LockError::Held { .. }) => LOCKED,
        RunError::Locked(LockError::Io { .. }) => MIRROR_FAILED,
        RunError::UnknownMirror(_) => USAGE,
    }
}
