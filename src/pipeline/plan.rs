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
    /// Files upstream gave new content under a name whose content should never
    /// change (an apt pool file): said out loud, since clients holding the previous
    /// index get a hash mismatch for them once the new snapshot is served.
    pub rewritten: Vec<RelPath>,
    /// A file of each shared directory the next snapshot reaches without a link made
    /// for it: its symlink is made before publishing.
    pub shared_roots: Vec<RelPath>,
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
    let shared_roots = drop_shared_links(run, &mut actions);
    let unverified_bytes = changes.unverified.iter().map(|u| u.size).sum::<u64>();
    summary.fetch_files += changes.unverified.len() as u64;
    summary.fetch_bytes += unverified_bytes;
    let removals = removals(run, source, changes);
    summary.add_removals(&removals);
    Plan {
        rewritten: rewritten(run, source, &actions),
        shared_roots,
        fetch_bytes: plan::fetch_bytes(&actions) + unverified_bytes,
        actions,
        removals,
        summary,
    }
}

/// Unchanged files in the shared content are where the next snapshot needs them
/// already: no link to make, so a run's work is what changed. (A published snapshot
/// of the previous layout holds its own tree: its files are linked into the content
/// once, which is the migration.)
fn drop_shared_links(run: &Run<'_>, actions: &mut Vec<Action>) -> Vec<RelPath> {
    // --verify-all re-hashes every published file on its way into the next snapshot.
    if run.ctx.options.verify_all {
        return Vec::new();
    }
    let (Some(c), Ok(area)) = (&run.current, run.area()) else {
        return Vec::new();
    };
    let Some(shared) = &area.shared else {
        return Vec::new();
    };
    // One look at the snapshot per shared directory, not one per file.
    let mut shares: std::collections::HashMap<String, bool> = Default::default();
    let mut roots = Vec::new();
    actions.retain(|a| match a {
        Action::Link { from, to } if *from == to.path => {
            let Some(root) = shared.rule.root_of(from.as_str()) else {
                return true;
            };
            if let Some(s) = shares.get(root) {
                return !s;
            }
            let s = crate::shared::shares(&c.dir, root);
            shares.insert(root.to_string(), s);
            if s {
                roots.push(from.clone());
            }
            !s
        }
        _ => true,
    });
    roots
}

/// Fixed-content files whose published copy differs from what upstream now offers.
/// A file linked from its own path is unchanged by construction, so only the
/// fetches and the links from elsewhere (a delta's few) are looked up.
fn rewritten<S: Source>(run: &Run<'_>, source: &S, actions: &[Action]) -> Vec<RelPath> {
    let published = run.published();
    actions
        .iter()
        .filter(|a| !matches!(a, Action::Link { from, to } if *from == to.path))
        .map(Action::wanted)
        .filter(|w| {
            published
                .files
                .get(&w.path)
                .is_some_and(|old| old.sha256 != w.sha256 || old.size != w.size)
                && source.fixed_content(&w.path)
        })
        .map(|w| w.path.clone())
        .collect()
}

/// The warning for files rewritten upstream, the first few named.
pub fn rewritten_warning(paths: &[RelPath]) -> Option<String> {
    const SHOWN: usize = 5;
    let first = paths.first()?;
    let names: Vec<&str> = paths.iter().take(SHOWN).map(RelPath::as_str).collect();
    let more = match paths.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let what = if paths.len() == 1 {
        format!("{first} has")
    } else {
        format!("{} files have", paths.len())
    };
    Some(format!(
        "upstream rewrote files in place: {what} new content under the same name ({}{more}); \
         staged again and verified against the index; the pool is shared by the kept \
         snapshots, so they serve the new bytes too, and clients still using the previous \
         index will get a hash sum mismatch for them",
        names.join(", ")
    ))
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
