//! What makes an apt run wait or start over: an upstream mid-update, or one that
//! published a new Release while the run fetched the old one's indices.

use std::time::Duration;

/// The upstream published a new Release while we fetched its indices.
#[derive(Debug, thiserror::Error)]
#[error("upstream {url} changed while this run was fetching its indices")]
pub(super) struct UpstreamMoved {
    pub url: String,
}

/// The upstream is itself mid-update (ftpsync's Archive-Update-in-Progress marker).
#[derive(Debug, thiserror::Error)]
#[error("upstream is in the middle of an update ({marker} is present)")]
pub(super) struct UpstreamBusy {
    pub marker: String,
}

/// Polls for the end of an upstream update at most this far apart.
const MAX_BUSY_POLL: Duration = Duration::from_secs(60);

/// How long to wait before looking again at a busy upstream: doubling from the
/// mirror's retry delay, at most MAX_BUSY_POLL, never past what is left of the budget.
pub(super) fn busy_delay(retry_delay: Duration, polls: u32, left: Duration) -> Duration {
    retry_delay
        .saturating_mul(1 << polls.min(16))
        .min(MAX_BUSY_POLL)
        .min(left)
}
