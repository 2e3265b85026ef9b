//! How the library tells the front end what it is doing, without printing.
//!
//! The CLI implements [`Reporter`] with indicatif bars on a terminal and nothing under
//! cron; the demo and tests use their own. Every method has a silent default.

use crate::plan::PlanSummary;

pub trait Reporter: Send + Sync {
    fn on_mirror_start(&self, _mirror: &str) {}
    /// The plan of a mirror is known (after its indices were read).
    fn on_plan(&self, _mirror: &str, _summary: &PlanSummary) {}
    fn on_fetch_start(&self, _path: &str, _size: u64) {}
    /// Bytes received since the last call, across all downloads.
    fn on_progress(&self, _bytes: u64) {}
    fn on_fetch_done(&self, _path: &str) {}
    fn on_warning(&self, _mirror: &str, _message: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Reporter for Silent {}
