//! Exit codes, as DESIGN.md fixes them, and how a run that never started maps to one.

use crate::sync::RunError;

pub const OK: u8 = 0;
pub const MIRROR_FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const LOCKED: u8 = 3;
pub const DAMAGED: u8 = 4;
pub const UNHEALTHY: u8 = 5;

/// Says why a run did not start, and the exit code for it.
pub fn run_error_code(e: RunError) -> u8 {
    eprintln!("mirrorsync: {e}");
    match e {
        // Queued behind the running sync, which will do the work: not a failure.
        RunError::Queued(_) => OK,
        RunError::Locked(_) => LOCKED,
        RunError::UnknownMirror(_) => USAGE,
    }
}
