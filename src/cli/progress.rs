//! The progress bar a sync shows on a terminal.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::plan::PlanSummary;
use crate::report::Reporter;

/// The bar on screen, if any: lines printed meanwhile go above it.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `print` with the progress bar (if one is on screen) out of the way.
pub fn suspended<T>(print: impl FnOnce() -> T) -> T {
    let shown = SHOWN.lock().ok().and_then(|b| b.clone());
    match shown {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

fn show(bar: Option<ProgressBar>) {
    if let Ok(mut shown) = SHOWN.lock() {
        *shown = bar;
    }
}

/// Progress on a terminal; nothing otherwise.
pub struct CliReporter {
    bar: Option<Mutex<Option<ProgressBar>>>,
}

impl CliReporter {
    pub fn new(enabled: bool) -> CliReporter {
        CliReporter {
            bar: enabled.then(|| Mutex::new(None)),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar
            && let Ok(mut b) = bar.lock()
            && let Some(b) = b.take()
        {
            b.finish_and_clear();
        }
        show(None);
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
            show(Some(pb.clone()));
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
            super::logging::say(
                super::logging::Severity::Warning,
                &format!("mirrorsync: {mirror}: {message}"),
            );
        }
    }
}
