//! Image-tree benchmark: the release binary mirroring generated image trees from a
//! loopback server, for the figures the image-tree work is judged by.
//!
//! `cargo bench --bench images` (or `scripts/bench.sh`). Prints two tables; nothing
//! is asserted about timings:
//!
//! 1. An interrupted download: one image of `BENCH_IMAGE_MB` MB (default 200), cut
//!    off at 40% once. With `retries = 0` the cut ends the run and the next run
//!    resumes; with `retries = 3` one run resumes by itself. Shown: what the server
//!    sent, the overhead over the file's size (every byte sent once would be 0%),
//!    wall time and peak RSS. An uninterrupted sync of the same tree is the reference.
//! 2. A crawl of `BENCH_CRAWL_DIRS` x `BENCH_CRAWL_FILES` small files (default
//!    100 x 50 = 5,000, a `.sha256` sidecar beside every tenth) in each listing style
//!    the crawler reads: cold sync (crawl + fetch), then a no-op (crawl only), with
//!    the requests the server saw and peak RSS.
//!
//! Peak RSS comes from /usr/bin/time -v, as in benches/sync.rs (scripts/bench.sh
//! installs it). `BENCH_CONCURRENCY` (default 8) is the mirror's concurrency;
//! `BENCH_VERBOSE=1` shows each run's stderr (with `RUST_LOG=mirrorsync=info`, its
//! phases).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mirrorsync_testkit::autoindex::ListingStyle;
use mirrorsync_testkit::images::FixtureImages;
use mirrorsync_testkit::server::{Fault, FixtureServer};
use sha2::{Digest, Sha256};

const FAMILY: &str = "raspios_lite_armhf";
const DATE: &str = "2024-11-19";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One run of the binary, as the server and the process saw it.
struct Run {
    seconds: f64,
    exit: Option<i32>,
    peak_rss_kib: Option<u64>,
    /// Requests the server logged.
    requests: usize,
    /// Body bytes the server sent.
    sent: u64,
    /// The `--json` summary's entry for the mirror (absent when the run failed).
    report: serde_json::Value,
}

impl Run {
    fn outcome(&self) -> String {
        self.report["outcome"].as_str().map_or_else(
            || match self.exit {
                Some(code) => format!("failed (exit {code})"),
                None => "killed".to_string(),
            },
            str::to_string,
        )
    }

    fn rss(&self) -> String {
        self.peak_rss_kib.map_or_else(
            || "-".to_string(),
            |k| format!("{:.1} MB", k as f64 / 1024.0),
        )
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; any other argument is a filter we ignore.
    let concurrency = env_num("BENCH_CONCURRENCY", 8);
    let work = tempfile::tempdir()?;
    interrupted(work.path(), concurrency)?;
    crawl(work.path(), concurrency)?;
    Ok(())
}

/// Writes mirrors.toml for one image mirror of `url` into `root`.
fn write_config(
    path: &Path,
    root: &Path,
    url: &str,
    concurrency: u64,
    retries: u32,
    extra: &str,
) -> anyhow::Result<()> {
    std::fs::write(
        path,
        format!(
            r#"[global]
root = "{root}"
hostname = "bench.invalid"
concurrency = {concurrency}
timeout = "30s"
retries = {retries}
retry_delay = "10ms"

[[mirror]]
name = "bench"
kind = "images"
upstream = "{url}"
{extra}
"#,
            root = root.display(),
        ),
    )?;
    Ok(())
}

fn interrupted(work: &Path, concurrency: u64) -> anyhow::Result<()> {
    let mb = env_num("BENCH_IMAGE_MB", 200);
    let size = mb * 1_000_000;
    let t = Instant::now();
    let tree = FixtureImages::create(&work.join("interrupted"), &[FAMILY], &[DATE], size)?;
    let rel = tree.image_path(FAMILY, DATE);
    let upstream_sha: [u8; 32] = Sha256::digest(std::fs::read(tree.root.join(&rel))?).into();
    eprintln!(
        "generated one {:.1} MB image with its sidecars in {:.1}s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let server = FixtureServer::start(&tree.root)?;
    server.set_listing(Some(ListingStyle::Nginx));
    let cut = (size as usize) * 2 / 5;
    let include = format!(r#"include = ["{FAMILY}/images/**"]"#);
    let check_published = |root: &Path| -> anyhow::Result<()> {
        let served = std::fs::read(root.join("bench").join(&rel))?;
        let sha: [u8; 32] = Sha256::digest(&served).into();
        anyhow::ensure!(
            sha == upstream_sha,
            "the published image differs from upstream's"
        );
        Ok(())
    };

    // Reference: the same tree, nothing cut.
    let config = work.join("reference.toml");
    let root = work.join("mirror-reference");
    write_config(&config, &root, &server.url(), concurrency, 0, &include)?;
    let reference = timed_sync(&config, &server)?;
    check_published(&root)?;

    // retries = 0: the cut ends the run; the next run resumes.
    let config = work.join("retries0.toml");
    let root = work.join("mirror-retries0");
    write_config(&config, &root, &server.url(), concurrency, 0, &include)?;
    server.fault(&format!("/{rel}"), Fault::Truncate(cut), Some(1));
    let first = timed_sync(&config, &server)?;
    if first.exit != Some(1) {
        eprintln!(
            "warning: the cut run exited {:?}, not 1 as expected",
            first.exit
        );
    }
    let second = timed_sync(&config, &server)?;
    anyhow::ensure!(
        second.exit == Some(0),
        "the resuming run failed: {:?}",
        second.exit
    );
    check_published(&root)?;

    // retries = 3: one run, the resume happens within it.
    let config = work.join("retries3.toml");
    let root = work.join("mirror-retries3");
    write_config(&config, &root, &server.url(), concurrency, 3, &include)?;
    server.fault(&format!("/{rel}"), Fault::Truncate(cut), Some(1));
    let within = timed_sync(&config, &server)?;
    anyhow::ensure!(
        within.exit == Some(0),
        "the run with retries failed: {:?}",
        within.exit
    );
    check_published(&root)?;

    let overhead = |sent: u64| (sent as f64 / size as f64 - 1.0) * 100.0;
    println!();
    println!(
        "interrupted download: one image of {:.1} MB ({size} bytes) plus its .sha256/.sig/.info/.torrent, cut at 40% ({cut} bytes) once, nginx-style listings, loopback",
        size as f64 / 1e6
    );
    println!("| run | result | time | server sent | overhead vs file size | requests | peak RSS |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, r: &Run, over: String| {
        println!(
            "| {name} | {} | {:.2} s | {:.1} MB | {over} | {} | {} |",
            r.outcome(),
            r.seconds,
            r.sent as f64 / 1e6,
            r.requests,
            r.rss()
        );
    };
    row(
        "uninterrupted (reference)",
        &reference,
        format!("{:+.3}%", overhead(reference.sent)),
    );
    row("retries = 0, run 1 (cut)", &first, "-".to_string());
    row("retries = 0, run 2 (resumes)", &second, "-".to_string());
    println!(
        "| retries = 0, both runs | | {:.2} s | {:.1} MB | {:+.3}% | {} | |",
        first.seconds + second.seconds,
        (first.sent + second.sent) as f64 / 1e6,
        overhead(first.sent + second.sent),
        first.requests + second.requests
    );
    row(
        "retries = 3, one run (resumes within)",
        &within,
        format!("{:+.3}%", overhead(within.sent)),
    );
    println!(
        "server sent = every body byte (listings, sidecars, the image); overhead = sent / image size - 1, goal < 1%"
    );
    Ok(())
}

fn crawl(work: &Path, concurrency: u64) -> anyhow::Result<()> {
    let dirs = env_num("BENCH_CRAWL_DIRS", 100) as usize;
    let per_dir = env_num("BENCH_CRAWL_FILES", 50) as usize;
    let t = Instant::now();
    let upstream = work.join("crawl-upstream");
    let (files, sidecars) = generate_small_tree(&upstream, dirs, per_dir)?;
    eprintln!(
        "generated {files} small files and {sidecars} .sha256 sidecars in {dirs} directories in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let server = FixtureServer::start(&upstream)?;
    let mut rows = Vec::new();
    for (name, style) in [
        ("nginx", ListingStyle::Nginx),
        ("nginx json", ListingStyle::NginxJson),
        ("apache table", ListingStyle::ApacheTable),
    ] {
        server.set_listing(Some(style));
        let config = work.join(format!("crawl-{}.toml", name.replace(' ', "-")));
        let root = work.join(format!("crawl-mirror-{}", name.replace(' ', "-")));
        write_config(&config, &root, &server.url(), concurrency, 0, "")?;
        let cold = timed_sync(&config, &server)?;
        anyhow::ensure!(cold.exit == Some(0), "{name}: the cold sync failed");
        let listings_cold = server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with('/'))
            .count();
        let noop = timed_sync(&config, &server)?;
        anyhow::ensure!(noop.exit == Some(0), "{name}: the no-op sync failed");
        let listings = server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with('/'))
            .count();
        rows.push((name, cold, listings_cold, noop, listings));
    }

    println!();
    println!(
        "crawl: {files} files of 200-600 bytes and {sidecars} .sha256 sidecars in {dirs} dated directories under 2 families, concurrency {concurrency}, loopback"
    );
    println!(
        "| listing style | cold sync | cold requests | no-op sync | no-op result | no-op requests (listings) | no-op received | peak RSS cold / no-op |"
    );
    println!("|---|---:|---:|---:|---|---:|---:|---:|");
    for (name, cold, listings_cold, noop, listings) in &rows {
        println!(
            "| {name} | {:.2} s | {} ({listings_cold} listings) | {:.3} s | {} | {} ({listings}) | {} B | {} / {} |",
            cold.seconds,
            cold.requests,
            noop.seconds,
            noop.outcome(),
            noop.requests,
            noop.report["bytes_fetched"].as_u64().unwrap_or(0),
            cold.rss(),
            noop.rss()
        );
    }
    Ok(())
}

/// `root/<family>/<family>-YYYY-MM-DD/<date>-part-NN.bin`, `dirs` dated directories
/// split over two families, `per_dir` files each of 200-600 bytes, a `.sha256`
/// beside every tenth. Returns (files, sidecars).
fn generate_small_tree(root: &Path, dirs: usize, per_dir: usize) -> anyhow::Result<(usize, usize)> {
    let start = jiff::civil::date(2020, 1, 1);
    let (mut files, mut sidecars) = (0, 0);
    for d in 0..dirs {
        let family = if d.is_multiple_of(2) {
            "images_a"
        } else {
            "images_b"
        };
        let date = start.checked_add(jiff::Span::new().days(d as i64 * 7))?;
        let dir: PathBuf = root.join(family).join(format!("{family}-{date}"));
        std::fs::create_dir_all(&dir)?;
        for f in 0..per_dir {
            let n = d * per_dir + f;
            let name = format!("{date}-part-{f:02}.bin");
            let size = 200 + (n * 7919) % 401;
            let mut bytes = format!("{family} {date} part {f}\n").into_bytes();
            let mut x = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            while bytes.len() < size {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(b'a' + (x % 26) as u8);
            }
            std::fs::write(dir.join(&name), &bytes)?;
            files += 1;
            if n.is_multiple_of(10) {
                std::fs::write(
                    dir.join(format!("{name}.sha256")),
                    format!("{}  {name}\n", hex::encode(Sha256::digest(&bytes))),
                )?;
                sidecars += 1;
            }
        }
    }
    Ok((files, sidecars))
}

/// Flushes everything dirty before a timed run, so no run pays for the writes of
/// the one before it in its own sync to disk.
fn settle() {
    let _ = Command::new("sync").status();
}

/// Runs `mirrorsync sync --json` under /usr/bin/time -v (when present); a failed run
/// is returned, not an error, for the caller to judge.
fn timed_sync(config: &Path, server: &FixtureServer) -> anyhow::Result<Run> {
    settle();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mirrorsync"));
    server.clear_log();
    let sent_before = server.bytes_sent();
    let use_time = Path::new("/usr/bin/time").exists();
    let mut cmd = if use_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-v").arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.arg("-c").arg(config).arg("sync").arg("--json");
    // BENCH_VERBOSE=1 shows the run's stderr; RUST_LOG then sets what it logs.
    let verbose = std::env::var_os("BENCH_VERBOSE").is_some();
    if !verbose {
        cmd.env_remove("RUST_LOG");
    }
    let t = Instant::now();
    let out = cmd.output()?;
    let seconds = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if verbose {
        for l in stderr.lines() {
            eprintln!("  {l}");
        }
    }
    let report = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .map(|doc| doc[0].clone())
        .unwrap_or(serde_json::Value::Null);
    let peak_rss_kib = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok());
    Ok(Run {
        seconds,
        exit: out.status.code(),
        peak_rss_kib,
        requests: server.requests().len(),
        sent: server.bytes_sent() - sent_before,
        report,
    })
}
