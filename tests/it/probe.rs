//! An operator probes mirrors the way the official mirror list does: over IPv4 and
//! IPv6 separately, reading traces and Release dates, sampling indices and pool files.

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mirrorsync_testkit::FixtureSpec;
use mirrorsync_testkit::autoindex::ListingStyle;
use mirrorsync_testkit::images::FixtureImages;
use mirrorsync_testkit::server::{Fault, FixtureServer};

use crate::support::{Env, assert_ok};

const HOST: &str = "mirror.test.invalid";

fn probe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .arg("probe")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running mirrorsync probe")
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "probe JSON does not parse ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Checks the documented shape of the JSON document (see src/probe/output.rs).
fn assert_schema(doc: &serde_json::Value) {
    assert!(doc["healthy"].is_boolean());
    for m in doc["mirrors"].as_array().expect("mirrors") {
        for key in ["url", "kind", "summary"] {
            assert!(m[key].is_string(), "{key} in {m}");
        }
        assert!(m["healthy"].is_boolean() && m["seconds"].is_number());
        for f in m["families"].as_array().expect("families") {
            assert!(matches!(f["family"].as_str(), Some("ipv4" | "ipv6")));
            assert!(f["addresses"].is_array());
            assert!(f["healthy"].is_boolean() || f["healthy"].is_null());
            for key in ["freshness", "age_seconds", "behind_seconds"] {
                assert!(f.get(key).is_some(), "{key} in {f}");
            }
            for c in f["checks"].as_array().expect("checks") {
                assert!(c["name"].is_string() && c["ok"].is_boolean() && c["detail"].is_string());
            }
        }
    }
}

/// A synced mirror of the fixture, its root served on `bind`.
fn served_mirror(bind: SocketAddr) -> (Env, FixtureServer) {
    let env = Env::new(FixtureSpec::default().with_packages(40));
    assert_ok(&env.sync());
    let server = FixtureServer::start_on(&env.root, bind).expect("mirror server");
    server.set_listing(Some(ListingStyle::Nginx));
    (env, server)
}

fn url_of(server: &FixtureServer) -> String {
    format!("http://{HOST}:{}/debian/", server.addr().port())
}

#[test]
fn our_own_published_mirror_is_healthy_and_up_to_date() {
    let (env, server) = served_mirror(SocketAddr::from(([127, 0, 0, 1], 0)));
    let keyring = env.repo.keyring.display().to_string();
    let upstream = env.server.url();
    let out = probe(&[
        &url_of(&server),
        "--resolve",
        &format!("{HOST}=127.0.0.1"),
        "--upstream",
        &upstream,
        "--keyring",
        &keyring,
        "--json",
    ]);
    let doc = json_of(&out);
    assert_schema(&doc);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    let m = &doc["mirrors"][0];
    assert_eq!(m["kind"], "apt");
    assert_eq!(m["summary"], "healthy (IPv4 only)", "{m:#}");
    let v4 = &m["families"][0];
    assert_eq!(v4["freshness"], "up to date", "{v4:#}");
    assert_eq!(v4["behind_seconds"], 0);
    let names: Vec<&str> = v4["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let suite = &env.repo.suite;
    for want in ["trace", "release", "indices", "pool", "consistency"] {
        assert!(
            names.contains(&format!("{suite}: {want}").as_str()) || names.contains(&want),
            "{want} missing from {names:?}"
        );
    }
    assert!(m["families"][1]["healthy"].is_null(), "no AAAA: not probed");
}

#[test]
fn a_stale_mirror_is_unhealthy_and_banded_older() {
    // Serve an archive whose last publish (trace and Release) was three days ago.
    let work = tempfile::tempdir().unwrap();
    let mut repo = FixtureSpec::default()
        .with_packages(20)
        .build(&work.path().join("old"))
        .unwrap();
    repo.set_date(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(72));
    repo.publish().unwrap();
    let server = FixtureServer::start(&repo.dir).unwrap();
    server.set_listing(Some(ListingStyle::ApacheTable));
    let out = probe(&[&server.url(), "--json"]);
    assert_eq!(out.status.code(), Some(5));
    let doc = json_of(&out);
    assert_schema(&doc);
    let v4 = &doc["mirrors"][0]["families"][0];
    assert_eq!(v4["freshness"], "older", "{v4:#}");
    let trace = v4["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "trace")
        .unwrap();
    assert_eq!(trace["ok"], false);
}

#[test]
fn an_index_that_does_not_match_its_release_makes_the_mirror_inconsistent() {
    let (env, server) = served_mirror(SocketAddr::from(([127, 0, 0, 1], 0)));
    for (path, _) in env.served_digest() {
        if path.contains("/Packages.") && !path.contains("by-hash") {
            server.fault(&format!("/debian/{path}"), Fault::Corrupt, None);
        }
    }
    let out = probe(&[
        &url_of(&server),
        "--resolve",
        &format!("{HOST}=127.0.0.1"),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(5));
    let doc = json_of(&out);
    let checks = doc["mirrors"][0]["families"][0]["checks"].to_string();
    assert!(
        checks.contains("does not match its Release entry"),
        "{checks}"
    );
}

#[test]
fn a_mirror_that_answers_on_one_family_only_is_reported_as_such() {
    let (_env6, v6) = served_mirror("[::1]:0".parse().unwrap());
    let (_env4, v4) = served_mirror(SocketAddr::from(([127, 0, 0, 1], 0)));
    let out = probe(&[
        &url_of(&v6),
        &url_of(&v4),
        "--resolve",
        &format!("{HOST}=127.0.0.1,::1"),
        "--timeout",
        "3s",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(5), "one family down is unhealthy");
    let doc = json_of(&out);
    assert_schema(&doc);
    assert_eq!(
        doc["mirrors"][0]["summary"], "answers only on IPv6",
        "{doc:#}"
    );
    assert_eq!(
        doc["mirrors"][1]["summary"], "answers only on IPv4",
        "{doc:#}"
    );
    assert_eq!(doc["mirrors"][0]["families"][1]["healthy"], true);
    assert_eq!(doc["mirrors"][0]["families"][0]["healthy"], false);
}

#[test]
fn a_mirror_that_does_not_answer_is_classified_within_the_timeout() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Accepts connections and never says a word.
    let stall = TcpListener::bind("127.0.0.1:0").unwrap();
    let stall_port = stall.local_addr().unwrap().port();
    let _holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in stall.incoming().flatten() {
            held.push(conn);
        }
    });
    let started = Instant::now();
    let out = probe(&[
        &format!("http://127.0.0.1:{closed}/debian/"),
        &format!("http://127.0.0.1:{stall_port}/debian/"),
        "--timeout",
        "1s",
        "--json",
    ]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(5));
    let doc = json_of(&out);
    for m in doc["mirrors"].as_array().unwrap() {
        assert_eq!(m["summary"], "does not answer", "{m:#}");
    }
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn prometheus_output_parses_as_the_text_format() {
    let (_env, server) = served_mirror(SocketAddr::from(([127, 0, 0, 1], 0)));
    let out = probe(&[
        &url_of(&server),
        "--resolve",
        &format!("{HOST}=127.0.0.1"),
        "--prometheus",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let healthy = scrape
        .samples
        .iter()
        .find(|s| s.metric == "mirrorsync_probe_healthy")
        .expect("healthy metric");
    assert!(matches!(healthy.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "mirrorsync_probe_check_ok"
                && s.labels.get("family") == Some("ipv4"))
    );
}

#[test]
fn an_image_tree_mirror_is_probed_by_its_sidecars() {
    let work = tempfile::tempdir().unwrap();
    let tree =
        FixtureImages::create(work.path(), &["raspios_lite_armhf"], &["2024-11-19"], 4096).unwrap();
    let server = FixtureServer::start(&tree.root).unwrap();
    server.set_listing(Some(ListingStyle::Nginx));
    let out = probe(&[&server.url(), "--json"]);
    let doc = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["mirrors"][0]["kind"], "images");
    let checks = doc["mirrors"][0]["families"][0]["checks"].to_string();
    assert!(
        checks.contains("named by .sha256 sidecars present"),
        "{checks}"
    );
    assert!(
        check_named(&doc, "os list").is_none(),
        "no OS list published, none checked: {checks}"
    );

    // An image gone while its sidecar stays: unhealthy.
    std::fs::remove_file(
        tree.root
            .join(tree.image_path("raspios_lite_armhf", "2024-11-19")),
    )
    .unwrap();
    let out = probe(&[&server.url(), "--json"]);
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn a_release_newer_than_the_trace_shows_a_sync_half_done() {
    let (env, server) = served_mirror(SocketAddr::from(([127, 0, 0, 1], 0)));
    // What a mirror looks like mid-sync with a naive tool: new indices in place, the
    // trace still from the last run.
    let release = env
        .served()
        .join(format!("dists/{}/Release", env.repo.suite));
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&release)
        .or_else(|_| {
            let mut p = std::fs::metadata(&release)?.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            p.set_readonly(false);
            std::fs::set_permissions(&release, p)?;
            std::fs::File::options().write(true).open(&release)
        })
        .and_then(|f| f.set_modified(later))
        .expect("touching Release");
    let out = probe(&[
        &url_of(&server),
        "--resolve",
        &format!("{HOST}=127.0.0.1"),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(5));
    let checks = json_of(&out)["mirrors"][0]["families"][0]["checks"].to_string();
    assert!(
        checks.contains("a sync is in progress or broke off"),
        "{checks}"
    );
}

/// A check of the first mirror's IPv4 family, by name.
fn check_named(doc: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    doc["mirrors"][0]["families"][0]["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
}

const IMAGE_FAMILIES: &[&str] = &["raspios_lite_armhf", "raspios_arm64"];
const IMAGE_DATES: &[&str] = &["2024-10-28", "2024-11-19"];
/// The older release the Imager still offers, at `os_list[1]` of the top list.
const PINNED: (&str, &str) = ("raspios_lite_armhf", "2024-10-28");

/// The Raspberry Pi download server (also served as a mirror of itself, its OS
/// lists pointing at itself): two image families, their OS lists (the top one
/// linking a second with `subitems_url`, and offering one image on another host).
fn image_upstream(work: &std::path::Path) -> (FixtureImages, FixtureServer) {
    let tree = FixtureImages::create(work, IMAGE_FAMILIES, IMAGE_DATES, 4096).unwrap();
    let server = FixtureServer::start(&tree.root).unwrap();
    server.set_listing(Some(ListingStyle::Nginx));
    tree.write_os_lists(&server.url(), Some(PINNED)).unwrap();
    (tree, server)
}

/// An image mirror synced by mirrorsync from [`image_upstream`], served at
/// `http://mirror.test.invalid:<port>/raspios/`, its OS lists rewritten to that URL
/// when `rewrite`.
struct ImageMirror {
    _work: tempfile::TempDir,
    tree: FixtureImages,
    upstream: FixtureServer,
    _server: FixtureServer,
    url: String,
}

impl ImageMirror {
    fn synced(rewrite: bool) -> ImageMirror {
        let work = tempfile::tempdir().unwrap();
        let (tree, upstream) = image_upstream(work.path());
        let root = work.path().join("mirror");
        std::fs::create_dir_all(&root).unwrap();
        let server = FixtureServer::start(&root).unwrap();
        server.set_listing(Some(ListingStyle::Nginx));
        let url = format!("http://{HOST}:{}/raspios/", server.addr().port());
        let rewrite_base = if rewrite {
            format!("rewrite_base = \"{url}\"")
        } else {
            String::new()
        };
        let config = work.path().join("mirrors.toml");
        std::fs::write(
            &config,
            format!(
                r#"[global]
root = "{root}"
hostname = "{HOST}"
concurrency = 4
timeout = "5s"
retries = 0
retry_delay = "10ms"

[[mirror]]
name = "raspios"
kind = "images"
upstream = "{upstream}"
{rewrite_base}
"#,
                root = root.display(),
                upstream = upstream.url(),
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
            .arg("-c")
            .arg(&config)
            .arg("sync")
            .env_remove("RUST_LOG")
            .output()
            .expect("running mirrorsync sync");
        assert_ok(&out);
        ImageMirror {
            _work: work,
            tree,
            upstream,
            _server: server,
            url,
        }
    }

    fn probe(&self, extra: &[&str]) -> Output {
        let resolve = format!("{HOST}=127.0.0.1");
        let mut args = vec![self.url.as_str(), "--resolve", &resolve];
        args.extend_from_slice(extra);
        probe(&args)
    }
}

#[test]
fn a_mirror_publishing_the_imager_os_list_is_checked_image_by_image() {
    let mirror = ImageMirror::synced(true);
    let upstream = mirror.upstream.url();
    let out = mirror.probe(&["--upstream", &upstream, "--json"]);
    let doc = json_of(&out);
    assert_schema(&doc);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["mirrors"][0]["kind"], "images");
    // Both documents read (the second through the first's subitems_url), the three
    // images on the mirror (the newest of each family and the pinned one) sampled,
    // and the image on another host only counted.
    let list = check_named(&doc, "os list").expect("an OS list check");
    assert_eq!(list["ok"], true, "{list}");
    assert_eq!(
        list["detail"],
        "os_list_imagingutility_v4.json and 1 more OS list(s) parse; 3 of 3 image(s) on this \
         mirror sampled, all present with the right size; 1 on other hosts"
    );
    let up = check_named(&doc, "os list: upstream").expect("an upstream check");
    assert_eq!(up["ok"], true, "{up}");

    // Fewer samples when asked for: the first and the last.
    let out = mirror.probe(&["--samples", "2", "--json"]);
    let doc = json_of(&out);
    let list = check_named(&doc, "os list").unwrap();
    assert!(
        list["detail"]
            .as_str()
            .unwrap()
            .contains("2 of 3 image(s) on this mirror sampled"),
        "{list}"
    );
    assert!(
        check_named(&doc, "os list: upstream").is_none(),
        "no --upstream"
    );

    // The same checks in the table and the Prometheus text.
    let out = mirror.probe(&[]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8(out.stdout).unwrap();
    let line = table
        .lines()
        .find(|l| l.contains("os list") && !l.contains("upstream"))
        .unwrap_or_else(|| panic!("no OS list line in\n{table}"));
    assert!(line.trim_start().starts_with("ok"), "{line}");
    let out = mirror.probe(&["--prometheus"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    assert!(scrape.samples.iter().any(|s| {
        s.metric == "mirrorsync_probe_check_ok"
            && s.labels.get("check") == Some("os list")
            && matches!(s.value, prometheus_parse::Value::Gauge(v) if v == 1.0)
    }));
}

#[test]
fn an_os_list_offering_an_image_the_mirror_no_longer_has_is_unhealthy() {
    let work = tempfile::tempdir().unwrap();
    let (mut tree, server) = image_upstream(work.path());
    let out = probe(&[&server.url(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{:#}", json_of(&out));

    // The pinned release is gone, sidecars and all, while the Imager still offers
    // it: the sidecars alone do not show it.
    let image = format!("{}{}", server.url(), tree.image_path(PINNED.0, PINNED.1));
    tree.remove_release(PINNED.0, PINNED.1).unwrap();
    let out = probe(&[&server.url(), "--json"]);
    let doc = json_of(&out);
    assert_schema(&doc);
    assert_eq!(out.status.code(), Some(5), "{doc:#}");
    assert_eq!(doc["mirrors"][0]["healthy"], false);
    assert_eq!(check_named(&doc, "images").unwrap()["ok"], true, "{doc:#}");
    let list = check_named(&doc, "os list").unwrap();
    assert_eq!(list["ok"], false, "{list}");
    assert_eq!(
        list["detail"],
        format!("os_list_imagingutility_v4.json os_list[1]: {image}: missing (HTTP 404)")
    );

    // The table names it too.
    let out = probe(&[&server.url()]);
    assert_eq!(out.status.code(), Some(5));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.contains("FAIL os list") && l.contains(&image)),
        "{table}"
    );
}

#[test]
fn an_image_of_another_size_than_the_os_list_says_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let (tree, server) = image_upstream(work.path());
    // Cut short on the mirror; its listing (and so the sidecar check) agrees with it.
    let rel = tree.image_path("raspios_arm64", "2024-11-19");
    let path = tree.root.join(&rel);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..1000]).unwrap();
    let out = probe(&[&server.url(), "--json"]);
    let doc = json_of(&out);
    assert_eq!(out.status.code(), Some(5), "{doc:#}");
    let list = check_named(&doc, "os list").unwrap();
    assert_eq!(list["ok"], false, "{list}");
    // In the document the top one links.
    assert_eq!(
        list["detail"],
        format!(
            "os_list_imagingutility_v4_other.json os_list[0]: {}{rel}: 1000 bytes, the list \
             says {}",
            server.url(),
            bytes.len()
        )
    );
}

#[test]
fn an_os_list_still_pointing_at_the_upstream_is_reported_with_upstream_given() {
    // Synced without rewrite_base: the mirror serves upstream's list as it is, so
    // Imager users pointed at the mirror download from the upstream.
    let mirror = ImageMirror::synced(false);
    let upstream = mirror.upstream.url();

    // Without --upstream, URLs on other hosts are only counted.
    let out = mirror.probe(&["--json"]);
    let doc = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    let list = check_named(&doc, "os list").unwrap();
    assert_eq!(list["ok"], true, "{list}");
    assert!(
        list["detail"]
            .as_str()
            .unwrap()
            .ends_with("no image on this mirror; 4 on other hosts"),
        "{list}"
    );

    let out = mirror.probe(&["--upstream", &upstream, "--json"]);
    let doc = json_of(&out);
    assert_schema(&doc);
    assert_eq!(out.status.code(), Some(5), "{doc:#}");
    let up = check_named(&doc, "os list: upstream").expect("an upstream check");
    assert_eq!(up["ok"], false, "{up}");
    let detail = up["detail"].as_str().unwrap();
    let newest = mirror.tree.image_path("raspios_lite_armhf", "2024-11-19");
    for want in [
        format!("4 URL(s) point at the upstream {upstream}, not rewritten to this mirror: "),
        format!("os_list_imagingutility_v4.json os_list[0]: {upstream}{newest}"),
        format!(
            "os_list_imagingutility_v4.json subitems_url: {upstream}os_list_imagingutility_v4_other.json"
        ),
    ] {
        assert!(detail.contains(&want), "{want:?} not in {detail:?}");
    }
    // The image on a third host is neither.
    assert!(!detail.contains("elsewhere.example.invalid"), "{detail}");
}
