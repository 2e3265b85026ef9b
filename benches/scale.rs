//! Scale: what a run costs as the mirror grows (issue #18, "a run costs what changed,
//! not what the mirror holds").
//!
//! For each size in `BENCH_SCALE_SIZES` (default `30000,300000` packages, a few
//! hundred bytes each, so the disk and not the network is measured) a signed
//! upstream is generated and served on loopback, mirrored cold, resynced unchanged,
//! then `BENCH_SCALE_REPLACE` (default 3,000) stanzas are replaced by new versions and
//! resynced. Printed per size and run: wall time, peak RSS and disk writes of the
//! mirrorsync process (its write_bytes: /usr/bin/time's "File system outputs" are
//! counted from it, in 512-byte blocks). Needs /usr/bin/time (`apt-get install time`).
//!
//! `cargo bench --bench scale` (or `scripts/bench.sh`); `BENCH_SCALE_PHASES=1` also
//! prints each run's own log of how long its phases took. Leave a minute between two
//! runs of it: on ext4 without a journal, inodes freed in the last minute slow the
//! next run's creates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mirrorsync_testkit::FixtureSpec;
use mirrorsync_testkit::server::FixtureServer;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One run of the mirrorsync binary.
struct Measured {
    seconds: f64,
    peak_rss_kib: u64,
    write_bytes: u64,
    files_fetched: u64,
}

fn main() -> anyhow::Result<()> {
    if !Path::new("/usr/bin/time").exists() {
        anyhow::bail!("benches/scale.rs needs /usr/bin/time (apt-get install time)");
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SCALE_SIZES")
        .unwrap_or_else(|_| "30000,300000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let replace = env_num("BENCH_SCALE_REPLACE", 3000) as usize;
    let mut rows = Vec::new();
    for &n in &sizes {
        rows.push((n, measure(n, replace)?));
    }
    println!();
    println!(
        "mirrorsync scale benchmark: signed upstream of N packages (200-600 bytes each), 2 architectures + all, loopback; delta = {replace} stanzas replaced"
    );
    println!("| packages | run | time | files fetched | peak RSS | disk writes |");
    println!("|---:|---|---:|---:|---:|---:|");
    for (n, runs) in &rows {
        for (name, m) in runs {
            println!(
                "| {n} | {name} | {:.3} s | {} | {:.1} MB | {:.1} MB |",
                m.seconds,
                m.files_fetched,
                m.peak_rss_kib as f64 / 1024.0,
                m.write_bytes as f64 / 1e6
            );
        }
    }
    Ok(())
}

/// Cold, no-op and delta runs against an upstream of `n` packages.
fn measure(n: usize, replace: usize) -> anyhow::Result<Vec<(&'static str, Measured)>> {
    let work = tempfile::tempdir()?;
    let t = Instant::now();
    let mut repo = FixtureSpec::default()
        .with_packages(n)
        .with_sizes(200, 600)
        .build(&work.path().join("upstream"))?;
    eprintln!(
        "generated {n} packages in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let server = FixtureServer::start(&repo.dir)?;
    let config = work.path().join("mirrors.toml");
    std::fs::write(
        &config,
        format!(
            "[global]\nroot = \"{}\"\nhostname = \"bench.invalid\"\n\n[[mirror]]\nname = \"bench\"\nkind = \"apt\"\nupstream = \"{}\"\nsuites = [\"bookworm\"]\ncomponents = [\"main\", \"contrib\"]\narchitectures = [\"amd64\", \"arm64\"]\nkeyring = \"{}\"\n",
            work.path().join("mirror").display(),
            server.url(),
            repo.keyring.display()
        ),
    )?;
    let cold = timed_sync(&config)?;
    let noop = timed_sync(&config)?;
    let names: Vec<String> = repo.packages.keys().take(replace).cloned().collect();
    for name in &names {
        repo.upgrade_package(name);
    }
    repo.publish()?;
    let delta = timed_sync(&config)?;
    Ok(vec![("cold", cold), ("no-op", noop), ("delta", delta)])
}

fn timed_sync(config: &Path) -> anyhow::Result<Measured> {
    // Everything dirty goes to disk first, so no run pays for the one before it.
    let _ = Command::new("sync").status();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mirrorsync"));
    let t = Instant::now();
    // BENCH_SCALE_PHASES=1: the run's own log of its phases (seconds each), printed.
    let phases = std::env::var_os("BENCH_SCALE_PHASES").is_some();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(&bin)
        .args(if phases { &["-vv"][..] } else { &[][..] })
        .arg("-c")
        .arg(config)
        .arg("sync")
        .arg("--json")
        .output()?;
    let seconds = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        anyhow::bail!("sync failed: {stderr}");
    }
    if phases {
        for line in stderr.lines().filter(|l| l.contains("seconds")) {
            eprintln!("  {line}");
        }
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let field = |name: &str| -> u64 {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(Measured {
        seconds,
        peak_rss_kib: field("Maximum resident set size (kbytes):"),
        write_bytes: field("File system outputs:") * 512,
        files_fetched: report[0]["files_fetched"].as_u64().unwrap_or(0),
    })
}
