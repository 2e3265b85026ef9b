//! The probe's verdicts as a terminal table, a JSON document and Prometheus text.
//!
//! JSON (`--json`), one object per mirror:
//! `{"mirrors": [{"url", "kind", "healthy", "summary", "seconds", "families": [{"family":
//! "ipv4"|"ipv6", "addresses": [..], "healthy": bool|null, "freshness": str|null,
//! "age_seconds": int|null, "behind_seconds": int|null, "checks": [{"name", "ok",
//! "detail"}]}]}], "healthy": bool}`.

use std::fmt::{Display, Write};

use super::{FamilyReport, MirrorReport};
use crate::promtext::Exposition;

pub fn json(reports: &[MirrorReport]) -> String {
    let doc = serde_json::json!({
        "healthy": reports.iter().all(|r| r.healthy),
        "mirrors": reports,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The text exposition format, for node_exporter's textfile collector or a pushgateway.
pub fn prometheus(reports: &[MirrorReport]) -> String {
    let mut out = Exposition::new();
    let mut healthy = out.family(
        "mirrorsync_probe_healthy",
        "gauge",
        "1 if the mirror passed every check on every address family it has.",
    );
    for r in reports {
        healthy.sample(&[("mirror", &r.url)], u8::from(r.healthy));
    }
    per_family(
        &mut out,
        "mirrorsync_probe_family_healthy",
        "1 if the mirror passed over this address family; absent without an address.",
        reports,
        |f| f.healthy.map(u8::from),
    );
    checks(&mut out, reports);
    per_family(
        &mut out,
        "mirrorsync_probe_age_seconds",
        "Age of the mirror's trace (or Release).",
        reports,
        |f| f.age_seconds,
    );
    per_family(
        &mut out,
        "mirrorsync_probe_behind_seconds",
        "How far the mirror's Release is behind the upstream's.",
        reports,
        |f| f.behind_seconds,
    );
    let mut duration = out.family(
        "mirrorsync_probe_duration_seconds",
        "gauge",
        "Time the probe of the mirror took.",
    );
    for r in reports {
        duration.sample(&[("mirror", &r.url)], format_args!("{:.3}", r.seconds));
    }
    out.finish()
}

/// A gauge with a sample per mirror and address family, where `value` has one.
fn per_family<T: Display>(
    out: &mut Exposition,
    name: &str,
    help: &str,
    reports: &[MirrorReport],
    value: impl Fn(&FamilyReport) -> Option<T>,
) {
    let mut family = out.family(name, "gauge", help);
    for r in reports {
        for f in &r.families {
            if let Some(v) = value(f) {
                family.sample(&[("mirror", &r.url), ("family", f.family.as_str())], v);
            }
        }
    }
}

/// `mirrorsync_probe_check_ok`: a sample per mirror, address family and check.
fn checks(out: &mut Exposition, reports: &[MirrorReport]) {
    let mut family = out.family(
        "mirrorsync_probe_check_ok",
        "gauge",
        "1 if the check passed.",
    );
    for r in reports {
        for f in &r.families {
            for c in &f.checks {
                let labels = [
                    ("mirror", r.url.as_str()),
                    ("family", f.family.as_str()),
                    ("check", c.name.as_str()),
                ];
                family.sample(&labels, u8::from(c.ok));
            }
        }
    }
}

/// One block per mirror: its verdict, then each family's checks.
pub fn table(reports: &[MirrorReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let mark = if r.healthy { "OK  " } else { "FAIL" };
        let _ = writeln!(
            out,
            "{mark} {} [{}] {} ({:.2}s)",
            r.url, r.kind, r.summary, r.seconds
        );
        for f in &r.families {
            if f.healthy.is_none() {
                let _ = writeln!(out, "     {}: no address", f.family.as_str());
                continue;
            }
            let fresh = f.freshness.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "     {} {}: freshness {fresh}",
                f.family.as_str(),
                f.addresses.join(",")
            );
            for c in &f.checks {
                let _ = writeln!(
                    out,
                    "       {} {:<28} {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
    }
    out
}
