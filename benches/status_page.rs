//! The status page (issue #21): its size and the time to write it for a mirror with a
//! full history ([`mirrorsync::history::KEEP`] runs, some failed), as every run does.
//!
//! `cargo bench --bench status_page`. Prints the page's size, the median time to
//! gather and write it (of `BENCH_PAGE_ROUNDS`, default 50) and the time to add a run
//! to the history; `BENCH_PAGE_MIRRORS` (default 1) mirrors of the same history.

use std::time::Instant;

use mirrorsync::config::Config;
use mirrorsync::state::{MirrorState, RunRecord};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run `i` of a mirror synced every six hours: mostly small deltas, a failure now
/// and then, a Release a few hours old.
fn run(i: usize) -> RunRecord {
    let started = jiff::Timestamp::from_second(1_750_000_000 + i as i64 * 6 * 3600).unwrap();
    let failed = i % 37 == 5;
    RunRecord {
        started: started.to_string(),
        finished: (started + jiff::SignedDuration::from_secs(40 + (i % 13) as i64)).to_string(),
        result: if failed {
            "failed"
        } else if i.is_multiple_of(5) {
            "unchanged"
        } else {
            "published"
        }
        .into(),
        trigger: "cron".into(),
        error: failed.then(|| "mirror \"debian\": fetching pool files: 1 failed".into()),
        snapshot: Some(format!("2025{i:04}")),
        files_fetched: (i * 7919 % 400) as u64,
        bytes_fetched: (i * 104_729 % 90_000_000) as u64,
        files_deleted: (i % 11) as u64,
        seconds: 40.0 + (i % 13) as f64,
        upstream_date: (!failed)
            .then(|| (started - jiff::SignedDuration::from_hours(3)).to_string()),
        files_total: 65_000,
        bytes_total: 120_000_000_000,
        ..RunRecord::default()
    }
}

fn main() -> anyhow::Result<()> {
    let rounds = env_num("BENCH_PAGE_ROUNDS", 50);
    let mirrors = env_num("BENCH_PAGE_MIRRORS", 1);
    let work = tempfile::tempdir()?;
    let root = work.path().join("root");
    std::fs::create_dir_all(&root)?;
    let mut text = format!(
        "[global]\nroot = \"{}\"\nhostname = \"bench.invalid\"\n",
        root.display()
    );
    for m in 0..mirrors {
        text.push_str(&format!(
            "\n[[mirror]]\nname = \"debian{m}\"\nkind = \"apt\"\nupstream = \"http://deb.example.org/debian\"\nsuites = [\"bookworm\"]\ncomponents = [\"main\"]\narchitectures = [\"arm64\"]\ncheck_signature = false\n"
        ));
    }
    let config = Config::from_toml(&text, &work.path().join("mirrors.toml"))?;
    let keep = mirrorsync::history::KEEP;
    let mut append = Vec::new();
    for m in &config.mirrors {
        let base = root.join(".mirrorsync").join(&m.name);
        std::fs::create_dir_all(&base)?;
        for i in 0..keep {
            let t = Instant::now();
            mirrorsync::history::append(&base, &run(i))?;
            if i + 1 == keep {
                append.push(t.elapsed().as_secs_f64());
            }
        }
        let state = MirrorState {
            last_run: Some(run(keep - 1)),
            last_success: Some(run(keep - 2)),
            ..MirrorState::default()
        };
        state.save(&base)?;
    }
    let mut times = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        mirrorsync::page::write(&config)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let page = config.global.status_page.clone().expect("on by default");
    let size = std::fs::metadata(&page)?.len();
    println!(
        "status page: {mirrors} mirror(s) x {keep} runs: {size} bytes ({:.0} KiB), written in {:.2} ms (median of {rounds}, min {:.2}, max {:.2}); adding run {keep} to a full history: {:.2} ms",
        size as f64 / 1024.0,
        times[times.len() / 2] * 1e3,
        times[0] * 1e3,
        times[times.len() - 1] * 1e3,
        append.iter().sum::<f64>() / append.len().max(1) as f64 * 1e3,
    );
    Ok(())
}
