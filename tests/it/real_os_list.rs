//! Issue #15: an image tree verified as the real download server serves it. A real
//! nginx (`autoindex on`, the download server's layout and names) serves twelve
//! Raspberry Pi OS families and an OS list shaped like the real
//! `os_list_imagingutility_v4.json`: an `imager` section with devices, categories
//! nested inline, entries that give `image_download_size` but (mostly) no
//! `image_download_sha256`, and dozens of entries on other hosts. Every request is
//! checked in nginx's own access log.

use std::path::PathBuf;
use std::process::{Command, Output};

use mirrorsync_testkit::images::{FixtureImages, OS_LIST, RealOsList};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::logged_nginx::{Hit, Nginx};
use crate::support::{TreeDigest, assert_exit, assert_ok, digest_tree, temp_files};

/// The twelve Raspberry Pi OS images the real list offers from the download server.
const FAMILIES: &[&str] = &[
    "raspios_arm64",
    "raspios_armhf",
    "raspios_lite_arm64",
    "raspios_lite_armhf",
    "raspios_full_arm64",
    "raspios_full_armhf",
    "raspios_oldstable_arm64",
    "raspios_oldstable_armhf",
    "raspios_oldstable_lite_arm64",
    "raspios_oldstable_lite_armhf",
    "raspios_oldstable_full_arm64",
    "raspios_oldstable_full_armhf",
];
const LITE: &str = "raspios_lite_armhf";
const DATES: &[&str] = &["2024-07-04", "2024-10-22", "2024-11-19"];
const NEW_DATE: &str = "2024-12-03";
const IMAGE_SIZE: u64 = 16 * 1024;
/// Entries on other hosts (images and `subitems_url` documents).
const OTHER_HOSTS: usize = 40;
const MIRROR_URL: &str = "https://mirror.test.invalid/raspios/";

// ---------------------------------------------------------------------------------

struct RealEnv {
    _work: tempfile::TempDir,
    tree: FixtureImages,
    nginx: Nginx,
    root: PathBuf,
    config: PathBuf,
}

impl RealEnv {
    /// Twelve families of three releases each behind nginx (with a redirecting old
    /// name when `redirect`); no OS list yet.
    fn new(redirect: bool) -> RealEnv {
        let work = tempfile::tempdir().expect("tempdir");
        let tree =
            FixtureImages::create_real(work.path(), FAMILIES, DATES, IMAGE_SIZE).expect("tree");
        let nginx = Nginx::serve(&tree.root, false, redirect);
        RealEnv {
            root: work.path().join("mirror"),
            config: work.path().join("mirrors.toml"),
            _work: work,
            tree,
            nginx,
        }
    }

    /// One `[[mirror]]` of kind images per (name, extra lines), all from `upstream`.
    fn configure(&self, upstream: &str, mirrors: &[(&str, String)]) {
        let mut text = format!(
            r#"[global]
root = "{root}"
hostname = "mirror.test.invalid"
concurrency = 4
timeout = "5s"
retries = 0
retry_delay = "10ms"
keep_snapshots = 2
"#,
            root = self.root.display()
        );
        for (name, extra) in mirrors {
            text.push_str(&format!(
                "\n[[mirror]]\nname = \"{name}\"\nkind = \"images\"\nupstream = \"{upstream}\"\n{extra}\n"
            ));
        }
        std::fs::write(&self.config, text).expect("config");
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("running mirrorsync")
    }

    /// One successful `sync --json`: the reports, and the requests nginx saw, which
    /// `unreported` more than the reports count (a redirect the client followed).
    fn sync_with(&self, unreported: usize) -> (Vec<Value>, Vec<Hit>) {
        let before = self.nginx.hits().len();
        let out = self.run(&["sync", "--json"]);
        assert_ok(&out);
        let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
        let reports = doc.as_array().expect("an array of reports").clone();
        let requests: usize = reports
            .iter()
            .map(|r| r["requests"].as_u64().expect("requests") as usize)
            .sum();
        let hits = self.nginx.hits_since(before, requests + unreported);
        assert_eq!(
            hits.len(),
            requests + unreported,
            "the reports count every request nginx saw: {hits:#?}"
        );
        (reports, hits)
    }

    fn sync(&self) -> (Vec<Value>, Vec<Hit>) {
        self.sync_with(0)
    }

    /// A `sync` that must fail (exit 1): its stderr, and the requests nginx logged
    /// until one matched `until`.
    fn sync_failing(&self, until: &dyn Fn(&Hit) -> bool) -> (String, Vec<Hit>) {
        let before = self.nginx.hits().len();
        let out = self.run(&["sync"]);
        let stderr = assert_exit(&out, 1);
        let hits = self
            .nginx
            .hits_until(before, &|hits| hits.iter().any(until));
        (stderr, hits)
    }

    fn served(&self, name: &str) -> TreeDigest {
        digest_tree(&self.root.join(name))
    }

    /// Upstream's files for which `keep` holds.
    fn upstream(&self, keep: &dyn Fn(&str) -> bool) -> TreeDigest {
        digest_tree(&self.tree.root)
            .into_iter()
            .filter(|(p, _)| keep(p))
            .collect()
    }

    /// The OS list mirror `name` serves.
    fn published_list(&self, name: &str) -> Value {
        let bytes = std::fs::read(self.root.join(name).join(OS_LIST)).expect("published list");
        serde_json::from_slice(&bytes).expect("the published list is JSON")
    }

    /// The image paths the list's Raspberry Pi OS entries point at.
    fn list_images(&self, list: &RealOsList) -> Vec<String> {
        list.raspios
            .iter()
            .map(|i| self.tree.image_path(&i.family, &i.date))
            .collect()
    }
}

/// Every string value in `doc`, at any depth, with the key it is under.
fn strings(doc: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, key: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::String(s) => out.push((key.to_string(), s.clone())),
            Value::Array(a) => a.iter().for_each(|x| walk(x, key, out)),
            Value::Object(m) => m.iter().for_each(|(k, x)| walk(x, k, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, "", &mut out);
    out
}

/// `doc` with each string `map` gives a replacement for replaced.
fn map_strings(doc: &Value, map: &dyn Fn(&str) -> Option<String>) -> Value {
    match doc {
        Value::String(s) => Value::String(map(s).unwrap_or_else(|| s.clone())),
        Value::Array(a) => Value::Array(a.iter().map(|x| map_strings(x, map)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), map_strings(x, map)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What a mirror with `rewrite_base = MIRROR_URL` should publish: `upstream_doc`
/// with the URLs of exactly the `mirrored` paths (under `base`) pointing at it.
fn rewritten(upstream_doc: &Value, base: &str, mirrored: &[String]) -> Value {
    map_strings(upstream_doc, &|s| {
        let rel = s.strip_prefix(base)?;
        mirrored
            .iter()
            .any(|m| m == rel)
            .then(|| format!("{MIRROR_URL}{rel}"))
    })
}

/// A plain HTTP/1.0 GET of `path` on 127.0.0.1:`port`: the whole response.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

/// The file name of a path.
fn name_of(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

fn images_and_sidecars(images: &[String]) -> Vec<String> {
    images
        .iter()
        .flat_map(|i| [i.clone(), format!("{i}.sha256")])
        .collect()
}

// ---------------------------------------------------------------------------------

/// a. An operator mirrors only the OS list, as the real one is (no download digests):
///    every image it points at under upstream is mirrored, verified against the
///    `.sha256` beside it (mirrored too), and the list points at the mirror.
#[test]
fn every_image_the_real_shaped_os_list_points_at_is_verified_by_its_sidecar() {
    let env = RealEnv::new(false);
    // One file the list points at with a size only: no digest, no sidecar upstream.
    let unchecked = "imager/utilities/rpi-diagnostics-2024-11-19.zip".to_string();
    env.tree
        .put_plain(&unchecked, &[7u8; 3000])
        .expect("unchecked file");
    let mut list = env.tree.real_os_list(OTHER_HOSTS);
    list.unchecked.push(unchecked.clone());
    let upstream_doc = env
        .tree
        .write_real_os_list(&env.nginx.url(), &list)
        .expect("os list");
    let images = env.list_images(&list);
    assert_eq!(images.len(), 12, "{images:?}");
    let with_digest = list.raspios.iter().filter(|i| i.digest).count();
    assert_eq!(with_digest, 4, "mixed: some entries give a digest");
    // The shape: no download digest on most of ours, plenty of other hosts.
    let keys = strings(&upstream_doc["os_list"]);
    let ours = keys
        .iter()
        .filter(|(k, v)| k == "url" && v.starts_with(&env.nginx.url()))
        .count();
    let elsewhere = keys
        .iter()
        .filter(|(k, v)| (k == "url" || k == "subitems_url") && v.starts_with("https://"))
        .count();
    assert_eq!(ours, 13);
    assert_eq!(elsewhere, OTHER_HOSTS);
    env.configure(
        &env.nginx.url(),
        &[(
            "raspios",
            format!("include = [\"{OS_LIST}\"]\nrewrite_base = \"{MIRROR_URL}\""),
        )],
    );

    let (reports, hits) = env.sync();
    let report = &reports[0];
    assert_eq!(report["outcome"], "published", "{report}");

    // Exactly: each image and its sidecar, the unchecked file, the list.
    let mut mirrored = images_and_sidecars(&images);
    mirrored.push(unchecked.clone());
    let mut served = env.served("raspios");
    let served_list = served.remove(OS_LIST);
    assert!(served_list.is_some(), "the list is served");
    assert_eq!(
        served,
        env.upstream(&|p| mirrored.iter().any(|m| m == p)),
        "byte for byte"
    );
    // Each dated release directory is stored once, shared by the snapshots.
    for image in &images {
        let dir = env.root.join("raspios").join(image);
        let dir = dir.parent().expect("a dated directory");
        assert!(
            std::fs::symlink_metadata(dir)
                .expect("dated dir")
                .is_symlink(),
            "{} is reached through the shared content",
            dir.display()
        );
    }
    // Each image is what the sidecar beside it says.
    for image in &images {
        let sidecar =
            std::fs::read_to_string(env.root.join("raspios").join(format!("{image}.sha256")))
                .expect("sidecar mirrored beside the image");
        let bytes = std::fs::read(env.root.join("raspios").join(image)).expect("image");
        assert_eq!(
            sidecar,
            format!(
                "{}  {}\n",
                hex::encode(Sha256::digest(&bytes)),
                name_of(image)
            ),
            "{image}"
        );
    }
    // Verified: the 12 images (8 by their sidecar alone, 4 by the list's digest too).
    // Unverified: the one file neither a digest nor a sidecar vouches for.
    let verified = images.len();
    let unverified = report["files_unverified"]
        .as_u64()
        .expect("files_unverified");
    eprintln!(
        "real-shaped list: {verified} images verified ({} by sidecar alone, {with_digest} by list digest and sidecar), {unverified} unverified",
        verified - with_digest
    );
    assert_eq!(unverified, 1, "only the sidecar-less file: {report}");
    // 12 images, 12 sidecars, the unchecked file and the list.
    assert_eq!(report["files_fetched"], 12 + 12 + 1 + 1, "{report}");

    // What nginx saw: the top listing, the list, each image and sidecar once, the
    // unchecked file and a 404 for its missing sidecar; no HEAD.
    assert!(hits.iter().all(|h| h.method == "GET"), "no HEAD: {hits:#?}");
    assert_eq!(
        hits.iter().filter(|h| h.is_listing()).count(),
        1,
        "{hits:#?}"
    );
    for rel in mirrored.iter().chain([&OS_LIST.to_string()]) {
        let gets: Vec<&Hit> = hits.iter().filter(|h| h.get_of(rel)).collect();
        assert_eq!(gets.len(), 1, "{rel} fetched once: {hits:#?}");
        assert_eq!(gets[0].status, 200, "{rel}");
    }
    let missing = format!("{unchecked}.sha256");
    let not_found: Vec<&Hit> = hits.iter().filter(|h| h.status != 200).collect();
    assert!(
        not_found.len() == 1 && not_found[0].get_of(&missing) && not_found[0].status == 404,
        "only the missing sidecar is a 404: {not_found:#?}"
    );
    assert_eq!(hits.len(), 1 + 1 + 12 + 12 + 1 + 1, "{hits:#?}");

    // The published list points at the mirror for what it holds, nothing else.
    let published = env.published_list("raspios");
    let mut files: Vec<String> = images.clone();
    files.push(unchecked);
    assert_eq!(
        published,
        rewritten(&upstream_doc, &env.nginx.url(), &files),
        "only the mirrored URLs rewritten"
    );
    let to_mirror = strings(&published)
        .into_iter()
        .filter(|(_, v)| v.starts_with(MIRROR_URL))
        .count();
    assert_eq!(to_mirror, 13);
    assert!(temp_files(&env.root).is_empty());
}

/// b1. Upstream adds a release to the list whose image does not match its sidecar
///     (same size): refused, naming it; the served tree stays as it was.
#[test]
fn a_new_list_image_whose_bytes_do_not_match_its_sidecar_is_refused() {
    let mut env = RealEnv::new(false);
    let mut list = env.tree.real_os_list(OTHER_HOSTS);
    env.tree
        .write_real_os_list(&env.nginx.url(), &list)
        .expect("os list");
    env.configure(
        &env.nginx.url(),
        &[(
            "raspios",
            format!("include = [\"{OS_LIST}\"]\nrewrite_base = \"{MIRROR_URL}\""),
        )],
    );
    let (reports, _) = env.sync();
    assert_eq!(reports[0]["outcome"], "published", "{}", reports[0]);
    let before = env.served("raspios");
    assert_eq!(before.len(), 1 + 24, "{before:?}");

    // A new lite release, its image changed after its sidecar was written.
    env.tree.add_release(LITE, NEW_DATE).expect("new release");
    let image = env.tree.tamper_image(LITE, NEW_DATE).expect("tamper");
    list.point(LITE, NEW_DATE).digest(LITE, false);
    env.tree
        .write_real_os_list(&env.nginx.url(), &list)
        .expect("os list");
    let listed = std::fs::read_to_string(env.tree.root.join(OS_LIST)).expect("list");
    assert!(
        listed.contains(&image)
            && listed.contains(&format!("\"image_download_size\": {IMAGE_SIZE}")),
        "the list offers it at its (unchanged) size"
    );

    let (stderr, hits) = env.sync_failing(&|h: &Hit| h.get_of(&image));
    assert!(stderr.contains(&image), "names the image: {stderr}");
    assert!(
        hits.iter().any(|h| h.get_of(&image) && h.status == 200),
        "it was downloaded and checked: {hits:#?}"
    );
    // Once: with no partial file kept from an earlier run, a mismatch is upstream's,
    // and downloading a whole image again would only say so twice.
    assert_eq!(
        hits.iter().filter(|h| h.get_of(&image)).count(),
        1,
        "{hits:#?}"
    );
    assert_eq!(env.served("raspios"), before, "byte for byte unchanged");
    assert!(
        temp_files(&env.root).is_empty(),
        "{:?}",
        temp_files(&env.root)
    );
    let partial = digest_tree(&env.root.join(".mirrorsync/raspios/partial"));
    assert!(
        partial.is_empty(),
        "the refused bytes are not kept: {partial:?}"
    );
    eprintln!("refused, as reported:\n{stderr}");
}

/// b2. An image the mirror holds changes upstream under its unchanged sidecar, the
///     listing showing a new date (same size): fetched again, refused, naming it.
#[test]
fn a_held_list_image_that_changes_upstream_under_an_unchanged_sidecar_is_refused() {
    let env = RealEnv::new(false);
    let list = env.tree.real_os_list(OTHER_HOSTS);
    env.tree
        .write_real_os_list(&env.nginx.url(), &list)
        .expect("os list");
    env.configure(
        &env.nginx.url(),
        &[(
            "raspios",
            format!(
                "include = [\"{LITE}/images/**\", \"{OS_LIST}\"]\nrewrite_base = \"{MIRROR_URL}\""
            ),
        )],
    );
    let (reports, _) = env.sync();
    assert_eq!(reports[0]["outcome"], "published", "{}", reports[0]);
    let before = env.served("raspios");
    let newest = DATES[DATES.len() - 1];
    let image = env.tree.image_path(LITE, newest);
    assert!(before.contains_key(&image));

    let upstream_before = std::fs::read(env.tree.root.join(&image)).expect("image");
    let listing_dir = format!("/{LITE}/images/{LITE}-{newest}/");
    let listing = |env: &RealEnv| -> String { http_get(env.nginx.port, &listing_dir) };
    let shown_before = listing(&env);
    env.tree.tamper_image(LITE, newest).expect("tamper");
    let upstream_after = std::fs::read(env.tree.root.join(&image)).expect("image");
    assert_eq!(upstream_before.len(), upstream_after.len(), "same size");
    assert_ne!(upstream_before, upstream_after, "other bytes");
    let shown_after = listing(&env);
    assert!(shown_before.contains(name_of(&image)), "{shown_before}");
    assert_ne!(shown_before, shown_after, "the listing shows a new date");

    let (stderr, hits) = env.sync_failing(&|h: &Hit| h.get_of(&image));
    assert!(stderr.contains(&image), "names the image: {stderr}");
    assert!(
        hits.iter().any(|h| h.get_of(&image)),
        "fetched again, not linked from the published copy: {hits:#?}"
    );
    assert_eq!(env.served("raspios"), before, "byte for byte unchanged");
    assert!(
        temp_files(&env.root).is_empty(),
        "{:?}",
        temp_files(&env.root)
    );
    let partial = digest_tree(&env.root.join(".mirrorsync/raspios/partial"));
    assert!(
        partial.is_empty(),
        "the refused bytes are not kept: {partial:?}"
    );
    eprintln!("refused, as reported:\n{stderr}");
}

/// c. keep_latest = 1 while the list still offers an older lite release: that release
///    stays, and the published list points at the mirror for it.
#[test]
fn keep_latest_keeps_the_older_release_the_list_points_at_and_the_list_points_at_the_mirror() {
    let env = RealEnv::new(false);
    let mut list = env.tree.real_os_list(OTHER_HOSTS);
    list.point(LITE, DATES[0]);
    let upstream_doc = env
        .tree
        .write_real_os_list(&env.nginx.url(), &list)
        .expect("os list");
    env.configure(
        &env.nginx.url(),
        &[(
            "raspios",
            format!(
                "include = [\"{LITE}/images/**\", \"{OS_LIST}\"]\nkeep_latest = 1\nrewrite_base = \"{MIRROR_URL}\""
            ),
        )],
    );
    let (reports, hits) = env.sync();
    let report = &reports[0];
    assert_eq!(report["outcome"], "published", "{report}");

    let images = env.list_images(&list);
    let pinned = env.tree.image_path(LITE, DATES[0]);
    assert!(images.contains(&pinned), "{images:?}");
    let dir = |d: &str| format!("{LITE}/images/{LITE}-{d}/");
    let newest = DATES[DATES.len() - 1];
    let others = images_and_sidecars(&images);
    let expected = env.upstream(&|p| {
        p.starts_with(&dir(DATES[0]))
            || p.starts_with(&dir(newest))
            || others.iter().any(|o| o == p)
    });
    let mut served = env.served("raspios");
    assert!(served.remove(OS_LIST).is_some());
    assert_eq!(
        served, expected,
        "the newest lite release and the older one the list offers, whole; the list's other images"
    );
    assert!(
        !served.keys().any(|p| p.starts_with(&dir(DATES[1]))),
        "the release between is let go"
    );
    let between: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.path.starts_with(&format!("/{}", dir(DATES[1]))) && !h.is_listing())
        .collect();
    assert!(between.is_empty(), "nothing of it fetched: {between:#?}");

    let published = env.published_list("raspios");
    assert_eq!(
        published,
        rewritten(&upstream_doc, &env.nginx.url(), &images)
    );
    assert!(
        strings(&published)
            .iter()
            .any(|(k, v)| k == "url" && *v == format!("{MIRROR_URL}{pinned}")),
        "the list points at the mirror for the older release"
    );
    assert!(
        !strings(&published)
            .iter()
            .any(|(k, v)| k == "url" && v.starts_with(&env.nginx.url())),
        "no image URL left pointing at upstream"
    );

    // The list moves on to the newest: the older release is let go (kept for grace)
    // and the list points at the mirror for the newest.
    list.point(LITE, newest);
    env.tree
        .write_real_os_list(&env.nginx.url(), &list)
        .expect("os list");
    let (reports, _) = env.sync();
    let report = &reports[0];
    assert_eq!(report["outcome"], "published", "{report}");
    assert!(
        report["grace"].to_string().contains(&dir(DATES[0])),
        "the older release goes, after grace: {report}"
    );
    let published = env.published_list("raspios");
    assert!(
        strings(&published).iter().any(|(k, v)| k == "url"
            && *v == format!("{MIRROR_URL}{}", env.tree.image_path(LITE, newest))),
        "{published}"
    );
}

/// d. Nothing changed upstream: only listings and conditional requests for the OS
///    list (304); no HEAD, no GET of any image or sidecar.
#[test]
fn a_no_op_asks_only_for_listings_and_the_os_list_conditionally() {
    let env = RealEnv::new(false);
    let mut list = env.tree.real_os_list(OTHER_HOSTS);
    // A file the list offers with no checksum anywhere: its missing `.sha256` is
    // asked for once (a 404), then remembered, not asked for on every run.
    let unchecked = "imager/utilities/rpi-diagnostics-2024-11-19.zip".to_string();
    env.tree
        .put_plain(&unchecked, &[7u8; 3000])
        .expect("unchecked file");
    list.unchecked.push(unchecked.clone());
    env.tree
        .write_real_os_list(&env.nginx.url(), &list)
        .expect("os list");
    // The operator's mirror (lite releases and the list) and an Imager-only one.
    env.configure(
        &env.nginx.url(),
        &[
            (
                "raspios",
                format!(
                    "include = [\"{LITE}/images/**\", \"{OS_LIST}\"]\nrewrite_base = \"{MIRROR_URL}\""
                ),
            ),
            (
                "imager",
                format!("include = [\"{OS_LIST}\"]\nrewrite_base = \"{MIRROR_URL}\""),
            ),
        ],
    );
    let (reports, cold) = env.sync();
    for r in &reports {
        assert_eq!(r["outcome"], "published", "{r}");
    }
    let sidecar = format!("/{unchecked}.sha256");
    let asked = |hits: &[Hit]| hits.iter().filter(|h| h.path == sidecar).count();
    assert_eq!(
        asked(&cold),
        2,
        "the missing sidecar is asked for once per mirror: {cold:#?}"
    );
    let served = (env.served("raspios"), env.served("imager"));

    let (reports, hits) = env.sync();
    for r in &reports {
        assert_eq!(r["outcome"], "unchanged", "{r}");
        assert_eq!(r["files_fetched"], 0, "{r}");
    }
    assert_eq!(served, (env.served("raspios"), env.served("imager")));
    let per_mirror: Vec<u64> = reports
        .iter()
        .map(|r| r["requests"].as_u64().unwrap_or(0))
        .collect();
    // raspios: "/", "/lite/", "/lite/images/", one per release, and the list (304);
    // imager: "/" and the list (304).
    let expected = vec![3 + DATES.len() as u64 + 1, 1 + 1];
    eprintln!(
        "no-op: {} requests in all (raspios {}, imager {}): {:?}",
        hits.len(),
        per_mirror[0],
        per_mirror[1],
        hits.iter()
            .map(|h| format!("{} {} {}", h.method, h.path, h.status))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        per_mirror,
        expected,
        "no-op requests per mirror (raspios, imager); nginx saw {} in all: {hits:#?}",
        hits.len()
    );
    assert_eq!(
        hits.len(),
        9,
        "nginx saw 9 requests for the no-op: {hits:#?}"
    );
    let listings = hits.iter().filter(|h| h.is_listing()).count();
    let lists: Vec<&Hit> = hits.iter().filter(|h| h.is_os_list()).collect();
    assert_eq!(listings, 3 + DATES.len() + 1, "{hits:#?}");
    assert_eq!(lists.len(), 2, "{hits:#?}");
    assert!(
        lists.iter().all(|h| h.status == 304),
        "the OS list asked for conditionally: {lists:#?}"
    );
    let other: Vec<&Hit> = hits
        .iter()
        .filter(|h| !h.is_listing() && !h.is_os_list())
        .collect();
    assert!(
        other.is_empty(),
        "no HEAD, no GET of an image or sidecar: {other:#?}"
    );
}

/// e. The configured upstream root redirects to another host (as
///    downloads.raspberrypi.org to .com): followed, published, with a warning to name
///    the new host; the list's URLs (naming the new host) mirrored and rewritten.
#[test]
fn an_upstream_root_redirecting_to_another_host_is_followed_with_a_warning() {
    let env = RealEnv::new(true);
    let new_base = env.nginx.other_name();
    let old_base = env.nginx.old_url();
    let list = env.tree.real_os_list(OTHER_HOSTS);
    let upstream_doc = env
        .tree
        .write_real_os_list(&new_base, &list)
        .expect("os list");
    env.configure(
        &old_base,
        &[(
            "raspios",
            format!(
                "include = [\"{LITE}/images/**\", \"{OS_LIST}\"]\nrewrite_base = \"{MIRROR_URL}\""
            ),
        )],
    );
    // The client follows the 301 itself: one request for mirrorsync, two for nginx.
    let (reports, hits) = env.sync_with(1);
    let report = &reports[0];
    assert_eq!(report["outcome"], "published", "{report}");
    let warning = format!(
        "upstream {old_base} redirects to {new_base}: mirrored from there; name it as upstream in the config"
    );
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(warnings.contains(&warning.as_str()), "{warnings:#?}");

    let old_port = env.nginx.redirect_port.expect("old port");
    let at_old: Vec<&Hit> = hits.iter().filter(|h| h.port == old_port).collect();
    assert_eq!(
        at_old.len(),
        1,
        "only the root asked for at the old name: {hits:#?}"
    );
    assert_eq!((at_old[0].path.as_str(), at_old[0].status), ("/", 301));

    let images = env.list_images(&list);
    let others = images_and_sidecars(&images);
    let expected = env.upstream(&|p| {
        (p.starts_with(&format!("{LITE}/images/")) || others.iter().any(|o| o == p)) && p != OS_LIST
    });
    let mut served = env.served("raspios");
    assert!(served.remove(OS_LIST).is_some());
    assert_eq!(served, expected, "byte for byte");
    let published = env.published_list("raspios");
    assert_eq!(published, rewritten(&upstream_doc, &new_base, &images));
    assert_eq!(
        strings(&published)
            .iter()
            .filter(|(k, v)| k == "url" && v.starts_with(MIRROR_URL))
            .count(),
        12
    );

    // Every run says so again until the config is changed.
    let (reports, hits) = env.sync_with(1);
    assert_eq!(reports[0]["outcome"], "unchanged", "{}", reports[0]);
    assert!(
        reports[0]["warnings"]
            .to_string()
            .contains("name it as upstream in the config"),
        "{}",
        reports[0]
    );
    let other: Vec<&Hit> = hits
        .iter()
        .filter(|h| !h.is_listing() && !h.is_os_list())
        .collect();
    assert!(other.is_empty(), "{other:#?}");
}

/// f. The list's URLs use another name of the same server: mirrored with `aliases`
///    naming it, left pointing at upstream without.
#[test]
fn list_urls_under_another_name_of_upstream_are_mirrored_only_with_aliases() {
    let env = RealEnv::new(false);
    let alias = env.nginx.other_name();
    let list = env.tree.real_os_list(OTHER_HOSTS);
    let upstream_doc = env.tree.write_real_os_list(&alias, &list).expect("os list");
    let mirror =
        |tail: &str| format!("include = [\"{OS_LIST}\"]\nrewrite_base = \"{MIRROR_URL}\"\n{tail}");
    env.configure(
        &env.nginx.url(),
        &[
            ("aliased", mirror(&format!("aliases = [\"{alias}\"]"))),
            ("plain", mirror("")),
        ],
    );
    let (reports, hits) = env.sync();
    for r in &reports {
        assert_eq!(r["outcome"], "published", "{r}");
    }
    let images = env.list_images(&list);

    // With the alias: every image and sidecar, the list pointing at the mirror.
    let mirrored = images_and_sidecars(&images);
    let mut aliased = env.served("aliased");
    assert!(aliased.remove(OS_LIST).is_some());
    assert_eq!(aliased, env.upstream(&|p| mirrored.iter().any(|m| m == p)));
    let published = env.published_list("aliased");
    assert_eq!(published, rewritten(&upstream_doc, &alias, &images));

    // Without: only the list, which keeps pointing at upstream's other name.
    let plain = env.served("plain");
    assert_eq!(plain.keys().collect::<Vec<_>>(), vec![OS_LIST], "{plain:?}");
    assert_eq!(env.published_list("plain"), upstream_doc);
    assert_eq!(
        strings(&env.published_list("plain"))
            .iter()
            .filter(|(k, v)| k == "url" && v.starts_with(&alias))
            .count(),
        12
    );
    // Each image fetched once, for the aliased mirror only.
    for image in &images {
        let gets = hits.iter().filter(|h| h.get_of(image)).count();
        assert_eq!(gets, 1, "{image}: {hits:#?}");
    }
}
