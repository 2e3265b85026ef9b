//! The plan of one run (pure): what each file needs (link or fetch), what upstream
//! no longer has (kept for grace or dropped), and the summary the operator sees.

use std::collections::HashSet;

use super::run::Run;
use super::source::{Changes, Source};
use crate::plan::{self, Action, PlanSummary, Removals, Wanted};
use crate::relpath::RelPath;

pub struct Plan {
    pub actions: Vec<Action>,
    pub removals: Removals,
    pub summary: PlanSummary,
    /// Bytes the content's downloads will take on disk.
    pub fetch_bytes: u64,
}

/// Plans `changes` against the published snapshot.
pub fn plan<S: Source>(run: &Run<'_>, source: &S, changes: &Changes) -> Plan {
    let published = run.published();
    let wanted = changes.content.iter().map(|(p, e)| Wanted {
        path: p.clone(),
        size: e.size,
        sha256: e.sha256,
        source: p.clone(),
    });
    let mut actions = plan::plan_owned(wanted, published);
    if !changes.recheck.is_empty() {
        for a in &mut actions {
            if let Action::Link { to, .. } = a
                && changes.recheck.contains(&to.path)
            {
                *a = Action::Fetch(to.clone());
            }
        }
    }
    let mut summary = changes.summary.clone();
    summary.add_actions(&actions);
    let unverified_bytes = changes.unverified.iter().map(|u| u.size).sum::<u64>();
    summary.fetch_files += changes.unverified.len() as u64;
    summary.fetch_bytes += unverified_bytes;
    let removals = removals(run, source, changes);
    summary.add_removals(&removals);
    Plan {
        fetch_bytes: plan::fetch_bytes(&actions) + unverified_bytes,
        actions,
        removals,
        summary,
    }
}

/// What the published snapshot holds that the next one does not.
fn removals<S: Source>(run: &Run<'_>, source: &S, changes: &Changes) -> Removals {
    let mut keep: HashSet<&RelPath> = changes.content.keys().collect();
    keep.extend(changes.staged.files.keys());
    keep.extend(changes.unverified.iter().map(|u| &u.path));
    keep.extend(changes.metadata.iter().map(|m| &m.path));
    keep.extend(changes.written_last.iter());
    let ctx = run.ctx;
    let mut removals = plan::plan_removals(
        &keep,
        run.published(),
        ctx.now.as_second(),
        ctx.global.grace,
    );
    // Some files must never outlive upstream's copy: an old InRelease next to a new
    // Release is exactly the mix that gives clients hash sum mismatches.
    let (stale, kept): (Vec<_>, Vec<_>) = removals
        .kept
        .into_iter()
        .partition(|(p, _)| source.never_in_grace(p));
    removals.kept = kept;
    removals
        .dropped
        .extend(stale.into_iter().map(|(p, e)| (p, e.size)));
    removals
}
