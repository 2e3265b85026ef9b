//! A Release's dates: refused once expired (Valid-Until) or older than the one
//! published (a rollback).

use anyhow::bail;

use super::release::{self, Release};
use crate::config::AptMirror;

/// The Valid-Until of a Release past it, when the mirror checks it.
fn expired(release: &Release, apt: &AptMirror, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    release
        .valid_until
        .filter(|until| apt.check_valid_until && *until < now)
}

/// An unchanged upstream whose Release has expired leaves a mirror apt refuses: that
/// is a failure to report, not a no-op.
pub(super) fn check_still_valid(
    release: &Release,
    apt: &AptMirror,
    now: jiff::Timestamp,
) -> anyhow::Result<()> {
    if let Some(until) = expired(release, apt, now) {
        bail!(
            "the published Release expired at {} (Valid-Until) and upstream has not published a new one",
            release::format_release_date(until)
        );
    }
    Ok(())
}

/// Refuses an expired Release and one older than what is published (a rollback,
/// which could pin clients to packages with known holes).
pub(super) fn check_dates(
    release: &Release,
    apt: &AptMirror,
    published: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> anyhow::Result<()> {
    if let Some(until) = expired(release, apt, now) {
        bail!(
            "Release expired: Valid-Until {} is in the past (set check_valid_until = false to mirror it anyway)",
            release::format_release_date(until)
        );
    }
    if apt.allow_rollback {
        return Ok(());
    }
    let (Some(new), Some(old)) = (release.date, published) else {
        return Ok(());
    };
    if new < old {
        bail!(
            "Release Date {} is older than the published {}: refusing a rollback (set allow_rollback = true to accept it)",
            release::format_release_date(new),
            release::format_release_date(old)
        );
    }
    Ok(())
}
