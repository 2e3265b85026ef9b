//! The image crawler against a real nginx: `autoindex on;` as HTML and as JSON, the
//! listings a Raspberry Pi style download server really sends (names cut at 50
//! characters, exact sizes, its own dates), checked through nginx's own access log.

use std::path::PathBuf;
use std::process::{Command, Output};

use mirrorsync_testkit::images::{FixtureImages, OS_LIST, OS_SUBLIST};

use crate::logged_nginx::{Hit, Nginx};
use crate::support::{TreeDigest, assert_ok, digest_tree, temp_files};

const LITE: &str = "raspios_lite_armhf";
const ARM64: &str = "raspios_arm64";
const DATES: &[&str] = &["2024-07-04", "2024-10-28", "2024-11-19"];
const NEW_DATE: &str = "2024-12-01";
const IMAGE_SIZE: u64 = 64 * 1024;

struct LiveEnv {
    _work: tempfile::TempDir,
    tree: FixtureImages,
    nginx: Nginx,
    root: PathBuf,
    config: PathBuf,
}

impl LiveEnv {
    fn new(json: bool) -> LiveEnv {
        let work = tempfile::tempdir().expect("tempdir");
        let tree =
            FixtureImages::create(work.path(), &[LITE, ARM64], DATES, IMAGE_SIZE).expect("tree");
        let nginx = Nginx::serve(&tree.root, json, false);
        tree.write_os_lists(&nginx.url(), None).expect("os lists");
        let root = work.path().join("mirror");
        let config = work.path().join("mirrors.toml");
        std::fs::write(
            &config,
            format!(
                r#"[global]
root = "{root}"
hostname = "mirror.test.invalid"
concurrency = 4
timeout = "5s"
retries = 0
retry_delay = "10ms"
keep_snapshots = 2

[[mirror]]
name = "raspios"
kind = "images"
upstream = "{url}"
include = ["{LITE}/images/**", "os_list_*.json"]
keep_latest = 2
"#,
                root = root.display(),
                url = nginx.url(),
            ),
        )
        .expect("config");
        LiveEnv {
            _work: work,
            tree,
            nginx,
            root,
            config,
        }
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

    /// One `sync --json`: its report and the requests nginx saw for it.
    fn sync(&self) -> (serde_json::Value, Vec<Hit>) {
        let before = self.nginx.hits().len();
        let out = self.run(&["sync", "--json"]);
        assert_ok(&out);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let report = doc[0].clone();
        let requests = report["requests"].as_u64().expect("requests") as usize;
        let hits = self.nginx.hits_since(before, requests);
        assert_eq!(
            hits.len(),
            requests,
            "the report counts every request nginx saw: {hits:?}"
        );
        // 304 for the OS lists, asked for conditionally once held.
        assert!(
            hits.iter().all(|h| h.status == 200 || h.status == 304),
            "no request failed or went unanswered: {hits:?}"
        );
        (report, hits)
    }

    fn served(&self) -> TreeDigest {
        digest_tree(&self.root.join("raspios"))
    }

    /// What the mirror should hold: the OS lists, the newest two `lite` releases
    /// whole (`dates`), and the other family's image the OS list offers with the
    /// `.sha256` beside it that vouches for it.
    fn expected(&self, dates: &[&str]) -> TreeDigest {
        let arm64 = self.tree.image_path(ARM64, DATES[DATES.len() - 1]);
        let arm64_sidecar = format!("{arm64}.sha256");
        digest_tree(&self.tree.root)
            .into_iter()
            .filter(|(p, _)| {
                p == OS_LIST
                    || p == OS_SUBLIST
                    || *p == arm64
                    || *p == arm64_sidecar
                    || dates
                        .iter()
                        .any(|d| p.starts_with(&format!("{LITE}/images/{LITE}-{d}/")))
            })
            .collect()
    }
}

/// Requests for files (not the listing) of the oldest release, which keep_latest = 2
/// leaves out.
fn old_release_hits(hits: &[Hit]) -> impl Iterator<Item = &Hit> {
    let dir = format!("/{LITE}/images/{LITE}-{}/", DATES[0]);
    hits.iter()
        .filter(move |h| h.path.starts_with(&dir) && h.path != dir)
}

/// Cold sync, a no-op, then one new release, each against the real nginx.
fn mirror_through_nginx(json: bool) {
    let mut env = LiveEnv::new(json);
    let what = if json {
        "autoindex json"
    } else {
        "autoindex html"
    };

    // 1. Cold: the included family's newest two releases, the OS lists, and the
    //    image the nested OS list offers from the other family.
    let (report, hits) = env.sync();
    assert_eq!(report["outcome"], "published", "{what}: {report}");
    let expected = env.expected(&DATES[1..]);
    assert_eq!(expected.len(), 2 + 2 * 5 + 2, "{what}: {expected:?}");
    assert_eq!(env.served(), expected, "{what}: byte for byte");
    assert!(
        hits.iter()
            .all(|h| !h.path.starts_with(&format!("/{ARM64}/"))
                || h.path.ends_with(".img.xz")
                || h.path.ends_with(".img.xz.sha256")),
        "{what}: the other family is not listed, only its offered image and sidecar fetched: {hits:?}"
    );
    // keep_latest = 2: nothing of the oldest release is fetched, not even its
    // checksum file (only its listing is read).
    let oldest: Vec<&Hit> = old_release_hits(&hits).collect();
    assert!(
        oldest.is_empty(),
        "{what}: keep_latest = 2 leaves the oldest release alone: {oldest:?}"
    );
    assert!(temp_files(&env.root).is_empty());

    // 2. Nothing changed upstream: listings, and the OS lists asked for
    //    conditionally (304); no HEAD, no file download.
    let (report, hits) = env.sync();
    assert_eq!(report["outcome"], "unchanged", "{what}: {report}");
    assert_eq!(report["files_fetched"], 0, "{what}: {report}");
    let listings = hits.iter().filter(|h| h.is_listing()).count();
    // "/", "/lite/", "/lite/images/" and one per dated directory.
    assert_eq!(listings, 3 + DATES.len(), "{what}: {hits:?}");
    let other: Vec<&Hit> = hits
        .iter()
        .filter(|h| !h.is_listing() && !h.is_os_list())
        .collect();
    assert!(
        other.is_empty(),
        "{what}: a no-op asks only for listings and OS lists: {other:?}"
    );
    assert_eq!(env.served(), expected);

    // 3. A new release upstream, offered by the OS list: only its files (and the OS
    //    list that changed) are fetched; the release keep_latest now lets go stays
    //    served for grace.
    env.tree.add_release(LITE, NEW_DATE).expect("new release");
    env.tree
        .write_os_lists(&env.nginx.url(), None)
        .expect("os lists");
    let (report, hits) = env.sync();
    assert_eq!(report["outcome"], "published", "{what}: {report}");
    let new_dir = format!("/{LITE}/images/{LITE}-{NEW_DATE}/");
    let new_files: Vec<String> = digest_tree(&env.tree.root)
        .into_keys()
        .filter(|p| p.starts_with(&new_dir[1..]))
        .collect();
    assert_eq!(new_files.len(), 5, "{new_files:?}");
    // The five new files and the top OS list, whose newest image changed.
    assert_eq!(
        report["files_fetched"],
        new_files.len() + 1,
        "{what}: {report}"
    );
    let stray: Vec<&Hit> = hits
        .iter()
        .filter(|h| !h.is_listing() && !h.is_os_list() && !h.path.starts_with(&new_dir))
        .collect();
    assert!(
        stray.is_empty(),
        "{what}: only the new release is fetched: {stray:?}"
    );
    for f in &new_files {
        let gets = hits
            .iter()
            .filter(|h| h.method == "GET" && h.path == format!("/{f}"))
            .count();
        assert_eq!(gets, 1, "{what}: {f} fetched once: {hits:?}");
    }
    let expected = env.expected(&[DATES[2], NEW_DATE]);
    let retired = format!("{LITE}/images/{LITE}-{}/", DATES[1]);
    let served = env.served();
    let (in_grace, rest): (TreeDigest, TreeDigest) = served
        .into_iter()
        .partition(|(p, _)| p.starts_with(&retired));
    assert_eq!(rest, expected, "{what}: byte for byte");
    assert_eq!(
        in_grace,
        env.expected(&[DATES[1]])
            .into_iter()
            .filter(|(p, _)| p.starts_with(&retired))
            .collect::<TreeDigest>(),
        "{what}: the release keep_latest let go is still served, for grace"
    );
    let grace = report["grace"].to_string();
    assert!(grace.contains(&retired), "{what}: {report}");
    assert!(temp_files(&env.root).is_empty());
}

#[test]
fn an_image_tree_behind_a_real_nginx_autoindex_is_mirrored_and_kept_up_to_date() {
    mirror_through_nginx(false);
}

#[test]
fn an_image_tree_behind_a_real_nginx_json_autoindex_is_mirrored_and_kept_up_to_date() {
    mirror_through_nginx(true);
}
