//! Everything the commands print as results: JSON documents, the dry-run plan, run
//! summaries, damage lists and the status table. The commands decide what happened;
//! this module decides how it reads.

use std::io::IsTerminal;

use crate::plan::PlanSummary;
use crate::probe::MirrorReport as ProbeReport;
use crate::sync::{MirrorReport, RunOutcome};
use crate::verify::VerifyReport;

/// How `probe` prints its reports.
#[derive(Clone, Copy)]
pub enum ProbeFormat {
    Table,
    Json,
    Prometheus,
}

/// A size for people: "1.50 MiB".
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// One pretty-printed JSON document on stdout.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// One mirror's entry in a `--json` document: its report with the exit code it
/// stands for.
pub fn json_entry<T: serde::Serialize>(
    report: &T,
    exit_code: u8,
) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(report)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("exit_code".into(), exit_code.into());
    }
    Ok(v)
}

/// The entry in a `--json` document of a mirror that failed (`outcome` "failed") or
/// did not run ("not run": another run holds the lock, or the push was queued): the
/// error, its causes one by one, and the exit code it stands for, so a monitoring
/// script never mistakes it for fine.
pub fn error_entry(
    name: &str,
    outcome: &str,
    e: &anyhow::Error,
    exit_code: u8,
) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "outcome": outcome,
        "error": format!("{e:#}"),
        "causes": e.chain().map(|c| c.to_string()).collect::<Vec<_>>(),
        "exit_code": exit_code,
    })
}

/// What `sync --dry-run` would do to one mirror.
pub fn plan(r: &MirrorReport) {
    let p: &PlanSummary = &r.plan;
    println!("{} (dry run):", r.name);
    println!(
        "  fetch  {:>7} files {:>12}",
        p.fetch_files,
        bytes(p.fetch_bytes)
    );
    println!(
        "  keep   {:>7} files {:>12}",
        p.link_files,
        bytes(p.link_bytes)
    );
    println!(
        "  delete {:>7} files {:>12}",
        p.delete_files,
        bytes(p.delete_bytes)
    );
    if r.files_unverified > 0 {
        println!(
            "  unverified {:>3} files (no checksum upstream)",
            r.files_unverified
        );
    }
    for (path, until) in r.grace.iter().take(20) {
        let until = jiff::Timestamp::from_second(*until)
            .map(|t| t.to_string())
            .unwrap_or_default();
        println!("  kept for grace until {until}: {path}");
    }
    if r.grace.len() > 20 {
        println!("  ... and {} more kept for grace", r.grace.len() - 20);
    }
}

/// What a sync did to one mirror (and its bucket).
pub fn summary(r: &MirrorReport) {
    match r.outcome {
        RunOutcome::Unchanged => println!(
            "{}: upstream unchanged ({} request(s), {:.2}s)",
            r.name, r.requests, r.seconds
        ),
        _ => println!(
            "{}: published {} — fetched {} files ({}), linked {}, {} in grace, {} deleted, {:.1}s",
            r.name,
            r.snapshot.as_deref().unwrap_or("-"),
            r.files_fetched,
            bytes(r.bytes_fetched),
            r.plan.link_files,
            r.plan.grace_files,
            r.plan.delete_files,
            r.seconds
        ),
    }
    if r.files_unverified > 0 {
        println!(
            "{}: {} file(s) unverified: no checksum upstream, compared by size and ETag/date",
            r.name, r.files_unverified
        );
    }
    if let Some(b) = &r.bucket {
        println!(
            "{}: bucket {} at {} — uploaded {} objects ({}), {} unchanged, {} deleted, {} PUT requests, {:.1}s",
            r.name,
            b.url,
            b.snapshot.as_deref().unwrap_or("-"),
            b.uploaded,
            bytes(b.uploaded_bytes),
            b.unchanged,
            b.deleted,
            b.put_requests,
            b.seconds
        );
    }
}

/// The damage `verify` found, the first 20 files named; `place` says where.
pub fn damage(r: &VerifyReport, place: &str) {
    let mut text = format!(
        "mirrorsync: {}: {} damaged file(s) {place}:",
        r.name,
        r.damaged.len()
    );
    for d in r.damaged.iter().take(20) {
        text.push_str(&format!("\n  {}: {}", d.path, d.problem));
    }
    if r.damaged.len() > 20 {
        text.push_str(&format!("\n  ... and {} more", r.damaged.len() - 20));
    }
    super::logging::say(super::logging::Severity::Error, &text);
}

/// `verify` of the local trees: damage on stderr; intact trees named only on a
/// terminal, so cron mails stay empty.
pub fn local_verify(reports: &[VerifyReport]) {
    for r in reports {
        let snapshot = r.snapshot.as_deref().unwrap_or("-");
        if !r.damaged.is_empty() {
            damage(r, &format!("in snapshot {snapshot}"));
        } else if std::io::stdout().is_terminal() {
            println!(
                "{}: snapshot {snapshot} intact, {} files ({})",
                r.name,
                r.files_checked,
                bytes(r.bytes_checked)
            );
        }
    }
}

/// `verify --url`: the one served copy, `served_at` its (redacted) URL.
pub fn served_verify(report: &VerifyReport, served_at: &str) {
    if !report.damaged.is_empty() {
        damage(report, &format!("served at {served_at}"));
    } else if std::io::stdout().is_terminal() {
        println!(
            "{}: {served_at} serves snapshot {} intact, {} files ({})",
            report.name,
            report.snapshot.as_deref().unwrap_or("-"),
            report.files_checked,
            bytes(report.bytes_checked)
        );
    }
}

/// `status` without `--json`: a few lines per mirror, from the same documents
/// `--json` prints.
pub fn status(all: &[serde_json::Value]) {
    for s in all {
        let last = &s["last_run"];
        let ok = &s["last_success"];
        println!(
            "{} ({}): {}",
            s["name"].as_str().unwrap_or(""),
            s["kind"].as_str().unwrap_or(""),
            last["result"].as_str().unwrap_or("never run"),
        );
        println!(
            "  last run     {} -> {}{}",
            last["started"].as_str().unwrap_or("-"),
            last["finished"].as_str().unwrap_or("-"),
            last["error"]
                .as_str()
                .map(|e| format!("\n  error        {e}"))
                .unwrap_or_default(),
        );
        println!(
            "  last success {}: fetched {} files ({}), {} in grace",
            ok["finished"].as_str().unwrap_or("never"),
            ok["files_fetched"].as_u64().unwrap_or(0),
            bytes(ok["bytes_fetched"].as_u64().unwrap_or(0)),
            ok["files_in_grace"].as_u64().unwrap_or(0),
        );
        println!(
            "  snapshot     {} ({} kept)",
            s["snapshot"].as_str().unwrap_or("-"),
            s["snapshots"].as_array().map_or(0, |a| a.len()),
        );
        if let Some(age) = s["upstream_age_seconds"].as_i64() {
            println!(
                "  upstream     Release Date {} ({} old)",
                ok["upstream_date"].as_str().unwrap_or("-"),
                humantime::format_duration(std::time::Duration::from_secs(age.max(0) as u64))
            );
        }
    }
}

/// `probe`'s reports in the format asked for.
pub fn probe(reports: &[ProbeReport], format: ProbeFormat) {
    let out = match format {
        ProbeFormat::Json => crate::probe::output::json(reports),
        ProbeFormat::Prometheus => crate::probe::output::prometheus(reports),
        ProbeFormat::Table => crate::probe::output::table(reports),
    };
    print!("{out}");
    if matches!(format, ProbeFormat::Json) && !out.ends_with('\n') {
        println!();
    }
}
