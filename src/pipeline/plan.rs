//! The plan of one run: the published manifest (read from disk in path order) joined
//! in one pass with what the kind wants (sorted), deciding per file: nothing to do
//! (unchanged in the shared content), link (an unchanged file the snapshot holds
//! itself), fetch, keep for grace or drop. The next manifest's lines are written as
//! the join goes. Memory is what changed, plus the indices and metadata the kind
//! holds, whatever the size of the pool.

use std::collections::{HashMap, HashSet};

use super::next::{BaseWriter, NextManifest};
use super::run::Run;
use super::source::{Changes, Content, Source};
use crate::manifest::{Entry, Reader};
use crate::merge::{Joined, MergeError, join};
use crate::plan::{Action, PlanSummary, Removals, Wanted};
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
    /// The published files and bytes that weigh for the mass-deletion guard.
    pub weighed: (u64, u64),
    /// The next manifest: the content and the files in grace, so far (taken by
    /// staging).
    pub next: Option<NextManifest>,
}

/// What the join pass collects besides the next manifest's lines.
#[derive(Default)]
struct Pass {
    actions: Vec<Action>,
    misses: Vec<Wanted>,
    removals: Removals,
    rewritten: Vec<RelPath>,
    shared_roots: Vec<RelPath>,
    shares: HashMap<String, bool>,
    weighed: (u64, u64),
    kept: (u64, u64),
}

/// Plans `content` (taken out of `changes`) against the published snapshot.
pub fn plan<S: Source>(
    run: &Run<'_>,
    source: &S,
    changes: &Changes,
    content: Content,
) -> anyhow::Result<Plan> {
    let area = run.area()?;
    let mut base = BaseWriter::new(&area.work)?;
    let mut pass = Pass::default();
    let keep = paths_staged_otherwise(changes);
    let published: Box<dyn Iterator<Item = Result<(RelPath, Entry), MergeError>>> =
        match &run.current {
            Some(c) => Box::new(Reader::open(&c.manifest_path)?.map(|r| r.map_err(Into::into))),
            None => Box::new(std::iter::empty()),
        };
    for joined in join(published, content.into_sorted()) {
        let j = joined?;
        if let Some(p) = &j.published
            && source.counts_for_guard(&j.path)
        {
            pass.weighed.0 += 1;
            pass.weighed.1 += p.size;
        }
        if j.wanted.is_some() {
            wanted_file(run, source, changes, &mut pass, &mut base, j)?;
        } else if !keep.contains(&j.path) {
            gone_file(run, source, &mut pass, &mut base, j)?;
        }
    }
    let mut actions = pass.actions;
    actions.extend(link_or_fetch(run, pass.misses)?);
    actions.sort_unstable_by(|a, b| a.wanted().path.cmp(&b.wanted().path));
    let mut summary = changes.summary.clone();
    summary.link_files += pass.kept.0;
    summary.link_bytes += pass.kept.1;
    summary.add_actions(&actions);
    let unverified_bytes = changes.unverified.iter().map(|u| u.size).sum::<u64>();
    summary.fetch_files += changes.unverified.len() as u64;
    summary.fetch_bytes += unverified_bytes;
    pass.removals.kept.sort_by(|a, b| a.0.cmp(&b.0));
    summary.add_removals(&pass.removals);
    Ok(Plan {
        fetch_bytes: crate::plan::fetch_bytes(&actions) + unverified_bytes,
        actions,
        removals: pass.removals,
        summary,
        rewritten: pass.rewritten,
        shared_roots: pass.shared_roots,
        weighed: pass.weighed,
        next: Some(base.finish()?),
    })
}

/// Paths the next snapshot holds that the content does not: never "gone".
fn paths_staged_otherwise(changes: &Changes) -> HashSet<&RelPath> {
    let mut keep: HashSet<&RelPath> = changes.staged.files.keys().collect();
    keep.extend(changes.unverified.iter().map(|u| &u.path));
    keep.extend(changes.metadata.iter().map(|m| &m.path));
    keep.extend(changes.written_last.iter());
    keep
}

/// A file the next snapshot wants: listed in it, and kept as published, linked, or
/// (with the rest of the misses) looked for elsewhere or fetched.
fn wanted_file<S: Source>(
    run: &Run<'_>,
    source: &S,
    changes: &Changes,
    pass: &mut Pass,
    base: &mut BaseWriter,
    j: Joined,
) -> anyhow::Result<()> {
    let Some(w) = j.wanted else {
        return Ok(());
    };
    base.push(&j.path, &w)?;
    let wanted = Wanted {
        path: j.path.clone(),
        size: w.size,
        sha256: w.sha256,
        source: j.path,
    };
    let same = j
        .published
        .as_ref()
        .is_some_and(|p| p.size == w.size && p.sha256 == w.sha256);
    let trusted = !changes.recheck.contains(&wanted.path) && !run.suspect.contains(&wanted.path);
    if same && trusted {
        if in_shared_content(run, pass, &wanted.path) {
            pass.kept.0 += 1;
            pass.kept.1 += w.size;
        } else {
            pass.actions.push(Action::Link {
                from: wanted.path.clone(),
                to: wanted,
            });
        }
        return Ok(());
    }
    if same {
        // Rechecked: the bytes must come from upstream, not from a copy.
        pass.actions.push(Action::Fetch(wanted));
        return Ok(());
    }
    if j.published.is_some() && source.fixed_content(&wanted.path) {
        pass.rewritten.push(wanted.path.clone());
    }
    pass.misses.push(wanted);
    Ok(())
}

/// Whether the published snapshot reaches `path` through the shared content, so the
/// next one does too with nothing to do (a snapshot of the previous layout holds its
/// own tree: its files are linked into the content once, which is the migration).
fn in_shared_content(run: &Run<'_>, pass: &mut Pass, path: &RelPath) -> bool {
    // --verify-all re-hashes every published file on its way into the next snapshot.
    if run.ctx.options.verify_all {
        return false;
    }
    let (Some(c), Ok(area)) = (&run.current, run.area()) else {
        return false;
    };
    let Some(root) = area.shared.rule.root_of(path.as_str()) else {
        return false;
    };
    // One look at the snapshot per shared directory, not one per file.
    if let Some(s) = pass.shares.get(root) {
        return *s;
    }
    let s = crate::shared::shares(&c.dir, root);
    pass.shares.insert(root.to_string(), s);
    if s {
        pass.shared_roots.push(path.clone());
    }
    s
}

/// A published file the next snapshot does not want: kept for grace (listed, with
/// since when it is gone) or dropped.
fn gone_file<S: Source>(
    run: &Run<'_>,
    source: &S,
    pass: &mut Pass,
    base: &mut BaseWriter,
    j: Joined,
) -> anyhow::Result<()> {
    let Some(entry) = j.published else {
        return Ok(());
    };
    if entry.gone_since.is_none() {
        pass.removals.newly_gone.push((j.path.clone(), entry.size));
    }
    let kept = crate::plan::in_grace(&entry, run.ctx.now.as_second(), run.ctx.global.grace);
    match kept {
        // Some files must never outlive upstream's copy: an old InRelease next to a
        // new Release is exactly the mix that gives clients hash sum mismatches.
        // A suspect's bytes may not be what its entry says: not carried on unchecked.
        Some(kept) if !source.never_in_grace(&j.path) && !run.suspect.contains(&j.path) => {
            base.push(&j.path, &kept)?;
            pass.removals.kept.push((j.path, kept));
        }
        _ => pass.removals.dropped.push((j.path, entry.size)),
    }
    Ok(())
}

/// The files the published snapshot does not hold as they are: linked from another
/// published path with the same content (a by-hash copy, a moved package), found in
/// one more pass over the manifest, else fetched.
fn link_or_fetch(run: &Run<'_>, misses: Vec<Wanted>) -> anyhow::Result<Vec<Action>> {
    let Some(c) = &run.current else {
        return Ok(misses.into_iter().map(Action::Fetch).collect());
    };
    if misses.is_empty() {
        return Ok(Vec::new());
    }
    let mut elsewhere: HashMap<[u8; 32], Option<(RelPath, u64)>> =
        misses.iter().map(|w| (w.sha256, None)).collect();
    let found =
        crate::manifest::entries_with_digest(&c.manifest_path, &|d| elsewhere.contains_key(d))?;
    for (p, e) in found {
        // A suspect's bytes may not be its entry's: never a source.
        if run.suspect.contains(&p) {
            continue;
        }
        if let Some(slot @ None) = elsewhere.get_mut(&e.sha256) {
            *slot = Some((p, e.size));
        }
    }
    Ok(misses
        .into_iter()
        .map(|w| match elsewhere.get(&w.sha256) {
            Some(Some((from, size))) if *size == w.size => Action::Link {
                from: from.clone(),
                to: w,
            },
            _ => Action::Fetch(w),
        })
        .collect())
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
         fetched again and verified, and put in place as the new snapshot is published; \
         the kept snapshots share the file, so they serve the new bytes too, and clients \
         still holding the previous index or checksums will get a hash sum mismatch for them",
        names.join(", ")
    ))
}
