//! Publishing to object storage: the release binary syncs a generated repository from
//! a loopback server and publishes it to a real three-node Garage cluster on
//! 127.0.0.1 (replication factor 3), then a delta.
//!
//! `cargo bench --bench s3` (needs the `garage` binary: scripts/test.sh installs it).
//! Prints the publish time of the cold and the delta sync (the bucket part alone, from
//! the run's own report), objects and bytes uploaded, and the PUT requests Garage
//! counted. Sizes: `BENCH_PACKAGES` (default 2000), `BENCH_MIN_SIZE`/`BENCH_MAX_SIZE`,
//! `BENCH_CONCURRENCY` (default 8).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use mirrorsync_testkit::FixtureSpec;
use mirrorsync_testkit::garage::GarageCluster;
use mirrorsync_testkit::server::FixtureServer;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let packages = env_num("BENCH_PACKAGES", 2000) as usize;
    let min = env_num("BENCH_MIN_SIZE", 20_000);
    let max = env_num("BENCH_MAX_SIZE", 300_000);
    let concurrency = env_num("BENCH_CONCURRENCY", 8);
    let work = tempfile::tempdir()?;
    let t = Instant::now();
    let garage = GarageCluster::start(&work.path().join("garage"), "mirror")?;
    eprintln!("garage cluster up in {:.1}s", t.elapsed().as_secs_f64());
    let mut repo = FixtureSpec::default()
        .with_packages(packages)
        .with_sizes(min, max)
        .build(&work.path().join("upstream"))?;
    let pool_bytes: u64 = repo.pool_files().iter().map(|(_, s)| s).sum();
    let server = FixtureServer::start(&repo.dir)?;
    let creds = work.path().join("s3-credentials");
    garage.write_credentials(&creds)?;
    let config = work.path().join("mirrors.toml");
    std::fs::write(
        &config,
        format!(
            "[global]\nroot = \"{}\"\nhostname = \"bench.invalid\"\nconcurrency = {concurrency}\n\n[[mirror]]\nname = \"bench\"\nkind = \"apt\"\nupstream = \"{}\"\nsuites = [\"bookworm\"]\ncomponents = [\"main\", \"contrib\"]\narchitectures = [\"amd64\", \"arm64\"]\nkeyring = \"{}\"\npublish = \"s3://mirror/bench\"\ns3_endpoint = \"{}\"\ns3_region = \"{}\"\ns3_credentials = \"{}\"\n",
            work.path().join("mirror").display(),
            server.url(),
            repo.keyring.display(),
            garage.s3_endpoint(),
            garage.region(),
            creds.display()
        ),
    )?;

    let cold = run(&config, &garage)?;
    let names: Vec<String> = repo.packages.keys().cloned().collect();
    let n = names.len();
    for name in names.iter().take(n / 50) {
        repo.upgrade_package(name);
    }
    for name in names.iter().skip(n / 50).take(n / 100) {
        repo.remove_package(name);
    }
    for i in 0..n / 100 {
        repo.add_package(&format!("zz-bench-new-{i}"));
    }
    repo.publish()?;
    let delta = run(&config, &garage)?;

    println!();
    println!(
        "mirrorsync S3 publish benchmark: {packages} packages, {:.1} MB pool, concurrency {concurrency}, 3-node Garage on loopback (replication 3)",
        pool_bytes as f64 / 1e6
    );
    println!(
        "| run | whole sync | bucket publish | objects uploaded | uploaded | unchanged | deleted | PUTs (Garage) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, r) in [
        ("cold", &cold),
        ("delta (2% upgraded, 1% removed, 1% added)", &delta),
    ] {
        let b = &r.report["bucket"];
        println!(
            "| {name} | {:.2} s | {:.2} s | {} | {:.1} MB | {} | {} | {} |",
            r.seconds,
            b["seconds"].as_f64().unwrap_or(0.0),
            b["uploaded"],
            b["uploaded_bytes"].as_f64().unwrap_or(0.0) / 1e6,
            b["unchanged"],
            b["deleted"],
            r.garage_puts
        );
    }
    Ok(())
}

struct Run {
    seconds: f64,
    report: serde_json::Value,
    garage_puts: u64,
}

fn run(config: &std::path::Path, garage: &GarageCluster) -> anyhow::Result<Run> {
    let _ = Command::new("sync").status();
    let puts = garage.s3_requests("PutObject")?;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mirrorsync"));
    let t = Instant::now();
    let out = Command::new(bin)
        .arg("-c")
        .arg(config)
        .arg("sync")
        .arg("--json")
        .output()?;
    let seconds = t.elapsed().as_secs_f64();
    if !out.status.success() {
        anyhow::bail!("sync failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(Run {
        seconds,
        report: report[0].clone(),
        garage_puts: garage.s3_requests("PutObject")? - puts,
    })
}
