//! An operator mirrors a Raspberry Pi style image download tree: listings in the
//! styles nginx and Apache write, checksum sidecars, signatures, the Imager's OS list.

use std::path::PathBuf;
use std::process::{Command, Output};

use mirrorsync_testkit::autoindex::ListingStyle;
use mirrorsync_testkit::images::{FixtureImages, OS_LIST, OS_SUBLIST};
use mirrorsync_testkit::server::{Fault, FixtureServer};
use sha2::{Digest, Sha256};

use crate::support::{TreeDigest, assert_exit, assert_ok, digest_tree, temp_files};

const FAMILIES: &[&str] = &["raspios_lite_armhf", "raspios_arm64"];
const DATES: &[&str] = &["2024-03-15", "2024-07-04", "2024-10-28", "2024-11-19"];
const IMAGE_SIZE: u64 = 256 * 1024;

struct ImageEnv {
    _work: tempfile::TempDir,
    tree: FixtureImages,
    server: FixtureServer,
    root: PathBuf,
    config: PathBuf,
}

impl ImageEnv {
    fn new(style: ListingStyle, image_size: u64, extra: &str) -> ImageEnv {
        let work = tempfile::tempdir().expect("tempdir");
        let tree = FixtureImages::create(work.path(), FAMILIES, DATES, image_size).expect("tree");
        let server = FixtureServer::start(&tree.root).expect("server");
        server.set_listing(Some(style));
        tree.write_os_lists(&server.url(), None).expect("os lists");
        let env = ImageEnv {
            root: work.path().join("mirror"),
            config: work.path().join("mirrors.toml"),
            _work: work,
            tree,
            server,
        };
        env.write_config(extra);
        env
    }

    fn write_config(&self, extra: &str) {
        let text = format!(
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
{extra}
"#,
            root = self.root.display(),
            url = self.server.url(),
        );
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

    fn sync_json(&self) -> serde_json::Value {
        let out = self.run(&["sync", "--json"]);
        assert_ok(&out);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        doc[0].clone()
    }

    fn served(&self) -> PathBuf {
        self.root.join("raspios")
    }

    fn served_digest(&self) -> TreeDigest {
        digest_tree(&self.served())
    }

    fn upstream_file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.tree.root.join(rel)).expect("upstream file")
    }
}

/// The upstream files a mirror with these patterns should hold.
fn upstream_subset(env: &ImageEnv, keep: &dyn Fn(&str) -> bool) -> TreeDigest {
    digest_tree(&env.tree.root)
        .into_iter()
        .filter(|(p, _)| keep(p))
        .collect()
}

const LITE_ONLY: &str = r#"include = ["raspios_lite_armhf/images/**"]
exclude = ["**/*.torrent"]"#;

fn lite_only(p: &str) -> bool {
    p.starts_with("raspios_lite_armhf/images/") && !p.ends_with(".torrent")
}

#[test]
fn an_operator_mirrors_the_images_they_include_from_each_listing_style() {
    for style in [
        ListingStyle::Nginx,
        ListingStyle::NginxJson,
        ListingStyle::ApacheTable,
    ] {
        let env = ImageEnv::new(style, IMAGE_SIZE, LITE_ONLY);
        let report = env.sync_json();
        assert_eq!(report["outcome"], "published", "{style:?}: {report}");
        assert_eq!(
            env.served_digest(),
            upstream_subset(&env, &lite_only),
            "{style:?}: the served tree is exactly the included part of upstream"
        );
        // The .info and .sig files have no checksum anywhere (and no keyring checks
        // the signatures): fetched, but said to be unverified.
        assert_eq!(report["files_unverified"], 2 * DATES.len(), "{style:?}");
        // Nothing outside the include patterns was even listed.
        assert_eq!(env.server.count("/raspios_arm64/"), 0, "{style:?}");
        assert!(temp_files(&env.root).is_empty());

        // Nothing changed upstream: one request per listing, no HEADs, no downloads.
        env.server.clear_log();
        let report = env.sync_json();
        assert_eq!(report["outcome"], "unchanged", "{style:?}: {report}");
        let requests = env.server.requests();
        assert!(
            requests
                .iter()
                .all(|r| r.method == "GET" && r.path.ends_with('/')),
            "{style:?}: only listings are asked for: {requests:?}"
        );
    }
}

#[test]
fn a_new_release_upstream_is_fetched_and_only_it() {
    let mut env = ImageEnv::new(ListingStyle::Nginx, IMAGE_SIZE, LITE_ONLY);
    assert_ok(&env.run(&["sync"]));
    env.tree
        .add_release("raspios_lite_armhf", "2024-12-01")
        .expect("new release");
    env.server.clear_log();
    let report = env.sync_json();
    assert_eq!(report["outcome"], "published");
    // The image, its .sha256, .sig and .info (the .torrent is excluded).
    assert_eq!(report["files_fetched"], 4, "{report}");
    assert_eq!(env.served_digest(), upstream_subset(&env, &lite_only));
    let image_gets = env
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(".img.xz"))
        .count();
    assert_eq!(image_gets, 1);
}

#[test]
fn an_image_that_does_not_match_its_checksum_is_not_published() {
    let mut env = ImageEnv::new(ListingStyle::ApacheTable, IMAGE_SIZE, LITE_ONLY);
    assert_ok(&env.run(&["sync"]));
    let before = env.served_digest();
    env.tree
        .add_release("raspios_lite_armhf", "2024-12-01")
        .expect("new release");
    // Upstream's image is damaged after its .sha256 was written.
    let rel = env.tree.image_path("raspios_lite_armhf", "2024-12-01");
    let mut bytes = env.upstream_file(&rel);
    bytes[1000] ^= 0xff;
    std::fs::write(env.tree.root.join(&rel), bytes).expect("damage");

    let stderr = assert_exit(&env.run(&["sync"]), 1);
    assert!(stderr.contains(&rel), "{stderr}");
    assert!(
        stderr.contains("checksum") || stderr.contains("SHA256"),
        "{stderr}"
    );
    assert_eq!(env.served_digest(), before, "the served tree is untouched");
}

#[test]
fn a_download_cut_off_at_forty_percent_resumes_where_it_stopped() {
    const SIZE: u64 = 8 << 20;
    let env = ImageEnv::new(
        ListingStyle::Nginx,
        SIZE,
        r#"include = ["raspios_lite_armhf/images/raspios_lite_armhf-2024-11-19/*.img.xz", "raspios_lite_armhf/images/raspios_lite_armhf-2024-11-19/*.sha256"]"#,
    );
    let rel = env.tree.image_path("raspios_lite_armhf", "2024-11-19");
    let cut = (SIZE as usize) * 2 / 5;
    env.server
        .fault(&format!("/{rel}"), Fault::Truncate(cut), Some(1));
    assert_exit(&env.run(&["sync"]), 1);
    assert!(!env.served().exists(), "nothing was published");

    let before = env.server.bytes_sent();
    env.server.clear_log();
    let report = env.sync_json();
    let sent = env.server.bytes_sent() - before;
    assert_eq!(report["outcome"], "published");
    assert_eq!(
        std::fs::read(env.served().join(&rel)).expect("image"),
        env.upstream_file(&rel)
    );
    let gets: Vec<_> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(".img.xz"))
        .collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(
        gets[0].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert!(
        gets[0].if_range.is_some(),
        "the resume names what it resumes"
    );
    let rest = SIZE - cut as u64;
    assert!(
        sent >= rest && sent < rest + 64 * 1024,
        "served {sent} bytes on the second run for the {rest} missing"
    );
}

#[test]
fn a_file_that_changed_upstream_since_the_cut_is_fetched_again_from_the_start() {
    const SIZE: u64 = 2 << 20;
    // An image with no checksum anywhere: only If-Range protects the resume.
    let env = ImageEnv::new(ListingStyle::Nginx, 1024, r#"include = ["big/*"]"#);
    let big = env.tree.root.join("big/blob.bin");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::write(&big, vec![b'a'; SIZE as usize]).unwrap();
    let cut = (SIZE as usize) * 2 / 5;
    // nginx lists its exact size: no HEAD, the first GET is cut.
    env.server
        .fault("/big/blob.bin", Fault::Truncate(cut), Some(1));
    assert_exit(&env.run(&["sync"]), 1);

    // Same size, other content, a later mtime: a new ETag.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&big, vec![b'b'; SIZE as usize]).unwrap();
    env.server.clear_log();
    let report = env.sync_json();
    assert_eq!(report["outcome"], "published");
    let served = std::fs::read(env.served().join("big/blob.bin")).unwrap();
    assert!(
        served.iter().all(|b| *b == b'b'),
        "no mix of old and new bytes"
    );
    let get = env
        .server
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path == "/big/blob.bin")
        .expect("fetched");
    assert_eq!(get.range.as_deref(), Some(format!("bytes={cut}-").as_str()));
    assert!(
        get.if_range.is_some(),
        "the resume asked for the old version only"
    );
    assert_eq!(report["bytes_fetched"], SIZE, "{report}");
    assert_eq!(report["files_unverified"], 1);
}

#[test]
fn keep_latest_lets_old_releases_go_but_not_one_the_os_list_offers() {
    let env = ImageEnv::new(
        ListingStyle::Nginx,
        IMAGE_SIZE,
        r#"include = ["raspios_lite_armhf/images/**", "os_list_*.json"]
keep_latest = 2"#,
    );
    // The Imager still offers the oldest release.
    env.tree
        .write_os_lists(&env.server.url(), Some(("raspios_lite_armhf", DATES[0])))
        .expect("os lists");
    let report = env.sync_json();
    assert_eq!(report["outcome"], "published", "{report}");
    let has = |date: &str| {
        env.served()
            .join(env.tree.image_path("raspios_lite_armhf", date))
            .exists()
    };
    assert!(has(DATES[0]), "pinned by the OS list");
    assert!(!has(DATES[1]), "older than the newest two");
    assert!(has(DATES[2]) && has(DATES[3]));
    // The OS list's second document names the other family's newest image: mirrored
    // although the include patterns do not reach it.
    assert!(
        env.served()
            .join(env.tree.image_path("raspios_arm64", DATES[3]))
            .exists()
    );
    assert!(env.served().join(OS_SUBLIST).exists());

    // While files keep_latest let go wait out their grace, an unchanged upstream
    // publishes nothing new.
    let mut env = env;
    env.tree
        .add_release("raspios_lite_armhf", "2024-12-01")
        .expect("new release");
    let report = env.sync_json();
    assert_eq!(report["outcome"], "published");
    assert!(
        report["plan"]["grace_files"].as_u64().unwrap() > 0,
        "{report}"
    );
    let report = env.sync_json();
    assert_eq!(report["outcome"], "unchanged", "{report}");
}

#[test]
fn the_os_list_copy_points_imager_users_at_this_mirror() {
    let env = ImageEnv::new(
        ListingStyle::ApacheTable,
        IMAGE_SIZE,
        r#"include = ["raspios_lite_armhf/images/**", "os_list_*.json"]
keep_latest = 1
rewrite_base = "http://mirror.example.org/raspios/""#,
    );
    // Written an hour ago: a Last-Modified this close to now could hide a change
    // made within the same second, and would not be trusted for a 304.
    for name in [OS_LIST, OS_SUBLIST] {
        std::fs::File::options()
            .write(true)
            .open(env.tree.root.join(name))
            .and_then(|f| {
                f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            })
            .expect("dating the OS list");
    }
    let report = env.sync_json();
    assert_eq!(report["outcome"], "published", "{report}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.served().join(OS_LIST)).unwrap())
            .expect("the published OS list is valid JSON");
    let list = doc["os_list"].as_array().unwrap();
    let image = env.tree.image_path("raspios_lite_armhf", DATES[3]);
    assert_eq!(
        list[0]["url"],
        format!("http://mirror.example.org/raspios/{image}")
    );
    assert_eq!(
        list[1]["subitems_url"],
        format!("http://mirror.example.org/raspios/{OS_SUBLIST}")
    );
    // Not ours to serve: left pointing where it pointed.
    assert_eq!(
        list[0]["icon"],
        "https://assets.example.invalid/icons/rpi.png"
    );
    assert_eq!(
        list[2]["url"],
        "https://elsewhere.example.invalid/image.img.xz"
    );
    // The checksums still describe the files this mirror serves.
    let bytes = std::fs::read(env.served().join(&image)).unwrap();
    assert_eq!(
        list[0]["image_download_sha256"],
        hex::encode(Sha256::digest(&bytes))
    );

    // Rewritten the same way next time: nothing to publish, and the OS lists are
    // asked for conditionally (upstream's own copies are kept aside).
    env.server.clear_log();
    let report = env.sync_json();
    assert_eq!(report["outcome"], "unchanged", "{report}");
    let lists: Vec<_> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("os_list"))
        .collect();
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert!(lists.iter().all(|r| r.conditional), "{lists:?}");

    // Upstream changes its OS list: fetched, rewritten and published again.
    env.tree
        .write_os_lists(&env.server.url(), Some(("raspios_lite_armhf", DATES[3])))
        .expect("os lists");
    let report = env.sync_json();
    assert_eq!(report["outcome"], "published", "{report}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.served().join(OS_LIST)).unwrap()).unwrap();
    assert_eq!(doc["os_list"].as_array().unwrap().len(), 4, "{doc:#}");
}

#[test]
fn a_tampered_signature_fails_the_run_when_a_keyring_is_set() {
    let mut env = ImageEnv::new(ListingStyle::Nginx, IMAGE_SIZE, "");
    let keyring = env.tree.keyring.display().to_string();
    env.write_config(&format!(
        "include = [\"raspios_lite_armhf/images/**\"]\nkeyring = \"{keyring}\""
    ));
    assert_ok(&env.run(&["sync"]));
    let before = env.served_digest();
    env.tree
        .add_release("raspios_lite_armhf", "2024-12-01")
        .expect("new release");
    // A signature over other bytes.
    let rel = env.tree.image_path("raspios_lite_armhf", "2024-12-01");
    let other = env.tree.image_path("raspios_lite_armhf", DATES[0]);
    std::fs::copy(
        env.tree.root.join(format!("{other}.sig")),
        env.tree.root.join(format!("{rel}.sig")),
    )
    .unwrap();
    let stderr = assert_exit(&env.run(&["sync"]), 1);
    assert!(
        stderr.contains(&rel) && stderr.contains("signature"),
        "{stderr}"
    );
    assert_eq!(env.served_digest(), before);
}

/// Dates an image and its `.sha256` and `.sig` `when`: the listing shows the new date
/// (their sizes stay the same).
fn touch(env: &ImageEnv, rel: &str, when: std::time::SystemTime) {
    for f in [
        rel.to_string(),
        format!("{rel}.sha256"),
        format!("{rel}.sig"),
    ] {
        let file = std::fs::File::options()
            .write(true)
            .open(env.tree.root.join(&f))
            .unwrap();
        file.set_modified(when).unwrap();
    }
}

/// Upstream (or someone between) replaces a published image and its `.sha256` with
/// other bytes, but cannot sign them. The dated directory is shared by the snapshots,
/// so the new bytes wait aside until the signature check passes: it fails, the run
/// fails, and clients go on getting the old image, run after run. Once upstream
/// signs the new image, the mirror takes it.
#[test]
fn a_replaced_image_with_a_bad_signature_is_never_served() {
    let env = ImageEnv::new(ListingStyle::Nginx, IMAGE_SIZE, "");
    let keyring = env.tree.keyring.display().to_string();
    env.write_config(&format!(
        "include = [\"raspios_lite_armhf/images/**\"]\nkeyring = \"{keyring}\""
    ));
    assert_ok(&env.run(&["sync"]));
    let rel = env
        .tree
        .image_path("raspios_lite_armhf", DATES[DATES.len() - 1]);
    let old = std::fs::read(env.served().join(&rel)).unwrap();
    let old_sig = std::fs::read(env.tree.root.join(format!("{rel}.sig"))).unwrap();
    let new: Vec<u8> = old.iter().map(|b| b ^ 0x5a).collect();
    env.tree.put_image(&rel, &new).unwrap();
    std::fs::write(env.tree.root.join(format!("{rel}.sig")), &old_sig).unwrap();

    let later = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_750_000_000);
    touch(&env, &rel, later);
    for _ in 0..2 {
        let stderr = assert_exit(&env.run(&["sync"]), 1);
        assert!(
            stderr.contains(&rel) && stderr.contains("signature"),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read(env.served().join(&rel)).unwrap(),
            old,
            "the unsigned bytes are not served"
        );
        assert_exit(&env.run(&["verify"]), 0);
    }

    env.tree.put_image(&rel, &new).unwrap();
    touch(&env, &rel, later + std::time::Duration::from_secs(86_400));
    assert_ok(&env.run(&["sync"]));
    assert_eq!(std::fs::read(env.served().join(&rel)).unwrap(), new);
    assert_exit(&env.run(&["verify"]), 0);
    assert!(temp_files(&env.root).is_empty());
}

#[test]
fn a_hostile_listing_is_walked_within_bounds() {
    let env = ImageEnv::new(ListingStyle::Nginx, 1024, "max_files = 1000");
    let url = env.server.url();
    // Links that leave the tree, a link back to itself and a directory whose
    // listing is the top one again (a server-side symlink loop).
    let hostile = format!(
        r#"<html><body><pre>
<a href="http://other.example.invalid/evil.img">evil</a>
<a href="//other.example.invalid/evil2.img">evil2</a>
<a href="../../etc/passwd">up</a>
<a href="/etc/shadow">abs</a>
<a href="./">self</a>
<a href="{url}">self again</a>
<a href="loop/">loop/</a>
<a href="ok.txt?download=1">query</a>
<a href="ok.txt#x">fragment</a>
<a href="ok.txt">ok.txt</a>
</pre></body></html>"#
    );
    std::fs::write(env.tree.root.join("ok.txt"), "fine\n").unwrap();
    std::fs::create_dir_all(env.tree.root.join("loop")).unwrap();
    std::fs::write(env.tree.root.join("loop/ok.txt"), "fine\n").unwrap();
    env.server
        .fault("/", Fault::Replace(hostile.clone().into_bytes()), None);
    env.server
        .fault("/loop/", Fault::Replace(hostile.into_bytes()), None);
    let report = env.sync_json();
    assert_eq!(report["outcome"], "published", "{report}");
    let served: Vec<String> = env.served_digest().into_keys().collect();
    assert_eq!(served, vec!["ok.txt".to_string()]);
    assert!(
        report["warnings"].to_string().contains("loop"),
        "the loop is reported: {report}"
    );
    let paths: Vec<String> = env.server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("etc") && !p.contains("evil")),
        "{paths:?}"
    );

    // A listing of a million entries is refused, not parsed into memory.
    let mut huge = String::from("<html><body><pre>\n");
    for i in 0..1_000_000 {
        huge.push_str(&format!("<a href=\"f{i}\">f{i}</a>\n"));
    }
    env.server.clear_faults();
    std::fs::create_dir_all(env.tree.root.join("huge")).unwrap();
    env.server
        .fault("/huge/", Fault::Replace(huge.into_bytes()), None);
    let before = env.served_digest();
    let started = std::time::Instant::now();
    let stderr = assert_exit(&env.run(&["sync"]), 1);
    assert!(stderr.contains("max_files"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(env.served_digest(), before);
}

#[test]
fn a_damaged_image_is_found_by_verify_and_repaired() {
    let env = ImageEnv::new(ListingStyle::Nginx, IMAGE_SIZE, LITE_ONLY);
    assert_ok(&env.run(&["sync"]));
    let rel = env.tree.image_path("raspios_lite_armhf", DATES[1]);
    let served = env.served().join(&rel);
    // The disk flips a byte under the published tree.
    let mut bytes = std::fs::read(&served).unwrap();
    bytes[4096] ^= 1;
    let mut perms = std::fs::metadata(&served).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&served, perms).unwrap();
    std::fs::write(&served, bytes).unwrap();

    let stderr = assert_exit(&env.run(&["verify"]), 4);
    assert!(stderr.contains(&rel), "{stderr}");
    assert_ok(&env.run(&["verify", "--repair"]));
    assert_ok(&env.run(&["verify"]));
    assert_eq!(env.served_digest(), upstream_subset(&env, &lite_only));
}
