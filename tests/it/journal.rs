//! An operator runs mirrorsync from the shipped timer and from cron: what the journal
//! and the mail get, what the exit code says, and what a monitoring script reads.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use mirrorsync_testkit::FixtureSpec;

use crate::support::*;

/// Runs `mirrorsync -c CONFIG ARGS` with stderr a pipe that JOURNAL_STREAM names,
/// as systemd connects a unit's stderr to the journal. Returns the exit code and
/// what went to stderr.
fn run_under_journal(env: &Env, args: &[&str]) -> (i32, String) {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let meta = std::fs::metadata(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        writer.as_raw_fd()
    }))
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .arg("-c")
        .arg(&env.config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), text)
}

#[test]
fn under_systemd_each_run_leaves_one_line_per_mirror_and_errors_at_error_priority() {
    let mut env = Env::new(FixtureSpec::default().with_packages(5));
    let (code, text) = run_under_journal(&env, &["sync"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colour escapes in the journal:\n{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with('<') && l[1..].starts_with(char::is_numeric)),
        "every line carries its syslog priority:\n{text}"
    );
    let per_mirror: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("<6>") && l.contains("mirror{name=debian}"))
        .collect();
    assert_eq!(per_mirror.len(), 1, "one info line per mirror:\n{text}");
    assert!(
        per_mirror[0].contains("published snapshot") && per_mirror[0].contains("files_fetched="),
        "{text}"
    );
    eprintln!("journal of a successful run:\n{text}");

    // A failed run: the error at priority 3, which `journalctl -p err` shows.
    env.repo.add_package("zz-broken");
    env.publish();
    let pool = env.repo.dir.join("pool");
    let victim = walk_files(&pool)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("zz-broken"))
        .unwrap();
    std::fs::remove_file(&victim).unwrap();
    let (code, text) = run_under_journal(&env, &["sync"]);
    assert_eq!(code, 1, "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("<3>")).collect();
    assert!(
        errors.iter().any(|l| l.contains("mirror \"debian\"")),
        "the failure is at error priority:\n{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("<6>") && l.contains("published snapshot")),
        "{text}"
    );
    eprintln!("journal of a failed run:\n{text}");
}

#[test]
fn under_cron_a_successful_run_is_silent_and_never_coloured() {
    let env = Env::new(FixtureSpec::default().with_packages(3));
    let out = env.sync();
    assert_ok(&out);
    assert!(out.stderr.is_empty() && out.stdout.is_empty());
    // A failure mails plain text.
    std::fs::remove_dir_all(&env.repo.dir).unwrap();
    let err = assert_exit(&env.sync(), 1);
    assert!(
        !err.contains('\x1b') && err.contains("mirror \"debian\""),
        "{err}"
    );
}

#[test]
fn only_a_lock_another_run_holds_is_exit_3() {
    let env = Env::new(FixtureSpec::default().with_packages(3));
    // Held by another process (this test's), as a second timer run would find it.
    let held = mirrorsync::lock::RunLock::acquire(&env.root).unwrap();
    // Exit 3, and under cron nothing to mail (the crontab example relies on it);
    // under the journal the notice is there.
    let err = assert_exit(&env.sync(), 3);
    assert!(err.is_empty(), "{err}");
    let (code, journal) = run_under_journal(&env, &["sync"]);
    assert_eq!(code, 3);
    assert!(
        journal.starts_with("<5>mirrorsync: another mirrorsync run"),
        "{journal}"
    );
    // A monitoring script reading --json learns each mirror did not run, and why.
    let out = env.run(&["sync", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["name"], "debian");
    assert_eq!(doc[0]["outcome"], "not run");
    assert_eq!(doc[0]["exit_code"], 3);
    assert!(doc[0]["error"].as_str().unwrap().contains("holds"), "{doc}");
    assert!(!env.served().exists());
    drop(held);

    // A lock file that cannot be opened is a failure, not "another run".
    let lock = env.root.join(".mirrorsync/lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let err = assert_exit(&env.sync(), 1);
    assert!(err.contains("opening the lock file"), "{err}");
    assert!(!env.served().exists());
}

#[test]
fn json_lists_every_mirror_failed_ones_with_their_error_and_exit_code() {
    let env = Env::with_config(
        FixtureSpec::default().with_packages(3),
        "\n[[mirror]]\nname = \"gone\"\nkind = \"apt\"\nupstream = \"http://127.0.0.1:9/nothing\"\nsuites = [\"bookworm\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]\ncheck_signature = false\n",
    );
    let out = env.run(&["sync", "--json"]);
    assert_exit(&out, 1);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mirrors = doc.as_array().unwrap();
    assert_eq!(mirrors.len(), 2, "{doc:#}");
    assert_eq!(mirrors[0]["name"], "debian");
    assert_eq!(mirrors[0]["outcome"], "published");
    assert_eq!(mirrors[0]["exit_code"], 0);
    assert_eq!(mirrors[1]["name"], "gone");
    assert_eq!(mirrors[1]["outcome"], "failed");
    assert_eq!(mirrors[1]["exit_code"], 1);
    let error = mirrors[1]["error"].as_str().unwrap();
    assert!(error.starts_with("mirror \"gone\""), "{error}");
    let causes = mirrors[1]["causes"].as_array().unwrap();
    assert!(causes.len() >= 2, "{doc:#}");

    // verify --json too.
    let out = env.run(&["verify", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["debian", "gone"], "{doc:#}");
    assert_eq!(doc[1]["exit_code"], 1, "{doc:#}");
}

#[test]
fn man_dir_writes_a_page_per_subcommand_with_exit_status_files_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_ok(&out);
    for page in [
        "mirrorsync",
        "mirrorsync-sync",
        "mirrorsync-verify",
        "mirrorsync-probe",
    ] {
        let text = std::fs::read_to_string(dir.path().join(format!("{page}.1"))).unwrap();
        for section in [".SH \"EXIT STATUS\"", ".SH FILES", ".SH ENVIRONMENT"] {
            assert!(text.contains(section), "{page}: {section}");
        }
    }
    let sync = std::fs::read_to_string(dir.path().join("mirrorsync-sync.1")).unwrap();
    assert!(
        sync.contains("verify\\-all"),
        "sync's flags are on its page"
    );
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
