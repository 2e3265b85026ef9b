//! One run of one apt mirror: the shared pipeline with the apt kind, retried while
//! the upstream is mid-update (within `upstream_busy_wait`) and once if it moves.
//!
//! 1. Each suite's InRelease (else Release + Release.gpg) is fetched, conditionally
//!    when the config is unchanged, and verified; an expired or rolled-back Release is
//!    refused. If every suite is unchanged the run ends there: one request per suite.
//! 2. The indices the config wants are planned against the published snapshot and
//!    staged; by-hash twins are staged with them.
//! 3. Packages and Sources are streamed into the pool, which the shared run plans,
//!    guards, stages and publishes; Release files and traces go in last.

use std::time::Duration;

use super::retry::{UpstreamBusy, UpstreamMoved, busy_delay};
use super::source::AptSource;
use crate::config::{AptMirror, Mirror};
use crate::pipeline::{self, MirrorReport, RunContext};

pub async fn sync_apt(
    ctx: &RunContext<'_>,
    mirror: &Mirror,
    apt: &AptMirror,
) -> anyhow::Result<MirrorReport> {
    let mut restarted = false;
    let mut waited = Duration::ZERO;
    let mut polls = 0u32;
    loop {
        let source = AptSource::new(mirror, apt)?;
        match pipeline::run(ctx, mirror, source).await {
            Err(e) if e.downcast_ref::<UpstreamBusy>().is_some() => {
                // Copying an archive mid-update copies its half state; wait for it
                // within the budget instead.
                let budget = ctx.global.upstream_busy_wait;
                if waited >= budget {
                    return Err(e.context(format!(
                        "waited {} for it to finish (upstream_busy_wait)",
                        humantime::format_duration(budget)
                    )));
                }
                let delay = busy_delay(mirror.network.retry_delay, polls, budget - waited);
                tracing::warn!(mirror = %mirror.name, "{e}; waiting {delay:?}");
                ctx.reporter
                    .on_warning(&mirror.name, &format!("{e}; waiting"));
                tokio::time::sleep(delay).await;
                waited += delay;
                polls += 1;
            }
            Err(e) if !restarted && e.downcast_ref::<UpstreamMoved>().is_some() => {
                // Publishing a mix of two upstream states is what gives clients hash
                // sum mismatches; start over, once, from the new Release.
                tracing::warn!(mirror = %mirror.name, "{e}; restarting from the new Release");
                ctx.reporter.on_warning(
                    &mirror.name,
                    &format!("{e}; restarted from the new Release"),
                );
                restarted = true;
            }
            other => return other,
        }
    }
}
