//! The image crawler against a real nginx: `autoindex on;` as HTML and as JSON, the
//! listings a Raspberry Pi style download server really sends (names cut at 50
//! characters, exact sizes, its own dates), checked through nginx's own access log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use mirrorsync::fixture::images::{FixtureImages, OS_LIST, OS_SUBLIST};

use crate::support::{TreeDigest, assert_ok, digest_tree, temp_files};

const LITE: &str = "raspios_lite_armhf";
const ARM64: &str = "raspios_arm64";
const DATES: &[&str] = &["2024-07-04", "2024-10-28", "2024-11-19"];
const NEW_DATE: &str = "2024-12-01";
const IMAGE_SIZE: u64 = 64 * 1024;

/// A private nginx (own config, pid, logs and port) serving an upstream tree on
/// 127.0.0.1, logging each request as `METHOD URI STATUS`. Stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hit {
    method: String,
    path: String,
    status: u16,
}

impl Hit {
    fn is_listing(&self) -> bool {
        self.method == "GET" && self.path.ends_with('/')
    }

    fn is_os_list(&self) -> bool {
        self.method == "GET"
            && (self.path == format!("/{OS_LIST}") || self.path == format!("/{OS_SUBLIST}"))
    }
}

impl Nginx {
    fn serve(root: &Path, json: bool) -> Nginx {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| {
                std::env::var_os("PATH").and_then(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("nginx"))
                        .find(|p| p.is_file())
                })
            });
        // As tests/it/live.rs: no silent skip, in CI or not.
        let Some(binary) = binary else {
            panic!(
                "nginx is not installed{}: these tests need the real one. Run scripts/test.sh (it installs it) or `apt-get install nginx`",
                if std::env::var_os("CI").is_some() {
                    " on this CI machine"
                } else {
                    ""
                }
            );
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        // Workers run as root when we are root: the test trees live in 0700 temp dirs.
        let user = if is_root() { "user root root;" } else { "" };
        let format = if json { "autoindex_format json;" } else { "" };
        let conf = format!(
            r#"{user}
worker_processes 1;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format hits '$request_method $request_uri $status';
    access_log {d}/access.log hits;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        autoindex on;
        {format}
    }}
}}
"#,
            root = root.display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-g")
            .arg("daemon off;")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { child, port, dir }
    }

    /// `http://127.0.0.1:<port>/`
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Every request logged so far, in order.
    fn hits(&self) -> Vec<Hit> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut parts = l.split(' ');
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                Hit {
                    method,
                    path,
                    status,
                }
            })
            .collect()
    }

    /// The requests after the first `from`, once nginx has logged `expected` of them
    /// (it writes a line when a response is done, which can trail the client's exit).
    fn hits_since(&self, from: usize, expected: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let hits = self.hits();
            if hits.len() >= from + expected || Instant::now() > deadline {
                return hits[from.min(hits.len())..].to_vec();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master must take its workers down with it.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

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
        let nginx = Nginx::serve(&tree.root, json);
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
