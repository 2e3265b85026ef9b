//! The progress bar a sync shows on a terminal.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::plan::PlanSummary;
use crate::report::Reporter;

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
            eprintln!("mirrorsync: {mirror}: {message}");
        }
    }
}
