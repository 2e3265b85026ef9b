//! Hostile and broken upstreams: each either recovers or fails the mirror with one
//! clear message, within the timeouts, leaving the served tree as it was.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mirrorsync_testkit::FixtureSpec;
use mirrorsync_testkit::server::Fault;
use sha2::{Digest, Sha256};

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
    // Still part of the served snapshot, as it was, not a file no manifest names.
    let listed = env.served_digest();
    assert_eq!(
        listed.get(&path),
        Some(&(good.len() as u64, hex::encode(Sha256::digest(&good))))
    );
    assert_exit(&env.run(&["verify"]), 0);
}

/// Bytes the cut-off download sends before its connection drops.
const CUT: usize = 100_000;

/// A run killed mid-fetch (SIGKILL, no chance to clean up) leaves the served tree as
/// it was, and the next run fetches only what the killed one did not finish: of ten
/// new packages, seven are verified in staging when the kill lands, one was cut off
/// after CUT bytes (kept in partial/, its failure dealt with), and two are held by a
/// server that never answers, so the run is still running, mid-fetch, when it is
/// killed. No timing: the kill waits until all of that is seen on the server, on disk
/// and in the run's log.
#[test]
fn a_killed_run_leaves_the_served_tree_and_the_next_run_resumes() {
    use std::os::unix::process::ExitStatusExt;

    // No retries: the cut-off download gives up at once, its bytes kept. A long
    // timeout: the held downloads hold the run until it is killed.
    let mut env = Env::with_config(
        FixtureSpec::default().with_packages(20),
        "timeout = \"120s\"\nretries = 0",
    );
    assert_ok(&env.sync());
    env.repo.size_range = (300_000, 600_000);
    let new: Vec<String> = (0..10)
        .map(|i| env.repo.add_package(&format!("aaa-kill-{i}")).filename())
        .collect();
    env.publish();
    let (held, rest) = new.split_at(2);
    let (cut, done) = rest.split_first().unwrap();
    for p in held {
        env.server.fault(&format!("/{p}"), Fault::Hang, None);
    }
    env.server
        .fault(&format!("/{cut}"), Fault::Truncate(CUT), None);
    let cut_sha256 = hex::encode(Sha256::digest(
        std::fs::read(env.repo.dir.join(cut)).unwrap(),
    ));
    let base = env.root.join(".mirrorsync/debian");
    let (staging, partial) = (base.join("snapshots/.staging"), base.join("partial"));
    let kept = partial.join(&cut_sha256);
    let was = before(&env);

    // Only this run's requests from here on.
    env.server.clear_log();
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .arg("-c")
        .arg(&env.config)
        // Debug, as JSON: the run says when it has dealt with a failed download.
        .args(["sync", "-vv", "--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended on its own ({status}) before it could be killed:\n{}",
                std::fs::read_to_string(stderr.path()).unwrap()
            );
        }
        let asked: Vec<String> = env.server.requests().into_iter().map(|r| r.path).collect();
        let held_asked = held.iter().all(|p| asked.contains(&format!("/{p}")));
        let all_staged = done.iter().all(|p| staging.join(p).is_file());
        let cut_kept = std::fs::metadata(&kept).is_ok_and(|m| m.len() == CUT as u64);
        let cut_failed = logged_failure(stderr.path(), cut);
        if held_asked && all_staged && cut_kept && cut_failed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never got there: held downloads asked for: {held_asked}, the other \
             seven staged: {all_staged}, the cut-off one kept: {cut_kept}, and its failure \
             logged: {cut_failed}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the run was not killed, it ended with {status}"
    );
    unchanged(&env, &was);
    for p in done {
        assert!(staging.join(p).is_file(), "{p} is no longer staged");
    }
    assert_eq!(std::fs::metadata(&kept).unwrap().len(), CUT as u64);

    // No stale lock; the next run fetches only what is missing, the cut-off file from
    // where it was cut.
    env.server.clear_faults();
    env.server.clear_log();
    assert_ok(&env.sync());
    let fetched: BTreeMap<String, Option<String>> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("aaa-kill-"))
        .map(|r| (r.path, r.range))
        .collect();
    let want: BTreeMap<String, Option<String>> = held
        .iter()
        .map(|p| (format!("/{p}"), None))
        .chain([(format!("/{cut}"), Some(format!("bytes={CUT}-")))])
        .collect();
    assert_eq!(
        fetched, want,
        "the next run should fetch the two held files whole and resume the cut-off one"
    );
    assert_eq!(
        env.server.count("/pool/"),
        3,
        "{:#?}",
        env.server.requests()
    );
    for (p, _) in env.repo.pool_files() {
        assert!(env.served().join(&p).exists(), "{p}");
    }
    assert_ok(&env.run(&["verify"]));
}

/// True once the run's JSON log (`-vv --log-format json`) says the download of `path`
/// failed: the run has dealt with it and gone on.
fn logged_failure(log: &std::path::Path, path: &str) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|l| l["fields"]["message"] == "fetch failed" && l["fields"]["path"] == path)
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

/// A run fails after fetching a new package into the shared pool, and upstream drops
/// that package before the next run: no snapshot ever lists the file. Ordinary runs
/// leave it (finding it would mean walking the whole pool); `sync --verify-all`, which
/// reads everything anyway, clears it.
#[test]
fn a_file_a_failed_run_left_in_the_shared_pool_goes_with_verify_all() {
    let mut env = synced("");
    let orphan = env.repo.add_package("aaa-orphan").filename();
    let broken = env.repo.add_package("aaa-broken").filename();
    env.publish();
    env.server
        .fault(&format!("/{broken}"), Fault::Status(404), None);
    assert_exit(&env.sync(), 1);
    let left = env.root.join(".mirrorsync/debian/content").join(&orphan);
    assert!(
        left.is_file(),
        "the failed run fetched it into the shared pool"
    );

    env.server.clear_faults();
    env.repo.remove_package("aaa-orphan");
    env.repo.remove_package("aaa-broken");
    env.repo.add_package("aaa-next");
    env.publish();
    assert_ok(&env.sync());
    assert!(left.is_file(), "an ordinary run does not walk the pool");
    assert!(!env.served_digest().contains_key(&orphan));

    assert_ok(&env.run(&["sync", "--verify-all"]));
    assert!(!left.exists(), "no snapshot lists it: cleared");
    assert_exit(&env.run(&["verify"]), 0);
    assert!(temp_files(&env.root).is_empty());
}
