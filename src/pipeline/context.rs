//! What a run is asked to do, what it shares between mirrors, and what it reports.

use serde::Serialize;

use crate::config::Global;
use crate::plan::PlanSummary;
use crate::report::Reporter;
use crate::trace::Trigger;

/// How a run was asked to behave.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub verify_all: bool,
    pub allow_mass_delete: bool,
    pub trigger: Trigger,
}

/// Shared by the mirrors of one run.
pub struct RunContext<'a> {
    pub global: &'a Global,
    pub options: &'a SyncOptions,
    pub reporter: &'a dyn Reporter,
    /// The run's start, used for snapshot ids, grace and expiry checks.
    pub now: jiff::Timestamp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Upstream unchanged; nothing fetched or published.
    #[default]
    Unchanged,
    Published,
    DryRun,
}

/// What one mirror's run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorReport {
    pub name: String,
    pub outcome: RunOutcome,
    pub snapshot: Option<String>,
    pub plan: PlanSummary,
    pub files_fetched: u64,
    pub bytes_fetched: u64,
    pub files_total: u64,
    /// The bytes the published snapshot's files hold.
    pub bytes_total: u64,
    /// Image-tree files no checksum vouches for (compared by size and ETag/date).
    pub files_unverified: u64,
    pub requests: u64,
    pub seconds: f64,
    pub warnings: Vec<String>,
    pub pruned: Vec<String>,
    /// Newest upstream Release Date, RFC 3339.
    pub upstream_date: Option<String>,
    /// Files kept for grace, with the Unix time they go.
    pub grace: Vec<(String, i64)>,
    /// What publishing to the mirror's bucket did; None without `publish`, or when
    /// the bucket already held the snapshot.
    pub bucket: Option<crate::s3::BucketReport>,
}
