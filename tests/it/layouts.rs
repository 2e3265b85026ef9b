//! An operator mirrors the repositories vendors really publish: flat ones made by
//! dpkg-scanpackages and apt-ftparchive, `dists/` ones made by reprepro and aptly, a
//! hybrid suite, a .zst-only one. Each is served by nginx, mirrored, read back by
//! stock apt-get through nginx, and synced again unchanged, counting what the no-op
//! asks of the upstream.

use std::path::{Path, PathBuf};

use crate::generators::{self, Gpg};
use crate::live::{Apt, Nginx as MirrorNginx};
use crate::logged_nginx::{Hit, Nginx};
use crate::support::*;

/// An upstream tree behind a logging nginx, and a mirror of it.
struct Layout {
    work: tempfile::TempDir,
    gpg: Gpg,
    upstream: Option<Nginx>,
    root: PathBuf,
    config: PathBuf,
}

impl Layout {
    fn new() -> Layout {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("mirror");
        let config = work.path().join("mirrors.toml");
        Layout {
            work,
            gpg: Gpg::new(),
            upstream: None,
            root,
            config,
        }
    }

    fn dir(&self) -> PathBuf {
        self.work.path().join("upstream")
    }

    /// Serves `tree` and configures a mirror of it: `apt_lines` say the suites (and
    /// components and architectures, where the layout has them).
    fn serve(&mut self, tree: &Path, apt_lines: &str) {
        self.mirror_of(Nginx::serve(tree, false, false), apt_lines);
    }

    /// Configures a mirror of what `nginx` serves.
    fn mirror_of(&mut self, nginx: Nginx, apt_lines: &str) {
        let text = format!(
            r#"[global]
root = "{root}"
hostname = "mirror.test.invalid"
timeout = "5s"
retries = 0

[[mirror]]
name = "vendor"
kind = "apt"
upstream = "{url}"
keyring = "{keyring}"
{apt_lines}
"#,
            root = self.root.display(),
            url = nginx.url(),
            keyring = self.gpg.keyring.display(),
        );
        std::fs::write(&self.config, text).unwrap();
        self.upstream = Some(nginx);
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn upstream(&self) -> &Nginx {
        self.upstream.as_ref().expect("an upstream is served")
    }

    /// Syncs a mirror that is already published and returns what the run asked of
    /// the upstream.
    fn noop(&self) -> Vec<Hit> {
        let before = self.upstream().hits().len();
        let out = self.run(&["sync"]);
        assert_ok(&out);
        let hits = self.upstream().hits_since(before, 1);
        eprintln!("the no-op asked: {hits:?}");
        hits
    }

    /// Stock apt-get, reading the mirror through nginx with `line` (`deb [signed-by]
    /// URL <line>`), updates cleanly and downloads every vendor package
    /// byte for byte as upstream has it.
    fn apt_reads(&self, line: &str, debs: &[(&str, PathBuf)]) {
        self.apt_reads_allowing(line, debs, &[]);
    }

    /// As `apt_reads`, but apt may warn of `allowed` (as it does of the upstream).
    fn apt_reads_allowing(&self, line: &str, debs: &[(&str, PathBuf)], allowed: &[&str]) {
        let nginx = MirrorNginx::serve(&self.root);
        let apt = Apt::new(&format!(
            "deb [signed-by={}] {} {line}",
            self.gpg.keyring.display(),
            nginx.url("vendor")
        ));
        apt.must_allowing(&["update"], allowed);
        let mut args = vec!["download"];
        args.extend(debs.iter().map(|(name, _)| *name));
        apt.must(&args);
        for (_, upstream_file) in debs {
            let name = upstream_file.file_name().unwrap().to_string_lossy();
            assert_eq!(
                apt.downloaded(&name),
                std::fs::read(upstream_file).unwrap(),
                "{name}"
            );
        }
    }

    /// `mirrorsync verify` finds the served tree whole.
    fn verifies(&self) {
        let out = self.run(&["verify"]);
        assert_ok(&out);
    }
}

/// Every request of a no-op is for signed metadata and answered 304 (nginx's
/// validators): the one conditional GET per suite that tells it nothing changed.
fn only_conditional_release_requests(hits: &[Hit], signed: &[&str]) {
    assert_eq!(hits.len(), signed.len(), "{hits:?}");
    for (hit, path) in hits.iter().zip(signed) {
        assert!(hit.get_of(path), "{hit:?} is not a GET of {path}");
        assert_eq!(hit.status, 304, "{hit:?}");
    }
}

#[test]
fn a_flat_repository_made_by_dpkg_scanpackages_is_mirrored_for_deb_url_dot_slash() {
    let mut l = Layout::new();
    let dir = l.dir();
    generators::scanpackages_flat(&dir, &l.gpg);
    let packages = std::fs::read_to_string(dir.join("Packages")).unwrap();
    assert!(
        packages.contains("Filename: ./vendor-tool_1.0-1_amd64.deb"),
        "{packages}"
    );
    l.serve(&dir, r#"suites = ["./"]"#);
    assert_ok(&l.run(&["sync"]));
    l.apt_reads(
        "./",
        &[
            ("vendor-tool", dir.join("vendor-tool_1.0-1_amd64.deb")),
            ("vendor-data", dir.join("vendor-data_2.3_all.deb")),
        ],
    );
    l.verifies();
    only_conditional_release_requests(&l.noop(), &["InRelease"]);
}

#[test]
fn a_flat_repository_in_a_subdirectory_made_by_apt_ftparchive_is_mirrored() {
    let mut l = Layout::new();
    let dir = l.dir();
    generators::ftparchive_flat(&dir, "debian", &["gz", "xz"], &l.gpg);
    l.serve(&dir, r#"suites = ["debian/"]"#);
    assert_ok(&l.run(&["sync"]));
    let served = l.root.join("vendor");
    assert!(served.join("debian/InRelease").is_file());
    assert!(served.join("debian/Packages.xz").is_file());
    l.apt_reads(
        "debian/",
        &[
            (
                "vendor-tool",
                dir.join("debian/vendor-tool_1.0-1_amd64.deb"),
            ),
            ("vendor-data", dir.join("debian/vendor-data_2.3_all.deb")),
        ],
    );
    l.verifies();
    only_conditional_release_requests(&l.noop(), &["debian/InRelease"]);
}

#[test]
fn a_flat_repository_offering_its_packages_only_as_zst_is_mirrored() {
    let mut l = Layout::new();
    let dir = l.dir();
    generators::ftparchive_flat(&dir, "zst", &["zst"], &l.gpg);
    let served: Vec<_> = std::fs::read_dir(dir.join("zst"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("Packages"))
        .collect();
    assert_eq!(served, ["Packages.zst"]);
    l.serve(&dir, r#"suites = ["zst/"]"#);
    assert_ok(&l.run(&["sync"]));
    assert!(
        l.root
            .join("vendor/zst/vendor-tool_1.0-1_amd64.deb")
            .is_file()
    );
    l.apt_reads(
        "zst/",
        &[("vendor-data", dir.join("zst/vendor-data_2.3_all.deb"))],
    );
}

#[test]
fn a_dists_repository_published_by_reprepro_is_mirrored() {
    let mut l = Layout::new();
    let dir = l.dir();
    generators::reprepro_dists(&dir, &l.gpg);
    l.serve(
        &dir,
        "suites = [\"stable\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]",
    );
    assert_ok(&l.run(&["sync"]));
    l.apt_reads(
        "stable main",
        &[
            (
                "vendor-tool",
                dir.join("pool/main/v/vendor-tool/vendor-tool_1.0-1_amd64.deb"),
            ),
            (
                "vendor-data",
                dir.join("pool/main/v/vendor-data/vendor-data_2.3_all.deb"),
            ),
        ],
    );
    l.verifies();
    only_conditional_release_requests(&l.noop(), &["dists/stable/InRelease"]);
}

#[test]
fn a_dists_repository_published_by_aptly_with_by_hash_is_mirrored() {
    let mut l = Layout::new();
    let public = generators::aptly_dists(l.work.path(), &l.gpg);
    l.serve(
        &public,
        "suites = [\"stable\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]",
    );
    assert_ok(&l.run(&["sync"]));
    let by_hash = l
        .root
        .join("vendor/dists/stable/main/binary-amd64/by-hash/SHA256");
    assert!(
        std::fs::read_dir(&by_hash).unwrap().count() > 0,
        "aptly's by-hash indices are mirrored"
    );
    l.apt_reads(
        "stable main",
        &[
            (
                "vendor-tool",
                public.join("pool/main/v/vendor-tool/vendor-tool_1.0-1_amd64.deb"),
            ),
            (
                "vendor-data",
                public.join("pool/main/v/vendor-data/vendor-data_2.3_all.deb"),
            ),
        ],
    );
    l.verifies();
    only_conditional_release_requests(&l.noop(), &["dists/stable/InRelease"]);
}

#[test]
fn a_hybrid_suite_with_flat_and_component_indices_is_mirrored_whole() {
    let mut l = Layout::new();
    let dir = l.dir();
    generators::hybrid_suite(&dir, &l.gpg);
    l.serve(
        &dir,
        "suites = [\"stable\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]",
    );
    assert_ok(&l.run(&["sync"]));
    let flat = dir.join("pool/flat/vendor-flat_1.0_all.deb");
    let tool = dir.join("pool/main/vendor-tool_1.0-1_amd64.deb");
    // Both of apt's readings of the suite: by component, and flat.
    l.apt_reads("stable main", &[("vendor-tool", tool)]);
    // Read flat, the suite's Suite field is "stable", not "dists/stable/": apt warns,
    // of the upstream as of the mirror.
    l.apt_reads_allowing(
        "dists/stable/",
        &[("vendor-flat", flat)],
        &["Conflicting distribution"],
    );
    l.verifies();
    only_conditional_release_requests(&l.noop(), &["dists/stable/InRelease"]);

    // The same suite configured as apt's flat reading of it ("dists/stable/"): the
    // same files, at the same paths.
    let text = std::fs::read_to_string(&l.config)
        .unwrap()
        .replace("suites = [\"stable\"]", "suites = [\"dists/stable/\"]");
    std::fs::write(&l.config, text).unwrap();
    let served = digest_tree(&l.root.join("vendor"));
    assert_ok(&l.run(&["sync"]));
    let flat = digest_tree(&l.root.join("vendor"));
    let without_traces = |t: &TreeDigest| -> Vec<String> {
        t.keys()
            .filter(|p| !p.starts_with("project/"))
            .cloned()
            .collect()
    };
    assert_eq!(without_traces(&flat), without_traces(&served));
    only_conditional_release_requests(&l.noop(), &["dists/stable/InRelease"]);
}

#[test]
fn a_flat_suite_that_is_not_there_fails_naming_the_url_and_publishes_nothing() {
    let mut l = Layout::new();
    let dir = l.dir();
    generators::scanpackages_flat(&dir, &l.gpg);
    l.serve(&dir, r#"suites = ["nosuch/"]"#);
    let err = assert_exit(&l.run(&["sync"]), 1);
    assert!(err.contains("suite nosuch/"), "{err}");
    assert!(err.contains("nosuch/Release"), "{err}");
    assert!(!l.root.join("vendor").exists());
}

/// An unsigned repository whose Release carries MD5 sums only (apt takes it as
/// `[trusted=yes]`, with a warning): its indices are mirrored by size, counted as
/// unverified and said so, never silently; its packages are checked by the SHA256
/// its Packages gives. Where Packages has none either, they too go by size.
#[test]
fn an_unsigned_repository_without_sha256_sums_is_mirrored_by_size_and_counted_unverified() {
    let mut l = Layout::new();
    let dir = l.dir();
    generators::unsigned_md5_only_flat(&dir, false);
    let release = std::fs::read_to_string(dir.join("Release")).unwrap();
    assert!(
        release.contains("MD5Sum:") && !release.contains("SHA256:"),
        "{release}"
    );
    l.serve(&dir, "suites = [\"./\"]\ncheck_signature = false");
    let text = std::fs::read_to_string(&l.config)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("keyring"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&l.config, text).unwrap();

    let sync = |expected_unverified: u64| {
        let out = l.run(&["sync", "--json"]);
        assert_ok(&out);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mirror = report[0].clone();
        assert_eq!(mirror["files_unverified"], expected_unverified, "{mirror}");
        let warned = mirror["warnings"].to_string();
        assert!(
            warned.contains("checked by size only (unverified)"),
            "{warned}"
        );
    };
    // Packages and Packages.gz by size; the .debs by Packages' SHA256.
    sync(2);
    l.verifies();
    // apt takes such a repository only when told to trust it, and then from the
    // mirror as from the upstream.
    let nginx = MirrorNginx::serve(&l.root);
    let apt = Apt::new(&format!("deb [trusted=yes] {} ./", nginx.url("vendor")));
    apt.must_allowing(&["update"], &["weak", "insecure", "Release"]);
    apt.must(&["download", "vendor-data"]);
    assert_eq!(
        apt.downloaded("vendor-data_2.3_all.deb"),
        std::fs::read(dir.join("vendor-data_2.3_all.deb")).unwrap()
    );
    // The no-op is one conditional request for InRelease (404) and one for Release.
    let before = std::fs::read_link(l.root.join("vendor")).unwrap();
    let hits = l.noop();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(
        hits[0].get_of("InRelease") && hits[0].status == 404,
        "{hits:?}"
    );
    assert!(
        hits[1].get_of("Release") && hits[1].status == 304,
        "{hits:?}"
    );
    assert_eq!(std::fs::read_link(l.root.join("vendor")).unwrap(), before);

    // Upstream's script drops SHA256 from Packages too, and adds a package: the two it
    // holds, whose MD5 is the one listed, are kept; the new one is fetched by size.
    generators::build_deb(&dir, "vendor-new", "0.1", "all");
    generators::md5_only_index(&dir, true);
    let before = l.upstream().hits().len();
    // Packages, Packages.gz and three .debs, all by size.
    sync(5);
    let debs_fetched = |since: usize| -> Vec<String> {
        l.upstream()
            .hits_since(since, 1)
            .iter()
            .filter(|h| h.path.ends_with(".deb"))
            .map(|h| h.path.clone())
            .collect()
    };
    assert_eq!(debs_fetched(before), ["/vendor-new_0.1_all.deb"]);
    for deb in ["vendor-new_0.1_all.deb", "vendor-tool_1.0-1_amd64.deb"] {
        assert_eq!(
            std::fs::read(l.root.join("vendor").join(deb)).unwrap(),
            std::fs::read(dir.join(deb)).unwrap(),
            "{deb}"
        );
    }
    l.verifies();

    // A package rebuilt under the same name and size: its MD5 differs, so it is
    // fetched again rather than kept.
    let rebuilt = dir.join("vendor-data_2.3_all.deb");
    let mut bytes = std::fs::read(&rebuilt).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&rebuilt, &bytes).unwrap();
    generators::md5_only_index(&dir, true);
    let before = l.upstream().hits().len();
    sync(5);
    assert_eq!(debs_fetched(before), ["/vendor-data_2.3_all.deb"]);
    assert_eq!(
        std::fs::read(l.root.join("vendor/vendor-data_2.3_all.deb")).unwrap(),
        bytes
    );
}

/// A vendor's private repository behind HTTP basic authentication: the login comes
/// from a file in apt's auth.conf format, is sent, and is found nowhere else.
#[test]
fn a_private_repository_is_mirrored_with_a_login_from_an_auth_conf_file() {
    use std::os::unix::fs::PermissionsExt;
    let mut l = Layout::new();
    let dir = l.dir();
    generators::scanpackages_flat(&dir, &l.gpg);
    let nginx = Nginx::serve_protected(&dir, "alice:{PLAIN}correct-horse-battery\n");
    let url = nginx.url();
    let auth = l.work.path().join("auth.conf");
    let write_auth = |password: &str| {
        std::fs::write(
            &auth,
            format!("# the vendor's portal\nmachine {url} login alice password {password}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_auth("correct-horse-battery");
    l.mirror_of(
        nginx,
        &format!("suites = [\"./\"]\nauth_conf = \"{}\"", auth.display()),
    );

    // check-config names the entry the login comes from, and not the login.
    let out = l.run(&["check-config", "-v"]);
    assert_ok(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!(
            "login from machine {url} ({}, line 2)",
            auth.display()
        )),
        "{said}"
    );
    assert!(!said.contains("correct-horse"), "{said}");

    let out = l.run(&["sync"]);
    assert_ok(&out);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains("correct-horse"), "{printed}");
    l.apt_reads(
        "./",
        &[("vendor-tool", dir.join("vendor-tool_1.0-1_amd64.deb"))],
    );
    // Nothing the mirror wrote (state.json, traces, manifests, logs) holds the password.
    assert_eq!(
        files_containing(&l.root, b"correct-horse"),
        Vec::<String>::new()
    );
    let served = digest_tree(&l.root.join("vendor"));
    let hits = l.upstream().hits();
    assert!(hits.iter().all(|h| h.status != 401), "{hits:?}");

    // A wrong password is a clear error naming the entry; the mirror stays as it was.
    write_auth("not-the-password-9");
    let err = assert_exit(&l.run(&["sync"]), 1);
    assert!(
        err.contains(&format!(
            "HTTP 401: the upstream refused the login of machine {url} ({}, line 2)",
            auth.display()
        )),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");
    assert_eq!(digest_tree(&l.root.join("vendor")), served);

    // Without the file's entry, the error says a login is wanted and where it goes.
    std::fs::write(
        &auth,
        "machine https://elsewhere.invalid login a password b\n",
    )
    .unwrap();
    let err = assert_exit(&l.run(&["sync"]), 1);
    assert!(
        err.contains("HTTP 401: the upstream wants a login"),
        "{err}"
    );
    assert!(err.contains("auth_conf"), "{err}");

    // A file others can read is refused before anything is asked of the upstream.
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = assert_exit(&l.run(&["check-config"]), 2);
    assert!(
        err.contains(&format!(
            "auth_conf {}: mode 0644 lets other users read its passwords",
            auth.display()
        )),
        "{err}"
    );
}

/// The files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            out.push(entry.display().to_string());
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(walk(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out
}
