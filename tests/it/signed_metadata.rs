//! An operator mirrors an upstream that a real nginx serves, and one day that
//! upstream's InRelease comes in a shape apt refuses: unsigned lines slipped in before
//! the signature, anything after it (even one empty line), text before the BEGIN line,
//! a second signed block. mirrorsync refuses each one, naming the URL and the line,
//! and leaves the served tree exactly as it was; stock apt-get refuses the same bytes
//! from the same nginx, so nothing apt would refuse is ever published.
//!
//! And a published InRelease edited on disk afterwards never feeds a later run: not
//! its Date for the rollback check, not its bytes for a no-op.

use std::path::PathBuf;
use std::process::Command;

use mirrorsync_testkit::FixtureSpec;

use crate::live::Nginx;
use crate::support::*;

const SUITE: &str = "bookworm";
const BEGIN_MESSAGE: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";
/// The Date a forger wants every later genuine Release compared with.
const FAKE_DATE: &str = "Date: Sat, 01 Jan 2050 00:00:00 UTC";

/// apt 2.6 (Debian 12), when its clear-signed splitter refuses a file
/// (`SplitClearSignedFile` in apt-pkg/contrib/gpgv.cc, through `ExecGPGV`):
/// "Splitting up <lists/partial/..._InRelease> into data and signature failed".
const SPLITTING_UP_FAILED: &[&str] = &[
    "Splitting up ",
    "_dists_bookworm_InRelease into data and signature failed",
];
/// apt 2.6, when the file does not start with the BEGIN line but has one later: its
/// gpgv method refuses it before any signature is looked at.
const NOSPLIT: &[&str] = &["Clearsigned file isn't valid, got 'NOSPLIT'"];

/// A mirror synced once from a fixture repository that a private nginx serves.
struct Story {
    env: Env,
    nginx: Nginx,
}

impl Story {
    /// The upstream behind nginx, mirrored once: the clean sync publishes.
    fn synced() -> Story {
        let env = Env::new(FixtureSpec::default().with_packages(12));
        let nginx = Nginx::serve(&env.repo.dir);
        // Env points the mirror at its in-process server; this story's upstream is nginx.
        let config = std::fs::read_to_string(&env.config).unwrap();
        let (ours, real) = (env.server.url(), nginx.url(""));
        assert!(
            config.contains(&format!("upstream = \"{ours}\"")),
            "{config}"
        );
        std::fs::write(&env.config, config.replace(&ours, &real)).unwrap();
        let story = Story { env, nginx };
        assert_exit(&story.env.sync(), 0);
        let stray = story.env.server.requests();
        assert!(
            stray.is_empty(),
            "the in-process server was asked: {stray:?}"
        );
        assert_eq!(
            story.served_inrelease(),
            story.upstream_inrelease(),
            "the clean sync published upstream's InRelease"
        );
        story
    }

    fn inrelease_url(&self) -> String {
        self.nginx.url(&format!("dists/{SUITE}/InRelease"))
    }

    fn upstream_inrelease_path(&self) -> PathBuf {
        self.env.repo.dir.join(format!("dists/{SUITE}/InRelease"))
    }

    fn served_inrelease_path(&self) -> PathBuf {
        self.env.served().join(format!("dists/{SUITE}/InRelease"))
    }

    /// The InRelease upstream serves now.
    fn upstream_inrelease(&self) -> String {
        std::fs::read_to_string(self.upstream_inrelease_path()).unwrap()
    }

    fn served_inrelease(&self) -> String {
        std::fs::read_to_string(self.served_inrelease_path()).unwrap()
    }

    /// Upstream's InRelease is replaced; its Release and Release.gpg stay genuine, so
    /// the shape is the only thing wrong with the upstream.
    fn upstream_serves(&self, tampered: &str) {
        let path = self.upstream_inrelease_path();
        std::fs::write(&path, tampered).unwrap();
        // What nginx sends is what was written.
        let served = get(&self.inrelease_url());
        assert_eq!(served, tampered.as_bytes());
    }

    /// The next sync fails with exit 1, names the URL and `line <line>: <problem>`,
    /// and leaves the served tree and the snapshot as they were, with nothing left
    /// behind.
    fn sync_is_refused(&self, line: usize, problem: &str) -> String {
        let before = self.env.served_digest();
        let snapshot = self.env.snapshot_id();
        let stderr = assert_exit(&self.env.sync(), 1);
        eprintln!("mirrorsync said:\n{stderr}");
        for expected in [
            "mirror \"debian\"".to_string(),
            format!("verifying {}", self.inrelease_url()),
            format!("line {line}: {problem}"),
        ] {
            assert!(
                stderr.contains(&expected),
                "stderr lacks {expected:?}:\n{stderr}"
            );
        }
        assert_eq!(self.env.served_digest(), before, "the served tree changed");
        assert_eq!(self.env.snapshot_id(), snapshot, "a snapshot was published");
        let root = &self.env.root;
        assert!(temp_files(root).is_empty(), "{:?}", temp_files(root));
        assert!(stray_files(root).is_empty(), "{:?}", stray_files(root));
        stderr
    }

    /// Stock apt-get with its own state, pointed at the upstream with the fixture's
    /// keyring as `signed-by`.
    fn apt(&self) -> AptGet {
        AptGet::new(&format!(
            "deb [signed-by={}] {} {SUITE} main contrib",
            self.env.repo.keyring.display(),
            self.nginx.url("")
        ))
    }

    /// Stock apt-get refuses what upstream serves now: an apt that has never updated
    /// fails (its error says why and that the repository is not signed); the apt that
    /// updated from the genuine upstream before warns, and keeps the genuine InRelease.
    fn apt_refuses(&self, updated_before: &AptGet, genuine: &str, why: &[&str]) {
        let not_signed = format!(
            "E: The repository '{} {SUITE} InRelease' is not signed.",
            self.nginx.url("").trim_end_matches('/')
        );
        let mut expected = why.to_vec();
        expected.push(&not_signed);
        self.apt().update_fails_with(&expected);

        let (ok, text) = updated_before.update();
        eprintln!("apt-get (with the genuine lists) said:\n{text}");
        for e in why {
            assert!(text.contains(e), "apt-get's output lacks {e:?}:\n{text}");
        }
        assert!(
            !ok || text.contains("W: An error occurred during the signature verification. The repository is not updated and the previous index files will be used."),
            "apt-get took the refused file:\n{text}"
        );
        assert_eq!(
            updated_before.inrelease(),
            genuine,
            "apt took the refused file"
        );
    }

    /// Upstream publishes a genuinely newer Release (a new package); the next sync
    /// mirrors it, whatever the published copy now says.
    fn next_genuine_publish_is_mirrored(&mut self) {
        assert_exit(&self.env.run(&["verify"]), 4);
        self.env.repo.add_package("aaa-newer");
        self.env.publish();
        // Said in the run's report (what cron mails and monitoring reads), not only
        // in a verbose log.
        let report = sync_report(&self.env);
        let said = "InRelease changed on disk since it was published; its Date is not used for the rollback check";
        assert!(
            report["warnings"].to_string().contains(said),
            "the run does not say {said:?}:\n{report}"
        );
        assert!(
            !report.to_string().contains("refusing a rollback"),
            "{report}"
        );
        assert_eq!(self.served_inrelease(), self.upstream_inrelease());
        let added = self.env.repo.packages["aaa-newer"].filename();
        assert_eq!(
            std::fs::read(self.env.served().join(&added)).unwrap(),
            std::fs::read(self.env.repo.dir.join(&added)).unwrap()
        );
        assert_exit(&self.env.run(&["verify"]), 0);
        assert!(temp_files(&self.env.root).is_empty());
    }

    /// Edits the published InRelease in place, as a careless (or hostile) hand would.
    fn edit_served_inrelease(&self, edit: impl Fn(&str) -> String) -> String {
        let path = self.served_inrelease_path();
        let edited = edit(&std::fs::read_to_string(&path).unwrap());
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        std::fs::write(&path, &edited).unwrap();
        assert_eq!(self.served_inrelease(), edited);
        edited
    }
}

/// 1-based number of the first line of `text` equal to `wanted`, after `skip` of them.
fn line_of(text: &str, wanted: &str, skip: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| *l == wanted)
        .nth(skip)
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no {wanted:?} line in\n{text}"))
}

/// Unsigned lines right before the signature block: a dash line that a loose splitter
/// takes for the end of the message, then a fake Date and checksum list.
fn with_unsigned_lines_before_the_signature(genuine: &str) -> String {
    let forged = format!(
        "-----\n{FAKE_DATE}\nSHA256:\n {} 1234 main/binary-amd64/Packages.xz\n",
        "e".repeat(64)
    );
    let at = genuine.find(&format!("\n{BEGIN_SIGNATURE}\n")).unwrap() + 1;
    format!("{}{forged}{}", &genuine[..at], &genuine[at..])
}

/// The Date line of the signed text says 2050 (the signature no longer matches).
fn with_a_2050_date(genuine: &str) -> String {
    let date = genuine
        .lines()
        .find(|l| l.starts_with("Date: "))
        .unwrap_or_else(|| panic!("no Date in\n{genuine}"));
    let edited = genuine.replacen(&format!("\n{date}\n"), &format!("\n{FAKE_DATE}\n"), 1);
    assert_ne!(edited, genuine);
    edited
}

/// apt-get with a configuration of its own: its own state, cache, sources and trust,
/// nothing of the system's touched. (live.rs has the same setup, with a runner that
/// only knows success; these tests need apt's failures.)
struct AptGet {
    dir: tempfile::TempDir,
}

impl AptGet {
    fn new(source_line: &str) -> AptGet {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("apt-get").is_file()));
        assert!(
            found,
            "apt-get is not installed: these tests need the real one. Run scripts/test.sh or `apt-get install apt`"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in [
            "state/lists/partial",
            "cache/archives/partial",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "etc/apt.conf.d",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("state/status"), "").unwrap();
        std::fs::write(d.join("etc/sources.list"), format!("{source_line}\n")).unwrap();
        AptGet { dir }
    }

    /// `apt-get update`: whether it succeeded, and everything it printed.
    fn update(&self) -> (bool, String) {
        let d = self.dir.path().display();
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
        for o in &opts {
            cmd.arg("-o").arg(o);
        }
        let out = cmd
            .arg("update")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("running apt-get");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// apt-get update succeeds without a warning or an error.
    fn update_succeeds(&self) {
        let (ok, text) = self.update();
        let complaints = text
            .lines()
            .any(|l| l.starts_with("W:") || l.starts_with("E:"));
        assert!(ok && !complaints, "apt-get update failed:\n{text}");
    }

    /// apt-get update fails, printing each of `expected`.
    fn update_fails_with(&self, expected: &[&str]) -> String {
        let (ok, text) = self.update();
        eprintln!("apt-get said:\n{text}");
        assert!(!ok, "apt-get update succeeded:\n{text}");
        for e in expected {
            assert!(text.contains(e), "apt-get's output lacks {e:?}:\n{text}");
        }
        text
    }

    /// The InRelease apt holds in its lists.
    fn inrelease(&self) -> String {
        let lists = self.dir.path().join("state/lists");
        let file = std::fs::read_dir(&lists)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with("_InRelease"))
            .unwrap_or_else(|| panic!("apt holds no InRelease in {}", lists.display()));
        std::fs::read_to_string(file).unwrap()
    }
}

/// The body of a GET, from a runtime of its own.
fn get(url: &str) -> Vec<u8> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let resp = reqwest::get(url).await.unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.bytes().await.unwrap().to_vec()
    })
}

#[test]
fn apt_get_updates_from_the_genuine_upstream_behind_nginx() {
    let story = Story::synced();
    let apt = story.apt();
    apt.update_succeeds();
    assert_eq!(apt.inrelease(), story.upstream_inrelease());
}

#[test]
fn unsigned_lines_before_the_signature_are_refused_at_their_dash_line_as_apt_refuses_them() {
    let story = Story::synced();
    let apt = story.apt();
    apt.update_succeeds();
    let genuine = story.upstream_inrelease();
    let tampered = with_unsigned_lines_before_the_signature(&genuine);
    story.upstream_serves(&tampered);
    story.sync_is_refused(
        line_of(&tampered, "-----", 0),
        "a line starting with a dash that is not dash-escaped (\"- \")",
    );
    story.apt_refuses(&apt, &genuine, SPLITTING_UP_FAILED);
}

#[test]
fn one_empty_line_after_the_signature_is_refused_as_apt_refuses_it() {
    let story = Story::synced();
    let apt = story.apt();
    apt.update_succeeds();
    let genuine = story.upstream_inrelease();
    let tampered = format!("{genuine}\n");
    story.upstream_serves(&tampered);
    // The empty line is the last one.
    let line = tampered.lines().count();
    assert_eq!(tampered.lines().nth(line - 1), Some(""));
    story.sync_is_refused(line, "unsigned text after the signature");
    story.apt_refuses(&apt, &genuine, SPLITTING_UP_FAILED);
}

#[test]
fn text_before_the_begin_line_is_refused_as_apt_refuses_it() {
    let story = Story::synced();
    let apt = story.apt();
    apt.update_succeeds();
    let genuine = story.upstream_inrelease();
    let tampered = format!("{FAKE_DATE}\n{genuine}");
    story.upstream_serves(&tampered);
    story.sync_is_refused(
        line_of(&tampered, FAKE_DATE, 0),
        "text before the \"-----BEGIN PGP SIGNED MESSAGE-----\" line",
    );
    story.apt_refuses(&apt, &genuine, NOSPLIT);
}

#[test]
fn a_second_signed_block_is_refused_as_apt_refuses_it() {
    let story = Story::synced();
    let apt = story.apt();
    apt.update_succeeds();
    let genuine = story.upstream_inrelease();
    let tampered = format!("{genuine}{genuine}");
    story.upstream_serves(&tampered);
    // The second block's BEGIN line is the first one after the signature.
    story.sync_is_refused(
        line_of(&tampered, BEGIN_MESSAGE, 1),
        "unsigned text after the signature",
    );
    story.apt_refuses(&apt, &genuine, SPLITTING_UP_FAILED);
}

#[test]
fn a_published_inrelease_edited_to_say_2050_does_not_make_the_next_release_a_rollback() {
    let mut story = Story::synced();
    story.edit_served_inrelease(with_a_2050_date);
    story.next_genuine_publish_is_mirrored();
}

#[test]
fn unsigned_2050_lines_slipped_into_the_published_inrelease_do_not_cause_a_rollback() {
    let mut story = Story::synced();
    story.edit_served_inrelease(with_unsigned_lines_before_the_signature);
    story.next_genuine_publish_is_mirrored();
}

#[test]
fn a_no_op_run_after_the_published_inrelease_was_edited_puts_upstreams_genuine_one_back() {
    let story = Story::synced();
    let edited = story.edit_served_inrelease(with_a_2050_date);
    assert_exit(&story.env.run(&["verify"]), 4);
    let snapshot = story.env.snapshot_id();

    // Upstream has not moved; the run must not carry the edited copy over as "unchanged".
    let report = sync_report(&story.env);
    for said in [
        "InRelease changed on disk since it was published; fetching it again",
        "InRelease changed on disk since it was published; its Date is not used for the rollback check",
    ] {
        assert!(
            report["warnings"].to_string().contains(said),
            "the run does not say {said:?}:\n{report}"
        );
    }
    assert!(
        !report.to_string().contains("refusing a rollback"),
        "{report}"
    );
    assert_eq!(story.served_inrelease(), story.upstream_inrelease());
    assert_ne!(story.served_inrelease(), edited);
    assert_ne!(
        story.env.snapshot_id(),
        snapshot,
        "a new snapshot replaces the one holding the edited copy"
    );
    assert_exit(&story.env.run(&["verify"]), 0);
    assert!(temp_files(&story.env.root).is_empty());

    // And the mirror is back to its steady state: the next run is a no-op.
    let snapshot = story.env.snapshot_id();
    assert_exit(&story.env.sync(), 0);
    assert_eq!(story.env.snapshot_id(), snapshot);
}

/// A published copy that no longer verifies must not open the way to a rollback: the
/// Date recorded when it was verified and published still guards the mirror.
#[test]
fn an_edited_published_copy_does_not_let_an_older_release_through() {
    let mut story = Story::synced();
    let older = story.upstream_inrelease();
    story.env.repo.add_package("aaa-newer");
    story.env.publish();
    assert_exit(&story.env.sync(), 0);
    assert_eq!(story.served_inrelease(), story.upstream_inrelease());
    story.edit_served_inrelease(with_a_2050_date);

    // Upstream (or whoever sits on its plain-http path) serves the older, genuinely
    // signed InRelease again.
    story.upstream_serves(&older);
    let before = story.env.served_digest();
    let stderr = assert_exit(&story.env.sync(), 1);
    assert!(stderr.contains("refusing a rollback"), "{stderr}");
    assert_eq!(story.env.served_digest(), before, "the served tree changed");
    assert!(temp_files(&story.env.root).is_empty());
}

/// `mirrorsync sync --json`, which must succeed: the report of the one mirror.
fn sync_report(env: &Env) -> serde_json::Value {
    let out = env.run(&["sync", "--json"]);
    assert_exit(&out, 0);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    doc[0].clone()
}
