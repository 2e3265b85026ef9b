//! `mirrorsync demo`: the whole product on one machine, no network needed.
//!
//! Builds a signed repository of a few hundred packages and an image download tree,
//! serves them on loopback, syncs the repository, resyncs with nothing changed,
//! changes the upstream as an archive's publish run would, resyncs the delta, mirrors
//! the image tree and a new release of it, probes the result as mirror lists do, and
//! says where to look. It runs the same code as `sync`,
//! through the same config parser; its narrative goes to the writer the CLI hands in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mirrorsync_testkit::FixtureRepo;
use mirrorsync_testkit::FixtureSpec;
use mirrorsync_testkit::autoindex::ListingStyle;
use mirrorsync_testkit::images::FixtureImages;
use mirrorsync_testkit::server::FixtureServer;

use crate::config::Config;
use crate::report::Silent;
use crate::sync::{self, MirrorReport, SyncOptions};
use crate::trace::Trigger;

const IMAGE_FAMILIES: &[&str] = &["raspios_lite_armhf", "raspios_lite_arm64"];
const IMAGE_DATES: &[&str] = &["2024-07-04", "2024-10-22", "2024-11-19", "2025-05-13"];

/// Marks a directory as the demo's own, so a rerun may clear it.
const MARKER: &str = ".mirrorsync-demo";

/// The demo's directory: `upstream-work/` holds the fixtures, `mirror/` the mirror root.
struct Layout {
    dir: PathBuf,
    work: PathBuf,
    root: PathBuf,
    config_path: PathBuf,
}

pub async fn run(dir: &Path, out: &mut dyn Write) -> Result<()> {
    prepare(dir)?;
    let dir = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let layout = Layout {
        work: dir.join("upstream-work"),
        root: dir.join("mirror"),
        config_path: dir.join("mirrors.toml"),
        dir,
    };

    writeln!(out, "mirrorsync demo in {}", layout.dir.display())?;
    let (repo, server) = serve_repository(&layout.work, out).await?;
    let (mut images, image_server) = serve_images(&layout.work, out).await?;
    let config = write_config(&layout, &repo, &server, &images, &image_server)?;
    let options = SyncOptions {
        trigger: Trigger::Manual,
        ..SyncOptions::default()
    };
    // The repository goes to a blocking task to be republished; the closing advice
    // still names its suite and components.
    let suite = repo.suite.clone();
    let components = repo.components.join(" ");

    sync_repository(&config, &options, repo, out).await?;
    sync_images(&config, &options, &mut images, &image_server, out).await?;
    let mirror_server = probe_mirror(&layout, &server, out).await?;
    print_next_steps(&layout, &suite, &components, out)?;
    drop(server);
    drop(image_server);
    drop(mirror_server);
    Ok(())
}

/// Builds the signed upstream repository and serves it.
async fn serve_repository(
    work: &Path,
    out: &mut dyn Write,
) -> Result<(FixtureRepo, FixtureServer)> {
    let t = Instant::now();
    let spec = FixtureSpec::default()
        .with_packages(300)
        .with_sizes(2_000, 120_000);
    let repo = tokio::task::spawn_blocking({
        let work = work.to_path_buf();
        move || spec.build(&work)
    })
    .await??;
    let pool_bytes: u64 = repo.pool_files().iter().map(|(_, s)| s).sum();
    writeln!(
        out,
        "  built a signed upstream repository: {} packages ({}), suite {}, {} x {} in {:.1}s",
        repo.packages.len(),
        human(pool_bytes),
        repo.suite,
        repo.components.join("+"),
        repo.architectures.join("+"),
        t.elapsed().as_secs_f64()
    )?;
    let server = FixtureServer::start(&repo.dir)?;
    writeln!(out, "  serving it on {}", server.url())?;
    Ok((repo, server))
}

/// Builds the image download tree (three of its releases) and serves it with
/// Apache-style listings, its OS lists pointing at that server.
async fn serve_images(work: &Path, out: &mut dyn Write) -> Result<(FixtureImages, FixtureServer)> {
    let t = Instant::now();
    let images = tokio::task::spawn_blocking({
        let work = work.to_path_buf();
        move || FixtureImages::create(&work, IMAGE_FAMILIES, &IMAGE_DATES[..3], 1 << 20)
    })
    .await??;
    let image_server = FixtureServer::start(&images.root)?;
    image_server.set_listing(Some(ListingStyle::ApacheTable));
    images.write_os_lists(&image_server.url(), None)?;
    writeln!(
        out,
        "  built an image download tree: {} families x {} dated releases with .sha256, .sig and an Imager OS list in {:.1}s",
        IMAGE_FAMILIES.len(),
        3,
        t.elapsed().as_secs_f64()
    )?;
    writeln!(
        out,
        "  serving it with Apache-style listings on {}",
        image_server.url()
    )?;
    Ok((images, image_server))
}

/// Writes mirrors.toml for both upstreams and reads it back through the same parser
/// `sync` uses.
fn write_config(
    layout: &Layout,
    repo: &FixtureRepo,
    server: &FixtureServer,
    images: &FixtureImages,
    image_server: &FixtureServer,
) -> Result<Config> {
    let config_path = &layout.config_path;
    let config_text = format!(
        r#"# Written by `mirrorsync demo`; try `mirrorsync -c {cfg} status`.
[global]
root = "{root}"
hostname = "mirror.demo.invalid"
concurrency = 8
grace = "6h"
retry_delay = "100ms"

[[mirror]]
name = "fixture"
kind = "apt"
upstream = "{url}"
suites = ["{suite}"]
components = [{components}]
architectures = [{arches}]
keyring = "{keyring}"

[[mirror]]
name = "images"
kind = "images"
upstream = "{images_url}"
include = ["{family}/images/**", "os_list_*.json"]
exclude = ["**/*.torrent"]
keep_latest = 2
keyring = "{images_keyring}"
rewrite_base = "http://mirror.demo.invalid/images/"
"#,
        images_url = image_server.url(),
        family = IMAGE_FAMILIES[0],
        images_keyring = images.keyring.display(),
        cfg = config_path.display(),
        root = layout.root.display(),
        url = server.url(),
        suite = repo.suite,
        components = quoted(&repo.components),
        arches = quoted(&repo.architectures),
        keyring = repo.keyring.display(),
    );
    std::fs::write(config_path, &config_text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    Ok(Config::from_toml(&config_text, config_path)?)
}

/// Steps 1 to 3: a cold sync, a no-op one, and a delta after the upstream republishes.
async fn sync_repository(
    config: &Config,
    options: &SyncOptions,
    mut repo: FixtureRepo,
    out: &mut dyn Write,
) -> Result<()> {
    let cold = sync_one(config, "fixture", options).await?;
    writeln!(
        out,
        "\n1. cold sync:   fetched {} files ({}) in {:.2}s with {} requests; published snapshot {}",
        cold.files_fetched,
        human(cold.bytes_fetched),
        cold.seconds,
        cold.requests,
        cold.snapshot.as_deref().unwrap_or("-")
    )?;

    let noop = sync_one(config, "fixture", options).await?;
    writeln!(
        out,
        "2. no-op sync:  upstream unchanged, {} request(s), {:.3}s, nothing written",
        noop.requests, noop.seconds
    )?;

    let names: Vec<String> = repo.packages.keys().cloned().collect();
    for n in names.iter().take(5) {
        repo.upgrade_package(n);
    }
    for n in names.iter().skip(5).take(2) {
        repo.remove_package(n);
    }
    for i in 0..3 {
        repo.add_package(&format!("newpkg{i}"));
    }
    // Signing and compressing a few hundred packages must not stall the runtime.
    tokio::task::spawn_blocking(move || repo.publish()).await??;
    let delta = sync_one(config, "fixture", options).await?;
    writeln!(
        out,
        "3. delta sync:  upstream upgraded 5, removed 2, added 3 packages -> fetched {} files ({}) in {:.2}s, linked {}, {} removed files kept for grace",
        delta.files_fetched,
        human(delta.bytes_fetched),
        delta.seconds,
        delta.plan.link_files,
        delta.plan.grace_files,
    )?;
    Ok(())
}

/// Steps 4 and 5: the image tree cold, then a new release that retires an old one.
async fn sync_images(
    config: &Config,
    options: &SyncOptions,
    images: &mut FixtureImages,
    image_server: &FixtureServer,
    out: &mut dyn Write,
) -> Result<()> {
    let cold = sync_one(config, "images", options).await?;
    writeln!(
        out,
        "4. image tree:  fetched {} files ({}) in {:.2}s: every image checked against its .sha256 and .sig, {} file(s) with no checksum upstream",
        cold.files_fetched,
        human(cold.bytes_fetched),
        cold.seconds,
        cold.files_unverified,
    )?;
    images.add_release(IMAGE_FAMILIES[0], IMAGE_DATES[3])?;
    images.write_os_lists(&image_server.url(), None)?;
    let delta = sync_one(config, "images", options).await?;
    writeln!(
        out,
        "5. new release: fetched {} files ({}) in {:.2}s; keep_latest = 2 let {} old file(s) go (kept for grace)",
        delta.files_fetched,
        human(delta.bytes_fetched),
        delta.seconds,
        delta.plan.grace_files + delta.plan.delete_files,
    )?;
    Ok(())
}

/// Step 6: serves the mirror as nginx would, and probes it as the mirror list does.
/// The server is handed back so it serves until the demo ends.
async fn probe_mirror(
    layout: &Layout,
    upstream: &FixtureServer,
    out: &mut dyn Write,
) -> Result<FixtureServer> {
    let mirror_server = FixtureServer::start(&layout.root)?;
    mirror_server.set_listing(Some(ListingStyle::Nginx));
    let probe_opts = crate::probe::ProbeOptions {
        upstream: Some(url::Url::parse(&upstream.url())?),
        keyring: Some(layout.dir.join("upstream-work/archive-keyring.gpg")),
        timeout: std::time::Duration::from_secs(10),
        ..crate::probe::ProbeOptions::default()
    };
    let urls = [
        url::Url::parse(&format!("{}fixture/", mirror_server.url()))?,
        url::Url::parse(&format!("{}images/", mirror_server.url()))?,
    ];
    let probed = crate::probe::probe_all(&urls, &probe_opts).await?;
    writeln!(
        out,
        "6. probe:       the published trees served on {}:",
        mirror_server.url()
    )?;
    for line in crate::probe::output::table(&probed).lines() {
        writeln!(out, "     {line}")?;
    }
    Ok(mirror_server)
}

/// Where to look: the served tree, its trace file, and what to try next.
fn print_next_steps(
    layout: &Layout,
    suite: &str,
    components: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let root = &layout.root;
    let served = root.join("fixture");
    let trace_path = served.join("project/trace/mirror.demo.invalid");
    let trace = std::fs::read_to_string(&trace_path)
        .with_context(|| format!("reading {}", trace_path.display()))?;
    writeln!(
        out,
        "\nThe served tree is {} (a symlink to the snapshot in use).",
        served.display()
    )?;
    writeln!(out, "Its trace file, as mirror checkers read it:")?;
    for line in trace.lines() {
        writeln!(out, "    {line}")?;
    }
    writeln!(out, "\nNext:")?;
    writeln!(
        out,
        "  mirrorsync -c {} status",
        layout.config_path.display()
    )?;
    writeln!(
        out,
        "  open {} in a browser: the status page every run writes",
        root.join(crate::config::DEFAULT_STATUS_PAGE).display()
    )?;
    writeln!(
        out,
        "  serve {} with nginx (autoindex on) and point apt at it:
    deb [signed-by={}] http://<host>/fixture {suite} {components}",
        root.display(),
        layout
            .dir
            .join("upstream-work/archive-keyring.gpg")
            .display(),
    )?;
    writeln!(
        out,
        "  the image tree is {}; its OS list points Imager at this mirror",
        root.join("images").display()
    )?;
    Ok(())
}

async fn sync_one(config: &Config, name: &str, options: &SyncOptions) -> Result<MirrorReport> {
    let mut results = sync::run(config, &[name.to_string()], options, &Silent).await?;
    let Some(r) = results.pop() else {
        bail!("the demo config has no mirror");
    };
    r.result
}

/// Clears a previous demo's directory, refusing anything that is not one.
fn prepare(dir: &Path) -> Result<()> {
    if dir.exists() {
        let is_demo = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !is_demo && !empty {
            return Err(crate::cli::exit::UsageError(format!(
                "{} exists and was not made by `mirrorsync demo`; give another directory",
                dir.display()
            ))
            .into());
        }
        if is_demo {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), b"made by mirrorsync demo\n")
        .with_context(|| format!("writing into {}", dir.display()))?;
    Ok(())
}

fn quoted(v: &[String]) -> String {
    v.iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
