//! Hostile and broken upstreams: each either recovers or fails the mirror with one
//! clear message, within the timeouts, leaving the served tree as it was.

use std::time::{Duration, Instant};

use mirrorsync::fixture::FixtureSpec;
use mirrorsync::fixture::server::Fault;

use crate::support::*;

fn synced(extra: &str) -> Env {
    let env = Env::with_config(FixtureSpec::default().with_packages(20), extra);
    assert_ok(&env.sync());
    env
}

fn before(env: &Env) -> (TreeDigest, Option<String>) {
    (env.served_digest(), env.snapshot_id())
}

#[track_caller]
fn unchanged(env: &Env, was: &(TreeDigest, Option<String>)) {
    assert_eq!(&env.served_digest(), &was.0, "the served tree changed");
    assert_eq!(env.snapshot_id(), was.1);
    assert!(stray_files(&env.root).is_empty());
}

/// A new package whose download misbehaves with `fault`, under a 1 s timeout: the
/// run must give up within seconds, saying `expect`, and change nothing.
fn gives_up_quickly(fault: Fault, expect: &str) {
    let mut env = synced("timeout = \"1s\"\nretries = 1");
    let path = env.repo.add_package("aaa-slow").filename();
    env.publish();
    env.server.fault(&format!("/{path}"), fault, None);
    let was = before(&env);
    let started = Instant::now();
    let stderr = assert_exit(&env.sync(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains(expect), "{stderr}");
    unchanged(&env, &was);
}

#[test]
fn a_server_that_never_answers_times_out_instead_of_hanging() {
    gives_up_quickly(Fault::Hang, "timed out");
}

#[test]
fn a_redirect_loop_fails_with_a_clear_message() {
    let mut env = synced("");
    let path = env.repo.add_package("aaa-loop").filename();
    env.publish();
    env.server.fault(
        &format!("/{path}"),
        Fault::Redirect(format!("/{path}")),
        None,
    );
    let was = before(&env);
    let stderr = assert_exit(&env.sync(), 1);
    assert!(stderr.contains("too many redirects"), "{stderr}");
    unchanged(&env, &was);
}

#[test]
fn an_upstream_claiming_a_10_tb_file_is_refused_before_downloading() {
    let mut env = synced("");
    env.repo.extra_stanza = Some(
        "Package: huge\nVersion: 1\nArchitecture: all\nFilename: pool/main/h/huge/huge_1_all.deb\nSize: 10000000000000\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n"
            .into(),
    );
    env.publish();
    let was = before(&env);
    env.server.clear_log();
    let stderr = assert_exit(&env.sync(), 1);
    assert!(stderr.contains("not enough free space"), "{stderr}");
    assert_eq!(env.server.count("/pool/"), 0, "nothing is fetched");
    unchanged(&env, &was);
}

#[test]
fn a_tolerated_broken_file_does_not_block_publishing() {
    let mut env = synced("tolerate = [\"pool/**/aaa-broken_*\"]");
    let broken = env.repo.add_package("aaa-broken").filename();
    let good = env.repo.add_package("aaa-good").filename();
    env.publish();
    env.server
        .fault(&format!("/{broken}"), Fault::Status(404), None);
    let out = env.sync();
    assert_ok(&out);
    assert!(env.served().join(&good).exists());
    assert!(!env.served().join(&broken).exists());
    // Not tolerated: the same failure elsewhere still fails the mirror.
    let other = env.repo.add_package("aaa-other").filename();
    env.publish();
    env.server
        .fault(&format!("/{other}"), Fault::Status(404), None);
    assert_exit(&env.sync(), 1);
}

#[test]
fn a_tolerated_file_keeps_its_last_good_copy() {
    let mut env = synced("tolerate = [\"pool/**\"]");
    let name = env.repo.packages.keys().next().cloned().unwrap();
    let path = env.repo.packages[&name].filename();
    let good = std::fs::read(env.served().join(&path)).unwrap();
    // Upstream replaces the file in place (same name, new bytes) and serves it broken.
    env.repo.packages.get_mut(&name).unwrap().seed += 1;
    std::fs::remove_file(env.repo.dir.join(&path)).unwrap();
    env.publish();
    env.server.fault(&format!("/{path}"), Fault::Corrupt, None);
    assert_ok(&env.sync());
    assert_eq!(std::fs::read(env.served().join(&path)).unwrap(), good);
}

#[test]
fn a_killed_run_leaves_the_served_tree_and_the_next_run_resumes() {
    let mut env = Env::new(FixtureSpec::default().with_packages(20));
    assert_ok(&env.sync());
    // Big enough that the run is still downloading, with bytes on disk, when it dies.
    env.repo.size_range = (2_000_000, 4_000_000);
    for i in 0..10 {
        env.repo.add_package(&format!("aaa-kill-{i}"));
    }
    env.publish();
    let was = before(&env);
    // Slow enough to be killed mid-download.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .arg("-c")
        .arg(&env.config)
        .args(["sync", "--bwlimit", "4MB/s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it is downloading the new pool files.
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.server.count("/pool/") == 0 {
        assert!(Instant::now() < deadline, "the run never reached the pool");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    unchanged(&env, &was);
    let partial = env.root.join(".mirrorsync/debian/partial");
    let staged_or_partial = std::fs::read_dir(&partial).unwrap().count()
        + walkdir::WalkDir::new(env.root.join(".mirrorsync/debian/staging"))
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .count();
    assert!(
        staged_or_partial > 0,
        "the killed run left nothing to reuse"
    );

    // No stale lock; the rerun completes and does not fetch again what it has.
    env.server.clear_log();
    assert_ok(&env.sync());
    let pool_bytes: u64 = env
        .repo
        .pool_files()
        .iter()
        .filter(|(p, _)| p.contains("aaa-kill-"))
        .map(|(_, s)| s)
        .sum();
    let refetched = env
        .server
        .requests()
        .iter()
        .filter(|r| r.path.contains("aaa-kill-"))
        .count();
    let resumed = env.server.requests().iter().any(|r| r.range.is_some());
    assert!(
        refetched < 10 || resumed,
        "the rerun fetched all {refetched} new files ({pool_bytes} bytes) from scratch"
    );
    for (p, _) in env.repo.pool_files() {
        assert!(env.served().join(&p).exists(), "{p}");
    }
    assert_ok(&env.run(&["verify"]));
}

#[test]
fn a_server_trickling_a_byte_at_a_time_is_given_up_on() {
    gives_up_quickly(Fault::Trickle, "stalled");
}

#[test]
fn one_filename_listed_with_two_hashes_fails_naming_it() {
    let mut env = synced("");
    let (path, _) = env.repo.pool_files()[0].clone();
    env.repo.extra_stanza = Some(format!(
        "Package: twin\nVersion: 1\nArchitecture: all\nFilename: {path}\nSize: 3\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n"
    ));
    env.publish();
    let was = before(&env);
    let stderr = assert_exit(&env.sync(), 1);
    assert!(
        stderr.contains(&format!("{path} is listed twice with different contents")),
        "{stderr}"
    );
    unchanged(&env, &was);
}

#[test]
fn a_stanza_without_sha256_fails_naming_the_package() {
    let mut env = synced("");
    env.repo.extra_stanza = Some(
        "Package: md5only\nVersion: 1\nArchitecture: all\nFilename: pool/main/m/md5only/md5only_1_all.deb\nSize: 3\nMD5sum: 00000000000000000000000000000000\n"
            .into(),
    );
    env.publish();
    let was = before(&env);
    let stderr = assert_exit(&env.sync(), 1);
    assert!(
        stderr.contains("package \"md5only\": no SHA256 field"),
        "{stderr}"
    );
    unchanged(&env, &was);
}
