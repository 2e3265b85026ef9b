//! The probe's verdicts as a terminal table, a JSON document and Prometheus text.
//!
//! JSON (`--json`), one object per mirror:
//! `{"mirrors": [{"url", "kind", "healthy", "summary", "seconds", "families": [{"family":
//! "ipv4"|"ipv6", "addresses": [..], "healthy": bool|null, "freshness": str|null,
//! "age_seconds": int|null, "behind_seconds": int|null, "checks": [{"name", "ok",
//! "detail"}]}]}], "healthy": bool}`.

use std::fmt::Write;

use super::MirrorReport;

pub fn json(reports: &[MirrorReport]) -> String {
    let doc = serde_json::json!({
        "healthy": reports.iter().all(|r| r.healthy),
        "mirrors": reports,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The text exposition format, for node_exporter's textfile collector or a pushgateway.
pub fn prometheus(reports: &[MirrorReport]) -> String {
    let mut out = String::new();
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let _ = writeln!(
        out,
        "# HELP mirrorsync_probe_healthy 1 if the mirror passed every check on every address family it has."
    );
    let _ = writeln!(out, "# TYPE mirrorsync_probe_healthy gauge");
    for r in reports {
        let _ = writeln!(
            out,
            "mirrorsync_probe_healthy{{mirror=\"{}\"}} {}",
            esc(&r.url),
            u8::from(r.healthy)
        );
    }
    let _ = writeln!(
        out,
        "# HELP mirrorsync_probe_family_healthy 1 if the mirror passed over this address family; absent without an address."
    );
    let _ = writeln!(out, "# TYPE mirrorsync_probe_family_healthy gauge");
    for r in reports {
        for f in &r.families {
            if let Some(h) = f.healthy {
                let _ = writeln!(
                    out,
                    "mirrorsync_probe_family_healthy{{mirror=\"{}\",family=\"{}\"}} {}",
                    esc(&r.url),
                    f.family.as_str(),
                    u8::from(h)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP mirrorsync_probe_check_ok 1 if the check passed."
    );
    let _ = writeln!(out, "# TYPE mirrorsync_probe_check_ok gauge");
    for r in reports {
        for f in &r.families {
            for c in &f.checks {
                let _ = writeln!(
                    out,
                    "mirrorsync_probe_check_ok{{mirror=\"{}\",family=\"{}\",check=\"{}\"}} {}",
                    esc(&r.url),
                    f.family.as_str(),
                    esc(&c.name),
                    u8::from(c.ok)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP mirrorsync_probe_age_seconds Age of the mirror's trace (or Release)."
    );
    let _ = writeln!(out, "# TYPE mirrorsync_probe_age_seconds gauge");
    for r in reports {
        for f in &r.families {
            if let Some(a) = f.age_seconds {
                let _ = writeln!(
                    out,
                    "mirrorsync_probe_age_seconds{{mirror=\"{}\",family=\"{}\"}} {a}",
                    esc(&r.url),
                    f.family.as_str()
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP mirrorsync_probe_behind_seconds How far the mirror's Release is behind the upstream's."
    );
    let _ = writeln!(out, "# TYPE mirrorsync_probe_behind_seconds gauge");
    for r in reports {
        for f in &r.families {
            if let Some(b) = f.behind_seconds {
                let _ = writeln!(
                    out,
                    "mirrorsync_probe_behind_seconds{{mirror=\"{}\",family=\"{}\"}} {b}",
                    esc(&r.url),
                    f.family.as_str()
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP mirrorsync_probe_duration_seconds Time the probe of the mirror took."
    );
    let _ = writeln!(out, "# TYPE mirrorsync_probe_duration_seconds gauge");
    for r in reports {
        let _ = writeln!(
            out,
            "mirrorsync_probe_duration_seconds{{mirror=\"{}\"}} {:.3}",
            esc(&r.url),
            r.seconds
        );
    }
    out
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
