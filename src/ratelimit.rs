//! A shared bandwidth cap for all downloads of a run (`bandwidth_limit`).
//!
//! A virtual-clock token bucket: each chunk pushes the clock forward by its transfer
//! time at the configured rate, and a download sleeps while the clock is ahead of now
//! by more than a small burst. Concurrent downloads share one clock, so the total rate
//! holds whatever the concurrency.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead of the rate a burst may run before anyone sleeps.
const BURST: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_sec: f64,
    clock: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            clock: Mutex::new(None),
        }
    }

    /// Accounts for `bytes` just received and waits as long as the cap requires.
    pub async fn acquire(&self, bytes: u64) {
        let wait = {
            let mut clock = match self.clock.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            let start = clock.map_or(now, |c| c.max(now));
            let next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
            *clock = Some(next);
            next.saturating_duration_since(now + BURST)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_advances_by_transfer_time() {
        let l = RateLimiter::new(1000);
        let t0 = tokio::time::Instant::now();
        for _ in 0..10 {
            l.acquire(500).await;
        }
        // 5000 bytes at 1000 B/s is 5 s, less the burst allowance.
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(4700), "{took:?}");
    }
}
