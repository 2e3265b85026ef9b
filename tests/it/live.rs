//! Clients of the mirror while it updates: the real apt-get through a private nginx,
//! and a reader that follows apt's fetch order through ten publishes.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mirrorsync::apt::packages::{IndexKind, read_index};
use mirrorsync::apt::release::Release;
use mirrorsync::apt::signature::{Keyring, verify_clearsigned};
use mirrorsync_testkit::FixtureSpec;
use sha2::{Digest, Sha256};

use crate::support::*;

/// A private nginx (own config, pid, logs and port) serving a mirror root on
/// 127.0.0.1, the way an operator serves one. Stopped when dropped.
pub struct Nginx {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file();
    assert!(
        found,
        "{tool} is not installed: these tests need the real one. Run scripts/test.sh (it installs it) or `apt-get install {package}`"
    );
}

impl Nginx {
    pub fn serve(root: &Path) -> Nginx {
        let nginx = crate::logged_nginx::nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = crate::logged_nginx::free_port();
        crate::logged_nginx::write_conf(dir.path(), port, root, "access_log off;", "", "");
        let child = crate::logged_nginx::start_nginx(&nginx, dir.path(), &[port]);
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
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

/// apt-get with a configuration of its own: its own state, cache, sources and
/// trust, nothing of the system's touched.
pub struct Apt {
    dir: tempfile::TempDir,
    /// More `-o` options, e.g. a proxy.
    extra: Vec<String>,
}

impl Apt {
    pub fn new(source_line: &str) -> Apt {
        Self::with_options(source_line, &[])
    }

    pub fn with_options(source_line: &str, extra: &[String]) -> Apt {
        require("apt-get", "apt");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in [
            "state/lists/partial",
            "cache/archives/partial",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "etc/apt.conf.d",
            "downloads",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("state/status"), "").unwrap();
        std::fs::write(d.join("etc/sources.list"), format!("{source_line}\n")).unwrap();
        Apt {
            dir,
            extra: extra.to_vec(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let d = self.dir.path().display().to_string();
        let opts = [
            format!("Dir::State={d}/state"),
            format!("Dir::State::Lists={d}/state/lists"),
            format!("Dir::State::status={d}/state/status"),
            format!("Dir::Cache={d}/cache"),
            format!("Dir::Etc::SourceList={d}/etc/sources.list"),
            format!("Dir::Etc::SourceParts={d}/etc/sources.list.d"),
            format!("Dir::Etc::Preferences={d}/etc/preferences"),
            format!("Dir::Etc::PreferencesParts={d}/etc/preferences.d"),
            format!("Dir::Etc::Trusted={d}/etc/trusted.gpg"),
            format!("Dir::Etc::TrustedParts={d}/etc/trusted.gpg.d"),
            "APT::Sandbox::User=root".to_string(),
            "Debug::NoLocking=true".to_string(),
            "APT::Architecture=amd64".to_string(),
            "APT::Architectures::=amd64".to_string(),
            "Acquire::Languages=en".to_string(),
            "Acquire::Retries=0".to_string(),
            "Acquire::http::Pipeline-Depth=0".to_string(),
        ];
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(self.dir.path().join("downloads"));
        for o in opts.iter().chain(&self.extra) {
            cmd.arg("-o").arg(o);
        }
        cmd.args(args)
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd.output().expect("running apt-get")
    }

    /// Runs apt-get and fails the test on a non-zero exit or any W: or E: line.
    pub fn must(&self, args: &[&str]) -> String {
        self.must_allowing(args, &[])
    }

    /// As `must`, but a W: line saying one of `allowed` is not a complaint (a
    /// warning apt gives of the upstream's own layout too).
    pub fn must_allowing(&self, args: &[&str], allowed: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "apt-get {args:?} failed:\n{text}");
        let complaints: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("W:") || l.starts_with("E:"))
            .filter(|l| !(l.starts_with("W:") && allowed.iter().any(|a| l.contains(a))))
            .collect();
        assert!(
            complaints.is_empty(),
            "apt-get {args:?} complained:\n{text}"
        );
        text
    }

    pub fn downloaded(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join("downloads").join(file)).unwrap()
    }
}

pub fn packages_for_amd64(env: &Env, n: usize) -> Vec<(String, String)> {
    env.repo
        .packages
        .values()
        .filter(|p| p.arch == "amd64" || p.arch == "all")
        .take(n)
        .map(|p| (p.name.clone(), p.filename()))
        .collect()
}

#[test]
fn real_apt_get_updates_and_downloads_from_the_mirror_after_a_cold_sync_and_a_delta() {
    let mut env = Env::new(FixtureSpec::default().with_packages(30));
    assert_ok(&env.sync());
    let nginx = Nginx::serve(&env.root);
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {} bookworm main contrib",
        env.repo.keyring.display(),
        nginx.url("debian")
    ));
    apt.must(&["update"]);
    let check = |env: &Env, apt: &Apt, pkgs: &[(String, String)]| {
        assert!(!pkgs.is_empty());
        let mut args = vec!["download"];
        args.extend(pkgs.iter().map(|(n, _)| n.as_str()));
        apt.must(&args);
        for (_, filename) in pkgs {
            let base = Path::new(filename)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert_eq!(
                apt.downloaded(&base),
                std::fs::read(env.repo.dir.join(filename)).unwrap()
            );
        }
    };
    check(&env, &apt, &packages_for_amd64(&env, 4));

    // A publish upstream: upgrades, a removal, an addition; apt sees the new state.
    let names: Vec<String> = env.repo.packages.keys().cloned().collect();
    for (n, _) in packages_for_amd64(&env, 3) {
        env.repo.upgrade_package(&n);
    }
    env.repo.remove_package(&names[names.len() - 1]);
    env.repo.add_package("aaa-delta");
    env.publish();
    assert_ok(&env.sync());
    apt.must(&["update"]);
    check(&env, &apt, &packages_for_amd64(&env, 6));
}

#[test]
fn the_served_tree_keeps_upstream_times_and_passes_the_two_stage_probe() {
    let env = Env::new(FixtureSpec::default().with_packages(10));
    assert_ok(&env.sync());
    let nginx = Nginx::serve(&env.root);
    for f in [
        "dists/bookworm/InRelease",
        "dists/bookworm/main/binary-amd64/Packages.xz",
    ] {
        let up = std::fs::metadata(env.repo.dir.join(f))
            .unwrap()
            .modified()
            .unwrap();
        let ours = std::fs::metadata(env.served().join(f))
            .unwrap()
            .modified()
            .unwrap();
        let secs =
            |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(up), secs(ours), "{f} lost its upstream mtime");
    }
    // Debian's redirector: HEAD Release with If-Unmodified-Since: <site trace date>.
    let trace =
        std::fs::read_to_string(env.served().join("project/trace/mirror.test.invalid")).unwrap();
    let date = trace
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .head(nginx.url("debian/dists/bookworm/Release"))
            .header("If-Unmodified-Since", date.replace("+0000", "GMT"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 200, "a 412 would fail the mirror");
    // Checkers list project/trace/ through the autoindex.
    let listing = rt.block_on(async {
        reqwest::get(nginx.url("debian/project/trace/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    for name in ["mirror.test.invalid", "master", "_hierarchy", "_traces"] {
        assert!(
            listing.contains(&format!("href=\"{name}\"")),
            "{name} not listed:\n{listing}"
        );
    }
}

#[derive(Default, Debug)]
struct ReaderStats {
    rounds: u64,
    fetches: u64,
    mismatches: Vec<String>,
    missing: Vec<String>,
    /// Rounds that ended on a different InRelease than they started from.
    spanned: u64,
    /// Rounds held open across a publish on the publisher's request, and how many of
    /// them ended on a different InRelease.
    held: u64,
    held_spanned: u64,
    /// Indices fetched in a held round by a hash the InRelease served at the round's
    /// end no longer names: only there because the previous ones are kept.
    superseded_fetches: u64,
}

/// The publisher's request to hold the next round open across a publish: the reader
/// says when it has read InRelease, and goes on only once the publish is out.
struct Hold {
    read: std::sync::mpsc::Sender<()>,
    published: tokio::sync::oneshot::Receiver<()>,
}

/// Reads the mirror as apt does: InRelease, then each index by hash, then the pool
/// files that index lists, checking every size and SHA256 against what referenced it;
/// then InRelease again, to tell whether the round spanned a publish.
async fn read_like_apt(
    base: String,
    keyring: Keyring,
    stop: Arc<AtomicBool>,
    holds: std::sync::mpsc::Receiver<Hold>,
) -> ReaderStats {
    let client = reqwest::Client::new();
    let mut st = ReaderStats::default();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let resp = client.get(&url).send().await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            resp.bytes().await.ok()
        }
    };
    let mut last_round = false;
    loop {
        if stop.load(Ordering::SeqCst) {
            // One more full round after the last publish.
            if last_round {
                break;
            }
            last_round = true;
        }
        st.rounds += 1;
        st.fetches += 1;
        let hold = holds.try_recv().ok();
        let held = hold.is_some();
        let first = get(format!("{base}dists/bookworm/InRelease")).await;
        if let Some(hold) = hold {
            st.held += 1;
            let _ = hold.read.send(());
            let _ = hold.published.await;
        }
        let Some(inrelease) = first else {
            st.missing.push("InRelease".into());
            continue;
        };
        let release = match verify_clearsigned(&keyring, &inrelease) {
            Ok(v) => Release::parse(&v.text).unwrap(),
            Err(e) => {
                st.mismatches.push(format!("InRelease: {e}"));
                continue;
            }
        };
        let mut fetched_by_hash = Vec::new();
        for f in release.files.values() {
            let p = f.path.as_str();
            if !(p.ends_with("binary-amd64/Packages.xz") || p.ends_with("binary-all/Packages.xz")) {
                continue;
            }
            let sha = f.sha256.unwrap();
            let dir = f.path.parent().unwrap();
            let url = format!(
                "{base}dists/bookworm/{dir}/by-hash/SHA256/{}",
                hex::encode(sha)
            );
            st.fetches += 1;
            let Some(body) = get(url.clone()).await else {
                st.missing.push(url);
                continue;
            };
            if body.len() as u64 != f.size || <[u8; 32]>::from(Sha256::digest(&body)) != sha {
                st.mismatches.push(url);
                continue;
            }
            fetched_by_hash.push(hex::encode(sha));
            let mut pool = Vec::new();
            let reader = std::io::BufReader::new(liblzma::read::XzDecoder::new(&body[..]));
            read_index(reader, IndexKind::Packages, p, Path::new(p), |pf| {
                pool.push(pf)
            })
            .unwrap();
            for pf in pool {
                let url = format!("{base}{}", pf.path);
                st.fetches += 1;
                match get(url.clone()).await {
                    None => st.missing.push(url),
                    Some(b)
                        if b.len() as u64 != pf.size
                            || <[u8; 32]>::from(Sha256::digest(&b)) != pf.sha256 =>
                    {
                        st.mismatches.push(url)
                    }
                    Some(_) => {}
                }
            }
        }
        st.fetches += 1;
        let Some(end) = get(format!("{base}dists/bookworm/InRelease")).await else {
            st.missing.push("InRelease (end of round)".into());
            continue;
        };
        if end != inrelease {
            st.spanned += 1;
            if held {
                st.held_spanned += 1;
                let end = String::from_utf8_lossy(&end);
                st.superseded_fetches += fetched_by_hash
                    .iter()
                    .filter(|h| !end.contains(h.as_str()))
                    .count() as u64;
            }
        }
    }
    st
}

#[test]
fn a_client_reading_during_ten_publishes_never_sees_a_mismatch_or_a_404() {
    let mut env = Env::new(FixtureSpec::default().with_packages(40));
    assert_ok(&env.sync());
    let nginx = Nginx::serve(&env.root);
    let keyring = Keyring::from_file(&env.repo.keyring).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<Hold>();
    let reader = {
        let stop = stop.clone();
        let base = nginx.url("debian/");
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(read_like_apt(base, keyring, stop, hold_rx))
        })
    };
    let mut publishes = 0;
    let mut held = 0;
    let mut seen: HashMap<String, ()> = HashMap::new();
    for round in 0..10 {
        // Every other publish happens while a reader round that has read InRelease
        // waits to fetch the indices it names: a round spanning a publish for certain.
        // The others race the reader freely.
        let published = if round % 2 == 0 {
            let (read_tx, read_rx) = std::sync::mpsc::channel();
            let (published_tx, published_rx) = tokio::sync::oneshot::channel();
            hold_tx
                .send(Hold {
                    read: read_tx,
                    published: published_rx,
                })
                .unwrap();
            read_rx
                .recv_timeout(Duration::from_secs(120))
                .expect("the reader never read InRelease");
            held += 1;
            Some(published_tx)
        } else {
            None
        };
        let names: Vec<String> = env.repo.packages.keys().cloned().collect();
        env.repo.upgrade_package(&names[round % names.len()]);
        env.repo
            .upgrade_package(&names[(round * 7 + 3) % names.len()]);
        env.repo
            .remove_package(&names[(round * 3 + 1) % names.len()]);
        env.repo.add_package(&format!("live-{round}"));
        env.publish();
        assert_ok(&env.sync());
        seen.insert(env.snapshot_id().unwrap(), ());
        publishes += 1;
        if let Some(tx) = published {
            let _ = tx.send(());
        }
    }
    stop.store(true, Ordering::SeqCst);
    let stats = reader.join().unwrap();
    eprintln!(
        "consistency: {publishes} publishes ({} distinct snapshots), reader made {} rounds and {} fetches, {} rounds spanned a publish ({} of {} held open, {} superseded indices fetched): {} mismatches, {} missing",
        seen.len(),
        stats.rounds,
        stats.fetches,
        stats.spanned,
        stats.held_spanned,
        stats.held,
        stats.superseded_fetches,
        stats.mismatches.len(),
        stats.missing.len()
    );
    assert_eq!(seen.len(), 10, "every change was published");
    assert!(
        stats.rounds >= 10,
        "the reader must overlap the publishes: {stats:?}"
    );
    assert!(stats.mismatches.is_empty(), "{:?}", stats.mismatches);
    assert!(stats.missing.is_empty(), "{:?}", stats.missing);
    // The held rounds read an InRelease, saw a publish go out, then fetched what the
    // older InRelease named and ended on a newer one.
    assert_eq!(stats.held, held, "{stats:?}");
    assert_eq!(
        stats.held_spanned, held,
        "every held round must span a publish: {stats:?}"
    );
    assert!(
        stats.superseded_fetches > 0,
        "no held round fetched an index the new InRelease no longer names: {stats:?}"
    );
}
