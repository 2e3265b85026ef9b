//! Upstream repositories made the way vendors make them: packages built by
//! `dpkg-deb`, indexed by `dpkg-scanpackages`, `apt-ftparchive`, `reprepro` or
//! `aptly`, and signed by GnuPG with a key of the test's own. The tools are the real
//! ones (scripts/test.sh installs them); a missing one fails the test, naming it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd`, failing the test with everything it printed if it fails.
fn run(cmd: &mut Command) -> Vec<u8> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e} (is it installed? scripts/test.sh installs it)"));
    assert!(
        out.status.success(),
        "{shown} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A GnuPG home of the test's own with one ed25519 signing key, the way a vendor signs.
pub struct Gpg {
    home: tempfile::TempDir,
    pub fingerprint: String,
    /// The public key, exported: the mirror's keyring and apt's `signed-by`.
    pub keyring: PathBuf,
}

impl Gpg {
    pub fn new() -> Gpg {
        // A short path: gpg-agent's socket must fit in a sockaddr_un.
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        let mut g = Gpg {
            home,
            fingerprint: String::new(),
            keyring: PathBuf::new(),
        };
        run(g.cmd().args([
            "--quick-gen-key",
            "Vendor Archive <archive@vendor.invalid>",
            "ed25519",
            "sign",
            "1y",
        ]));
        let listing =
            String::from_utf8(run(g.cmd().args(["--with-colons", "--list-keys"]))).unwrap();
        g.fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| f.len() == 40))
            .expect("the new key's fingerprint")
            .to_string();
        g.keyring = g.home.path().join("vendor-archive-keyring.gpg");
        let key = run(g.cmd().args(["--export", &g.fingerprint]));
        std::fs::write(&g.keyring, key).unwrap();
        g
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--quiet",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        c
    }

    /// InRelease and Release.gpg beside the Release in `dir`.
    pub fn sign_release(&self, dir: &Path) {
        let release = dir.join("Release");
        run(self
            .cmd()
            .args(["--default-key", &self.fingerprint, "--clearsign", "-o"])
            .arg(dir.join("InRelease"))
            .arg(&release));
        run(self
            .cmd()
            .args([
                "--default-key",
                &self.fingerprint,
                "--armor",
                "--detach-sign",
                "-o",
            ])
            .arg(dir.join("Release.gpg"))
            .arg(&release));
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "all"])
            .output();
    }
}

/// Builds `<name>_<version>_<arch>.deb` in `out` with `dpkg-deb`: a real package,
/// with a file whose contents differ by name and version.
pub fn build_deb(out: &Path, name: &str, version: &str, arch: &str) -> PathBuf {
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("DEBIAN")).unwrap();
    std::fs::write(
        t.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: Vendor <archive@vendor.invalid>\nSection: misc\nPriority: optional\nDescription: {name}, packaged for a mirror test\n"
        ),
    )
    .unwrap();
    let doc = t.join("usr/share/doc").join(name);
    std::fs::create_dir_all(&doc).unwrap();
    std::fs::write(
        doc.join("README"),
        format!("{name} {version}\n").repeat(200),
    )
    .unwrap();
    std::fs::create_dir_all(out).unwrap();
    let deb = out.join(format!("{name}_{version}_{arch}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zgzip"])
        .arg(t)
        .arg(&deb));
    deb
}

/// The packages every generated repository carries: one for amd64, one for all.
pub fn vendor_debs(out: &Path) -> Vec<PathBuf> {
    vec![
        build_deb(out, "vendor-tool", "1.0-1", "amd64"),
        build_deb(out, "vendor-data", "2.3", "all"),
    ]
}

/// `apt-ftparchive release` of `dir` (run from `dir`, as vendors do) into
/// `dir/Release`, with the fields apt wants of a flat repository.
pub fn ftparchive_release(dir: &Path, extra: &[&str]) {
    let mut cmd = Command::new("apt-ftparchive");
    cmd.current_dir(dir)
        .args(["-o", "APT::FTPArchive::Release::Origin=Vendor"])
        .args(["-o", "APT::FTPArchive::Release::Label=Vendor"]);
    for e in extra {
        cmd.args(["-o", e]);
    }
    let release = run(cmd.args(["release", "."]));
    std::fs::write(dir.join("Release"), release).unwrap();
}

/// Compresses `file` with `tool` (gzip, xz, zstd...) beside it, keeping it.
pub fn compress(file: &Path, tool: &str) {
    run(Command::new(tool).args(["-k", "-f", "-q"]).arg(file));
}

/// A flat repository at the root of `upstream`, as a small vendor makes one with
/// dpkg-scanpackages: the .debs, `Packages` (`Filename: ./x.deb`) and its .gz and
/// .xz, a Release by apt-ftparchive, signed. apt reads it as `deb URL ./`.
pub fn scanpackages_flat(upstream: &Path, gpg: &Gpg) {
    vendor_debs(upstream);
    let packages = run(Command::new("dpkg-scanpackages")
        .current_dir(upstream)
        .args(["--multiversion", "."])
        .stderr(std::process::Stdio::null()));
    std::fs::write(upstream.join("Packages"), packages).unwrap();
    compress(&upstream.join("Packages"), "gzip");
    compress(&upstream.join("Packages"), "xz");
    ftparchive_release(upstream, &[]);
    gpg.sign_release(upstream);
}

/// A flat repository in `upstream/<sub>/` made by apt-ftparchive run from the root
/// (`Filename: <sub>/x.deb`), its Packages served only in `compressions` (`["zst"]`:
/// a .zst-only repository). apt reads it as `deb URL <sub>/`.
pub fn ftparchive_flat(upstream: &Path, sub: &str, compressions: &[&str], gpg: &Gpg) {
    let dir = upstream.join(sub);
    vendor_debs(&dir);
    let packages = run(Command::new("apt-ftparchive")
        .current_dir(upstream)
        .args(["packages", sub]));
    let plain = dir.join("Packages");
    std::fs::write(&plain, packages).unwrap();
    for c in compressions {
        let tool = match *c {
            "gz" => "gzip",
            "zst" => "zstd",
            other => other,
        };
        compress(&plain, tool);
    }
    // apt checks a flat repository's Suite against the directory it was given
    // ("Conflicting distribution" otherwise), except for "./".
    ftparchive_release(&dir, &[&format!("APT::FTPArchive::Release::Suite={sub}/")]);
    gpg.sign_release(&dir);
    // apt skips a flat Packages its Release does not list uncompressed; Debian's way
    // is to list it and serve only the compressed ones.
    if !compressions.is_empty() {
        std::fs::remove_file(&plain).unwrap();
    }
}

/// A `dists/stable/` repository published by reprepro (component main, amd64), signed
/// by reprepro with the test's key.
pub fn reprepro_dists(upstream: &Path, gpg: &Gpg) {
    let conf = upstream.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("distributions"),
        format!(
            "Origin: Vendor\nLabel: Vendor\nCodename: stable\nArchitectures: amd64 arm64\nComponents: main\nDescription: a vendor's repository\nSignWith: {}\n",
            gpg.fingerprint
        ),
    )
    .unwrap();
    let debs = tempfile::tempdir().unwrap();
    for deb in vendor_debs(debs.path()) {
        run(Command::new("reprepro")
            .env("GNUPGHOME", gpg.home())
            .arg("-b")
            .arg(upstream)
            .args(["--silent", "includedeb", "stable"])
            .arg(deb));
    }
}

/// A `dists/stable/` repository published by aptly (component main, amd64, by-hash),
/// signed by aptly through GnuPG. Returns the directory to serve (aptly's `public`).
pub fn aptly_dists(work: &Path, gpg: &Gpg) -> PathBuf {
    let root = work.join("aptly");
    let config = work.join("aptly.conf");
    std::fs::write(
        &config,
        format!(
            r#"{{"rootDir": "{}", "gpgProvider": "gpg", "architectures": ["amd64", "arm64"]}}"#,
            root.display()
        ),
    )
    .unwrap();
    let aptly = || {
        let mut c = Command::new("aptly");
        c.env("GNUPGHOME", gpg.home())
            .arg(format!("-config={}", config.display()));
        c
    };
    run(aptly().args([
        "repo",
        "create",
        "-distribution=stable",
        "-component=main",
        "vendor",
    ]));
    let debs = work.join("aptly-debs");
    vendor_debs(&debs);
    run(aptly().args(["repo", "add", "vendor"]).arg(&debs));
    run(aptly().args([
        "publish",
        "repo",
        "-acquire-by-hash",
        "-batch",
        "-passphrase=",
        &format!("-gpg-key={}", gpg.fingerprint),
        "vendor",
    ]));
    root.join("public")
}

/// A hybrid suite: `dists/stable/` holds both a flat `Packages` (listing
/// `pool/flat/`) and a component's `main/binary-amd64/Packages` (listing
/// `pool/main/`), one Release over both, made with dpkg-scanpackages and
/// apt-ftparchive.
pub fn hybrid_suite(upstream: &Path, gpg: &Gpg) {
    let suite = upstream.join("dists/stable");
    let binary = suite.join("main/binary-amd64");
    std::fs::create_dir_all(&binary).unwrap();
    build_deb(&upstream.join("pool/flat"), "vendor-flat", "1.0", "all");
    vendor_debs(&upstream.join("pool/main"));
    let scan = |dir: &str| {
        run(Command::new("dpkg-scanpackages")
            .current_dir(upstream)
            .args(["--multiversion", dir])
            .stderr(std::process::Stdio::null()))
    };
    std::fs::write(suite.join("Packages"), scan("pool/flat")).unwrap();
    compress(&suite.join("Packages"), "gzip");
    std::fs::write(binary.join("Packages"), scan("pool/main")).unwrap();
    compress(&binary.join("Packages"), "gzip");
    ftparchive_release(
        &suite,
        &[
            "APT::FTPArchive::Release::Suite=stable",
            "APT::FTPArchive::Release::Codename=stable",
            "APT::FTPArchive::Release::Components=main",
            "APT::FTPArchive::Release::Architectures=amd64",
        ],
    );
    gpg.sign_release(&suite);
}

/// apt-ftparchive's options that leave only MD5 (what old scripts and tools write).
const MD5_ONLY: [&str; 3] = [
    "APT::FTPArchive::SHA1=false",
    "APT::FTPArchive::SHA256=false",
    "APT::FTPArchive::SHA512=false",
];

/// An unsigned flat repository at the root of `upstream` whose Release lists MD5
/// sums only (apt-ftparchive told not to write stronger ones), as old scripts make
/// them; with `packages_md5_only` its Packages too. apt takes the Release only as
/// `deb [trusted=yes]`, and a package only with a SHA256 in Packages.
pub fn unsigned_md5_only_flat(upstream: &Path, packages_md5_only: bool) {
    vendor_debs(upstream);
    md5_only_index(upstream, packages_md5_only);
}

/// (Re)writes Packages, Packages.gz and an MD5-only Release for the .debs in
/// `upstream`, as `unsigned_md5_only_flat` does.
pub fn md5_only_index(upstream: &Path, packages_md5_only: bool) {
    let mut cmd = Command::new("apt-ftparchive");
    cmd.current_dir(upstream);
    if packages_md5_only {
        for o in MD5_ONLY {
            cmd.args(["-o", o]);
        }
    }
    let packages = run(cmd.args(["packages", "."]));
    std::fs::write(upstream.join("Packages"), packages).unwrap();
    compress(&upstream.join("Packages"), "gzip");
    let release = upstream.join("Release");
    let before = std::fs::metadata(&release).and_then(|m| m.modified()).ok();
    ftparchive_release(upstream, &MD5_ONLY);
    // nginx's validators are the mtime (to the second) and size: a Release rewritten
    // within the second at the same size would answer 304. A real upstream's next
    // publish is minutes later; say so.
    if let Some(before) = before {
        let later = before + std::time::Duration::from_secs(2);
        let file = std::fs::File::options().write(true).open(&release).unwrap();
        file.set_modified(later.max(std::time::SystemTime::now()))
            .unwrap();
    }
}
