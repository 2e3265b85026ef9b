//! Test support: an upstream repository served on loopback, a mirror root, and the
//! real `mirrorsync` binary run against them the way cron runs it (no terminal).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mirrorsync_testkit::server::FixtureServer;
use mirrorsync_testkit::{FixtureRepo, FixtureSpec};
use sha2::{Digest, Sha256};

pub struct Env {
    /// Owns the temporary directory; everything else lives inside it.
    _work: tempfile::TempDir,
    pub repo: FixtureRepo,
    pub server: FixtureServer,
    pub root: PathBuf,
    pub config: PathBuf,
}

/// Path -> (size, sha256) of every file under a directory, symlinks followed.
pub type TreeDigest = BTreeMap<String, (u64, String)>;

impl Env {
    pub fn new(spec: FixtureSpec) -> Env {
        Self::with_config(spec, "")
    }

    /// `extra` is appended to the mirror's section of mirrors.toml.
    pub fn with_config(spec: FixtureSpec, extra: &str) -> Env {
        let work = tempfile::tempdir().expect("tempdir");
        let repo = spec.build(&work.path().join("upstream")).expect("fixture");
        let server = FixtureServer::start(&repo.dir).expect("server");
        let root = work.path().join("mirror");
        let config = work.path().join("mirrors.toml");
        let env = Env {
            _work: work,
            repo,
            server,
            root,
            config,
        };
        env.write_config(extra);
        env
    }

    pub fn write_config(&self, extra: &str) {
        let text = format!(
            r#"[global]
root = "{root}"
hostname = "mirror.test.invalid"
concurrency = 4
timeout = "5s"
retries = 2
retry_delay = "10ms"
keep_snapshots = 2

[[mirror]]
name = "debian"
kind = "apt"
upstream = "{url}"
suites = ["{suite}"]
components = ["main", "contrib"]
architectures = ["amd64", "arm64"]
keyring = "{keyring}"
{extra}
"#,
            root = self.root.display(),
            url = self.server.url(),
            suite = self.repo.suite,
            keyring = self.repo.keyring.display(),
        );
        std::fs::write(&self.config, text).expect("config");
    }

    /// Replaces `from` in the config with `to` (a [global] setting, say).
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        assert!(text.contains(from), "the config has no {from:?}");
        std::fs::write(&self.config, text.replace(from, to)).expect("writing config");
    }

    /// Files removed upstream go at the next publish (`grace = "0s"`).
    pub fn without_grace(&self) {
        self.edit_config("keep_snapshots = 2", "keep_snapshots = 2\ngrace = \"0s\"");
    }

    /// Runs `mirrorsync -c <config> <args>` without a terminal.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("running mirrorsync")
    }

    pub fn sync(&self) -> Output {
        self.run(&["sync"])
    }

    /// The served tree, `root/debian`.
    pub fn served(&self) -> PathBuf {
        self.root.join("debian")
    }

    pub fn served_digest(&self) -> TreeDigest {
        digest_tree(&self.served())
    }

    pub fn publish(&mut self) {
        self.repo.publish().expect("publishing the fixture");
    }

    pub fn snapshot_id(&self) -> Option<String> {
        std::fs::read_link(self.served())
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    }
}

/// The paths the manifest of the snapshot `dir` resolves to lists, if it is one.
fn listed_in_manifest(dir: &Path) -> Option<std::collections::BTreeSet<String>> {
    let snapshot = std::fs::canonicalize(dir).ok()?;
    let mut name = snapshot.file_name()?.to_os_string();
    name.push(".manifest");
    let text = std::fs::read_to_string(snapshot.with_file_name(name)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.splitn(4, '\t').nth(3))
            .map(str::to_string)
            .collect(),
    )
}

/// Every file a client of `dir` can read, with size and SHA256. In the shared
/// content (a snapshot's `pool` and `by-hash` symlinks) only the files the snapshot's
/// manifest lists count: the others are there for another snapshot (grace, rollback)
/// or for the next one (added before the switch), and no index of this one names them.
pub fn digest_tree(dir: &Path) -> TreeDigest {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let listed = listed_in_manifest(dir);
    let mut shared_dirs: Vec<PathBuf> = Vec::new();
    for e in walkdir::WalkDir::new(dir).follow_links(true) {
        let e = e.expect("walk");
        if e.depth() > 0 && e.path_is_symlink() && e.file_type().is_dir() {
            shared_dirs.push(e.path().to_path_buf());
        }
        let in_shared = shared_dirs.iter().any(|d| e.path().starts_with(d));
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(dir)
                .expect("prefix")
                .to_string_lossy();
            if in_shared && listed.as_ref().is_some_and(|l| !l.contains(rel.as_ref())) {
                continue;
            }
            let bytes = std::fs::read(e.path()).expect("read");
            let rel = e
                .path()
                .strip_prefix(dir)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            out.insert(
                rel,
                (bytes.len() as u64, hex::encode(Sha256::digest(&bytes))),
            );
        }
    }
    out
}

/// Asserts the run succeeded, showing its output if not.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "mirrorsync failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[track_caller]
pub fn assert_exit(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Every file under the mirror root that is not inside a mirror's own trees: must
/// be empty, whatever a hostile upstream sent.
pub fn stray_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let Ok(e) = e else { continue };
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let inside = rel == "debian"
            || rel == ".mirrorsync"
            || rel == ".mirrorsync/lock"
            || rel == ".mirrorsync/metrics.prom"
            || rel.starts_with(".mirrorsync/debian")
            // The status page, written after every run.
            || rel == "status"
            || rel == "status/index.html";
        if !inside {
            out.push(rel);
        }
    }
    out
}

/// Leftover temporary files from our own writes (`.tmp` names) anywhere under root.
pub fn temp_files(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .map(|e| e.path().display().to_string())
        .collect()
}
