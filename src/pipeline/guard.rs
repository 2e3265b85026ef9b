//! The checks between a plan and the disk: a plan that deletes too much is refused
//! (an upstream that lost its pool must not empty the mirror), and so is one whose
//! downloads cannot fit.

use anyhow::bail;

use super::plan::Plan;
use super::run::{Run, StagingArea};
use super::source::Source;
use crate::plan;

/// Refuses to publish a mass deletion unless the operator allowed it.
pub fn mass_delete<S: Source>(run: &Run<'_>, source: &S, plan: &Plan) -> anyhow::Result<()> {
    let counts = |p: &crate::relpath::RelPath| source.counts_for_guard(p);
    if let Some(why) = plan::deletes_too_much(
        &plan.removals,
        plan.weighed,
        run.ctx.global.max_delete_ratio,
        &counts,
    ) && !run.ctx.options.allow_mass_delete
    {
        bail!(
            "{why}; refusing to publish (rerun with --allow-mass-delete if upstream really removed them)"
        );
    }
    Ok(())
}

/// Refuses downloads that cannot fit on the staging disk.
pub fn free_space(area: &StagingArea, plan: &Plan) -> anyhow::Result<()> {
    crate::snapshot::check_free_space(&area.staging, plan.fetch_bytes)
}
