//! An operator mirrors a signed apt repository: cold, no-op and delta runs, and every
//! way upstream can go wrong leaving the served tree exactly as it was.

use std::collections::BTreeMap;

use mirrorsync::apt::release::Release;
use mirrorsync::apt::signature::{Keyring, verify_clearsigned};
use mirrorsync_testkit::FixtureSpec;
use mirrorsync_testkit::server::Fault;
use sha2::{Digest, Sha256};

use crate::support::*;

fn small() -> FixtureSpec {
    FixtureSpec::default().with_packages(30)
}

#[test]
fn a_cold_sync_mirrors_every_index_and_pool_file_and_is_silent_under_cron() {
    let env = Env::new(small());
    let out = env.sync();
    assert_ok(&out);
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "cron must get no mail on success"
    );

    let served = env.served();
    let upstream = digest_tree(&env.repo.dir);
    let mirror = env.served_digest();
    for (path, size) in env.repo.pool_files() {
        assert_eq!(mirror[&path], upstream[&path], "{path}");
        assert_eq!(mirror[&path].0, size);
    }
    for f in ["InRelease", "Release", "Release.gpg"] {
        let p = format!("dists/bookworm/{f}");
        assert_eq!(mirror[&p], upstream[&p], "{p}");
    }
    // Every served index and its by-hash twin, byte for byte.
    for (path, digest) in upstream.iter().filter(|(p, _)| p.starts_with("dists/")) {
        assert_eq!(mirror.get(path), Some(digest), "{path}");
    }
    assert!(
        !served
            .join("dists/bookworm/main/binary-amd64/Packages")
            .exists()
    );
    let trace = std::fs::read_to_string(served.join("project/trace/mirror.test.invalid")).unwrap();
    assert!(trace.contains("\nArchitectures: amd64 arm64\n"), "{trace}");
    assert_eq!(
        std::fs::read(served.join("project/trace/master")).unwrap(),
        std::fs::read(env.repo.dir.join("project/trace/master")).unwrap()
    );
    // The served path is a symlink into a snapshot, and published files are read-only.
    assert!(
        std::fs::symlink_metadata(&served)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let meta = std::fs::metadata(served.join("dists/bookworm/InRelease")).unwrap();
    assert!(meta.permissions().readonly());
    assert!(temp_files(&env.root).is_empty());
}

#[test]
fn a_no_op_resync_asks_for_the_inrelease_only() {
    let env = Env::new(small());
    assert_ok(&env.sync());
    let before = env.snapshot_id();
    env.server.clear_log();
    assert_ok(&env.sync());
    let requests = env.server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/dists/bookworm/InRelease");
    assert!(
        requests[0].conditional,
        "the InRelease request must be conditional"
    );
    assert_eq!(
        env.snapshot_id(),
        before,
        "nothing changed, nothing published"
    );
}

#[test]
fn a_delta_fetches_only_the_changed_packages_and_keeps_removed_ones_for_grace() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    let names: Vec<String> = env.repo.packages.keys().cloned().collect();
    let removed = env.repo.remove_package(&names[0]).unwrap();
    let upgraded_old = env.repo.packages[&names[1]].filename();
    let upgraded = env.repo.upgrade_package(&names[1]).unwrap().filename();
    let added = env.repo.add_package("zz-new").filename();
    env.publish();
    env.server.clear_log();

    assert_ok(&env.sync());
    let mut pool: Vec<String> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/pool/"))
        .map(|r| r.path)
        .collect();
    pool.sort();
    let mut expected = vec![format!("/{upgraded}"), format!("/{added}")];
    expected.sort();
    assert_eq!(pool, expected, "only the new pool files cross the network");

    let served = env.served();
    assert!(served.join(&added).exists());
    assert!(served.join(&upgraded).exists());
    // Clients holding the previous Packages can still fetch what they list.
    assert!(served.join(removed.filename()).exists());
    assert!(served.join(&upgraded_old).exists());
    let mirror = env.served_digest();
    let upstream = digest_tree(&env.repo.dir);
    assert_eq!(
        mirror["dists/bookworm/InRelease"],
        upstream["dists/bookworm/InRelease"]
    );
}

#[test]
fn removed_files_go_once_their_grace_is_over() {
    let mut env = Env::with_config(small(), "");
    env.without_grace();
    assert_ok(&env.sync());
    let name = env.repo.packages.keys().next().cloned().unwrap();
    let gone = env.repo.remove_package(&name).unwrap().filename();
    env.publish();
    assert_ok(&env.sync());
    // The served snapshot no longer has it; the one kept for rollback still does,
    // so the shared pool keeps the file until that snapshot is pruned.
    assert!(!env.served_digest().contains_key(&gone));
    let previous = std::fs::read_dir(env.root.join(".mirrorsync/debian/snapshots"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && Some(p.file_name().unwrap().to_string_lossy().into_owned()) != env.snapshot_id()
        })
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .expect("a snapshot kept for rollback");
    assert!(previous.join(&gone).is_file(), "rollback still has it");
    env.repo.add_package("zz-next");
    env.publish();
    assert_ok(&env.sync());
    assert!(!env.served().join(&gone).exists(), "gone from the disk");
    assert!(
        !env.root
            .join(".mirrorsync/debian/content")
            .join(&gone)
            .exists()
    );
}

/// Runs a sync that must fail with exit 1 and leave the published tree untouched.
fn assert_fails_cleanly(env: &Env, expect_in_stderr: &str) -> String {
    let before = env.served_digest();
    let snapshot = env.snapshot_id();
    let out = env.sync();
    let stderr = assert_exit(&out, 1);
    assert!(
        stderr.contains(expect_in_stderr),
        "stderr lacks {expect_in_stderr:?}:\n{stderr}"
    );
    assert!(stderr.contains("mirror \"debian\""), "{stderr}");
    assert_eq!(env.served_digest(), before, "the served tree changed");
    assert_eq!(env.snapshot_id(), snapshot);
    assert!(
        stray_files(&env.root).is_empty(),
        "{:?}",
        stray_files(&env.root)
    );
    assert!(
        temp_files(&env.root).is_empty(),
        "{:?}",
        temp_files(&env.root)
    );
    stderr
}

/// A mirror already synced once, and an upstream with one new package.
fn synced_with_a_new_package() -> (Env, String) {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    let path = env.repo.add_package("aaa-new").filename();
    env.publish();
    (env, path)
}

#[test]
fn a_pool_file_with_the_wrong_hash_is_not_published() {
    let (env, path) = synced_with_a_new_package();
    env.server.fault(&format!("/{path}"), Fault::Corrupt, None);
    let stderr = assert_fails_cleanly(&env, "SHA256 mismatch");
    assert!(stderr.contains(&path), "{stderr}");
}

#[test]
fn a_truncated_body_is_retried_and_then_fails_cleanly() {
    let (env, path) = synced_with_a_new_package();
    env.server
        .fault(&format!("/{path}"), Fault::Truncate(100), None);
    assert_fails_cleanly(&env, &path);
    // Retried within the run (retries = 2): three attempts in all.
    assert_eq!(env.server.count(&format!("/{path}")), 3);
}

#[test]
fn a_cut_off_download_resumes_with_range() {
    let (env, path) = synced_with_a_new_package();
    env.server
        .fault(&format!("/{path}"), Fault::Truncate(300), Some(1));
    assert_ok(&env.sync());
    let reqs: Vec<_> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/{path}"))
        .collect();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=300-"));
    assert_eq!(
        std::fs::read(env.served().join(&path)).unwrap(),
        std::fs::read(env.repo.dir.join(&path)).unwrap()
    );
}

#[test]
fn a_body_longer_than_listed_is_cut_off() {
    let (env, path) = synced_with_a_new_package();
    env.server
        .fault(&format!("/{path}"), Fault::Extend(5000), None);
    assert_fails_cleanly(&env, "longer than");
}

#[test]
fn a_missing_pool_file_fails_the_mirror() {
    let (env, path) = synced_with_a_new_package();
    env.server
        .fault(&format!("/{path}"), Fault::Status(404), None);
    let stderr = assert_fails_cleanly(&env, "HTTP 404");
    // The way out, as the exact line to paste: then the rest publishes.
    let line = format!("tolerate = [\"{path}\"]");
    assert!(
        stderr.contains("the upstream does not have 1 file(s) its own index lists (404)")
            && stderr.contains(&line),
        "{stderr}"
    );
    env.write_config(&line);
    assert_ok(&env.sync());
    assert!(!env.served_digest().contains_key(&path));
    assert_exit(&env.run(&["verify"]), 0);
}

#[test]
fn a_captive_portal_page_is_not_taken_for_a_package() {
    let (env, path) = synced_with_a_new_package();
    env.server
        .fault(&format!("/{path}"), Fault::SoftNotFound, None);
    assert_fails_cleanly(&env, &path);
}

#[test]
fn server_errors_are_retried_until_they_pass() {
    let (env, path) = synced_with_a_new_package();
    let url_path = format!("/{path}");
    env.server.fault(&url_path, Fault::Status(503), Some(2));
    env.server.clear_log();
    let out = env.sync();
    // What the server answered for the faulted path, in order: the two 503s were
    // really served, and the third try got the file (retries = 2).
    let answers: Vec<Option<u16>> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == url_path)
        .map(|r| r.status)
        .collect();
    assert_eq!(
        answers,
        [Some(503), Some(503), Some(200)],
        "answers for {url_path}; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ok(&out);
    assert_eq!(
        std::fs::read(env.served().join(&path)).unwrap(),
        std::fs::read(env.repo.dir.join(&path)).unwrap()
    );
}

#[test]
fn a_tampered_inrelease_is_refused() {
    let (env, _) = synced_with_a_new_package();
    let p = env.repo.dir.join("dists/bookworm/InRelease");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replacen("Suite: bookworm", "Suite: bookwurm", 1)).unwrap();
    assert_fails_cleanly(&env, "no valid signature");
}

#[test]
fn an_inrelease_signed_by_another_key_is_refused() {
    let mut env = Env::new(small());
    // The mirror trusts a key from another archive.
    let other = tempfile::tempdir().unwrap();
    let stranger = FixtureSpec::default()
        .with_packages(1)
        .build(other.path())
        .unwrap();
    std::fs::copy(&stranger.keyring, &env.repo.keyring).unwrap();
    env.publish();
    let out = env.sync();
    let stderr = assert_exit(&out, 1);
    assert!(
        stderr.contains("no valid signature by a key in the keyring"),
        "{stderr}"
    );
    assert!(!env.served().exists());
}

/// Every file, directory and symlink under `dir`, except the subtree `skip`, with its
/// bytes: what a run must leave exactly as it was outside its own tree.
fn tree_outside(dir: &std::path::Path, skip: &std::path::Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let walk = walkdir::WalkDir::new(dir).min_depth(1).into_iter();
    for e in walk.filter_entry(|e| e.path() != skip) {
        let e = e.expect("walk");
        let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
        let what = if e.path_is_symlink() {
            format!(
                "symlink -> {}",
                std::fs::read_link(e.path()).unwrap().display()
            )
        } else if e.file_type().is_dir() {
            "dir".to_string()
        } else {
            let bytes = std::fs::read(e.path()).unwrap();
            format!(
                "{} bytes, sha256 {}",
                bytes.len(),
                hex::encode(Sha256::digest(&bytes))
            )
        };
        out.insert(rel, what);
    }
    out
}

/// `base` joined with `rel` and its `..` resolved lexically, as a write would land.
fn resolve(base: &std::path::Path, rel: &str) -> std::path::PathBuf {
    let mut out = base.to_path_buf();
    for part in rel.split('/') {
        match part {
            ".." => {
                out.pop();
            }
            "." | "" => {}
            p => out.push(p),
        }
    }
    out
}

#[test]
fn a_filename_leaving_the_tree_fails_and_writes_nothing_outside() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    // The temporary directory holding the mirror root (`work/mirror`), the upstream
    // (`work/upstream`) and the config: sentinels beside the root, where the `..`
    // would climb to.
    let work = env.root.parent().unwrap().to_path_buf();
    for (path, bytes) in [
        (
            "tmp/sentinel",
            &b"beside the root, where ../../../../tmp leads from staging\n"[..],
        ),
        ("sibling/keep.txt", b"a sibling of the mirror root\n"),
        ("sibling/deeper/keep.bin", &[0u8, 1, 2, 255]),
        ("parent-file", b"in the root's parent\n"),
    ] {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    // A hostile upstream that also serves the file its `..` URL resolves to
    // (/tmp/evil.deb), with the listed size and hash: a mirror joining the path
    // unchecked would fetch it, verify it and write it wherever the join lands.
    let filename = "../../../../tmp/evil.deb";
    let payload = b"#!/bin/sh\necho pwned\n";
    std::fs::create_dir_all(env.repo.dir.join("tmp")).unwrap();
    std::fs::write(env.repo.dir.join("tmp/evil.deb"), payload).unwrap();
    env.repo.extra_stanza = Some(format!(
        "Package: evil\nVersion: 1\nArchitecture: all\nFilename: {filename}\nSize: {}\nSHA256: {}\n",
        payload.len(),
        hex::encode(Sha256::digest(payload)),
    ));
    env.publish();

    // Where the hostile path lands when joined under each of the mirror's trees.
    let dirs = mirrorsync::snapshot::MirrorDirs::new(&env.root, "debian");
    let snapshot = dirs.snapshots.join(env.snapshot_id().unwrap());
    let targets: Vec<std::path::PathBuf> = [
        &env.root,
        &dirs.served,
        &dirs.base,
        &dirs.staging,
        &dirs.partial,
        &snapshot,
    ]
    .iter()
    .map(|base| resolve(base, filename))
    .collect();
    let state = |p: &std::path::Path| std::fs::read(p).ok();
    let targets_before: Vec<_> = targets.iter().map(|t| state(t)).collect();
    let outside_before = tree_outside(&work, &env.root);
    assert!(outside_before.contains_key("tmp/sentinel"));
    let served_before = env.served_digest();
    let snapshot_before = env.snapshot_id();

    let out = env.sync();

    // Nothing outside the root's own tree: not a byte changed, no file or directory
    // appeared (the upstream tree is in there too, and the run only reads it).
    let outside_after = tree_outside(&work, &env.root);
    let changes: Vec<String> = outside_before
        .keys()
        .chain(outside_after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter_map(|p| match (outside_before.get(p), outside_after.get(p)) {
            (a, b) if a == b => None,
            (None, Some(b)) => Some(format!("new: {p} ({b})")),
            (Some(_), None) => Some(format!("gone: {p}")),
            (Some(a), Some(b)) => Some(format!("changed: {p} ({a} -> {b})")),
            (None, None) => None,
        })
        .collect();
    assert!(
        changes.is_empty(),
        "the run wrote outside the mirror root: {changes:#?}"
    );
    for (target, before) in targets.iter().zip(&targets_before) {
        assert_eq!(&state(target), before, "{} changed", target.display());
    }
    assert!(
        !env.server
            .requests()
            .iter()
            .any(|r| r.path == "/tmp/evil.deb"),
        "the hostile file was fetched"
    );
    // And inside it: the run failed, named the package and the index, and left the
    // served tree as it was.
    let stderr = assert_exit(&out, 1);
    assert!(
        stderr.contains(&format!("unsafe path \"{filename}\"")),
        "{stderr}"
    );
    assert!(stderr.contains("package \"evil\""), "{stderr}");
    assert!(
        stderr.contains("Packages"),
        "the message names the index: {stderr}"
    );
    assert!(stderr.contains("mirror \"debian\""), "{stderr}");
    assert_eq!(
        env.served_digest(),
        served_before,
        "the served tree changed"
    );
    assert_eq!(env.snapshot_id(), snapshot_before);
    assert!(
        stray_files(&env.root).is_empty(),
        "{:?}",
        stray_files(&env.root)
    );
    assert!(
        temp_files(&env.root).is_empty(),
        "{:?}",
        temp_files(&env.root)
    );
}

#[test]
fn a_rolled_back_release_is_refused() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    let old = env
        .repo
        .date()
        .checked_sub(jiff::SignedDuration::from_hours(2))
        .unwrap();
    env.repo.set_date(old);
    env.repo.add_package("rollback-bait");
    env.publish();
    assert_fails_cleanly(&env, "refusing a rollback");
}

#[test]
fn an_expired_release_is_refused() {
    let mut env = Env::new(small());
    let long_ago = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24 * 30))
        .unwrap();
    env.repo.set_date(long_ago);
    env.publish();
    let stderr = assert_exit(&env.sync(), 1);
    assert!(stderr.contains("Valid-Until"), "{stderr}");
    assert!(!env.served().exists());
}

#[test]
fn a_second_run_while_the_lock_is_held_exits_3_at_once() {
    let env = Env::new(small());
    assert_ok(&env.sync());
    let held = mirrorsync::lock::RunLock::acquire(&env.root).unwrap();
    let before = env.served_digest();
    // Nothing for cron to mail (journal.rs shows the notice the journal gets).
    let stderr = assert_exit(&env.sync(), 3);
    assert!(stderr.is_empty(), "{stderr}");
    drop(held);
    assert_eq!(env.served_digest(), before);
    assert_ok(&env.sync());
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    let name = env.repo.packages.keys().next().cloned().unwrap();
    env.repo.remove_package(&name);
    env.repo.add_package("dry-new");
    env.publish();
    let before = digest_tree(&env.root);
    let out = env.run(&["sync", "--dry-run"]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("debian (dry run):"), "{stdout}");
    assert!(stdout.contains("kept for grace until"), "{stdout}");
    assert_eq!(digest_tree(&env.root), before, "a dry run wrote something");
}

#[test]
fn a_failed_run_keeps_its_verified_downloads_for_the_next() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    let good = env.repo.add_package("aaa-good").filename();
    let bad = env.repo.add_package("aaa-bad").filename();
    env.publish();
    env.server
        .fault(&format!("/{bad}"), Fault::Status(404), None);
    assert_exit(&env.sync(), 1);
    env.server.clear_faults();
    env.server.clear_log();
    assert_ok(&env.sync());
    assert_eq!(env.server.count(&format!("/{good}")), 0, "fetched twice");
    assert_eq!(env.server.count(&format!("/{bad}")), 1);
}

#[test]
fn one_failing_mirror_does_not_stop_the_others() {
    let env = Env::new(small());
    let text = std::fs::read_to_string(&env.config).unwrap();
    let broken = format!(
        "{text}\n[[mirror]]\nname = \"broken\"\nkind = \"apt\"\nupstream = \"{}nowhere/\"\nsuites = [\"bookworm\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]\nkeyring = \"{}\"\n",
        env.server.url(),
        env.repo.keyring.display()
    );
    // The broken one first, so the good one runs after a failure.
    let (global, mirrors) = broken.split_once("[[mirror]]").unwrap();
    let mut parts: Vec<&str> = mirrors.split("[[mirror]]").collect();
    parts.reverse();
    std::fs::write(
        &env.config,
        format!("{global}[[mirror]]{}", parts.join("[[mirror]]")),
    )
    .unwrap();
    let stderr = assert_exit(&env.sync(), 1);
    assert!(stderr.contains("mirror \"broken\""), "{stderr}");
    assert!(env.served().join("dists/bookworm/InRelease").exists());
}

#[test]
fn verify_all_refetches_a_damaged_published_file() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    let (path, _) = env.repo.pool_files()[0].clone();
    // Damage the published copy behind mirrorsync's back (a bad disk).
    let file = env.served().join(&path);
    let mut perms = std::fs::metadata(&file).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&file, perms).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    env.repo.add_package("force-a-change");
    env.publish();
    env.server.clear_log();
    assert_ok(&env.run(&["sync", "--verify-all"]));
    assert_eq!(env.server.count(&format!("/{path}")), 1);
    assert_eq!(
        std::fs::read(env.served().join(&path)).unwrap(),
        std::fs::read(env.repo.dir.join(&path)).unwrap()
    );
}

#[test]
fn an_upstream_that_publishes_mid_run_restarts_the_suite_instead_of_mixing() {
    let mut env = Env::new(small());
    // Without by-hash, indices are fetched by name: a publish mid-run shows as a
    // hash mismatch against the InRelease the run started from.
    env.repo.by_hash = false;
    env.publish();
    assert_ok(&env.sync());
    env.repo.add_package("bbb-first");
    env.publish();
    let stale_inrelease = std::fs::read(env.repo.dir.join("dists/bookworm/InRelease")).unwrap();
    env.repo.add_package("bbb-second");
    env.publish();
    // The run's first look at InRelease sees the previous publish.
    env.server.fault(
        "/dists/bookworm/InRelease",
        Fault::Replace(stale_inrelease),
        Some(1),
    );
    assert_ok(&env.sync());
    assert_eq!(
        std::fs::read(env.served().join("dists/bookworm/InRelease")).unwrap(),
        std::fs::read(env.repo.dir.join("dists/bookworm/InRelease")).unwrap(),
        "the mirror must end on the newest Release, not a mix"
    );
    assert!(
        env.served()
            .join(env.repo.packages["bbb-second"].filename())
            .exists()
    );
}

/// Starts `mirrorsync sync` and returns at once, so a test can act on what the run
/// asks for while it runs.
fn spawn_sync(env: &Env) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .arg("-c")
        .arg(&env.config)
        .arg("sync")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting mirrorsync")
}

#[test]
fn an_upstream_mid_update_is_waited_for() {
    // Upstream's update is half done, as ftpsync leaves an archive between its stages:
    // the new pool and by-hash files are in place, the Release files still say the
    // previous state (which the mirror has not got yet, so it has work to do), and the
    // Archive-Update-in-Progress marker says more is coming.
    let (mut env, first) = synced_with_a_new_package();
    let release_files = ["InRelease", "Release", "Release.gpg"];
    let read_release_files = |env: &Env| {
        release_files.map(|f| std::fs::read(env.repo.dir.join("dists/bookworm").join(f)).unwrap())
    };
    let mid_update = read_release_files(&env);
    let last = env.repo.add_package("aaa-last").filename();
    env.publish();
    let after_update = read_release_files(&env);
    assert_ne!(mid_update, after_update);
    for (f, bytes) in release_files.iter().zip(&mid_update) {
        env.server.fault(
            &format!("/dists/bookworm/{f}"),
            Fault::Replace(bytes.clone()),
            None,
        );
    }
    let marker_name = "Archive-Update-in-Progress-127.0.0.1";
    let marker_url = format!("/{marker_name}");
    let marker = env.repo.dir.join(marker_name);
    std::fs::write(&marker, "upstream.example.org\n").unwrap();
    env.server.clear_log();
    let mut run = spawn_sync(&env);

    // The update finishes only once the run has been told three times that the marker
    // is there: an event in the server's log, not a time window. The new Release files
    // go out at once (one switch in the server), then the marker goes.
    let answered_present = |env: &Env| {
        env.server
            .requests()
            .iter()
            .filter(|r| r.path == marker_url && r.status == Some(200))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while answered_present(&env) < 3 && run.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never polled the marker: {:?}",
            env.server.requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    env.server.clear_faults();
    std::fs::remove_file(&marker).unwrap();
    let out = run.wait_with_output().unwrap();

    let log = env.server.requests();
    let shown: Vec<String> = log
        .iter()
        .map(|r| format!("{} {} -> {:?}", r.method, r.path, r.status))
        .collect();
    // The run saw the marker and polled it again and again (the root too, where a
    // listing would name it), until it was gone.
    let answers: Vec<Option<u16>> = log
        .iter()
        .filter(|r| r.path == marker_url)
        .map(|r| r.status)
        .collect();
    let present = answers.iter().take_while(|s| **s == Some(200)).count();
    assert!(present >= 3, "marker answers {answers:?}:\n{shown:#?}");
    assert!(
        answers.len() > present && answers[present..].iter().all(|s| *s == Some(404)),
        "after the marker went, it must be seen gone: {answers:?}"
    );
    let root_polls = log.iter().filter(|r| r.path == "/").count();
    assert!(root_polls > present, "root polled {root_polls} times");
    // While the marker was there, the run fetched nothing but the signed Release
    // files, the root and the marker: no index, no pool file of the half-done archive.
    let gone_at = log
        .iter()
        .position(|r| r.path == marker_url && r.status == Some(404))
        .unwrap();
    let early: Vec<&String> = log[..gone_at]
        .iter()
        .zip(&shown)
        .filter(|(r, _)| {
            !matches!(
                r.path.as_str(),
                "/" | "/dists/bookworm/InRelease"
                    | "/dists/bookworm/Release"
                    | "/dists/bookworm/Release.gpg"
            ) && r.path != marker_url
        })
        .map(|(_, s)| s)
        .collect();
    assert!(
        early.is_empty(),
        "fetched while upstream was mid-update: {early:#?}"
    );
    // And it synced what upstream published once the update was over.
    assert_ok(&out);
    assert_eq!(
        std::fs::read(env.served().join("dists/bookworm/InRelease")).unwrap(),
        after_update[0],
        "the published Release must be the one after the update"
    );
    assert!(env.served().join(&first).exists());
    assert!(env.served().join(&last).exists());
}

#[test]
fn an_upstream_that_stays_mid_update_fails_after_the_budget() {
    let (env, _) = synced_with_a_new_package();
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            "keep_snapshots = 2",
            "keep_snapshots = 2\nupstream_busy_wait = \"300ms\"",
        ),
    )
    .unwrap();
    std::fs::write(
        env.repo.dir.join("Archive-Update-in-Progress-127.0.0.1"),
        "x",
    )
    .unwrap();
    assert_fails_cleanly(&env, "Archive-Update-in-Progress-127.0.0.1");
}

#[test]
fn with_sources_the_source_packages_are_mirrored_too() {
    let env = Env::with_config(small().with_sources(), "sources = true");
    assert_ok(&env.sync());
    let sources = env.repo.source_pool_files();
    assert!(!sources.is_empty());
    let mirror = env.served_digest();
    let upstream = digest_tree(&env.repo.dir);
    for (path, _) in &sources {
        assert_eq!(mirror.get(path), upstream.get(path), "{path}");
    }
    assert!(mirror.contains_key("dists/bookworm/main/source/Sources.xz"));
    let trace =
        std::fs::read_to_string(env.served().join("project/trace/mirror.test.invalid")).unwrap();
    assert!(
        trace.contains("\nArchitectures: amd64 arm64 source\n"),
        "{trace}"
    );
}

#[test]
fn without_sources_no_source_package_is_fetched() {
    let env = Env::new(small().with_sources());
    assert_ok(&env.sync());
    assert!(!env.served().join("dists/bookworm/main/source").exists());
    for (path, _) in env.repo.source_pool_files() {
        assert!(!env.served().join(&path).exists(), "{path}");
    }
}

#[test]
fn without_inrelease_the_detached_release_gpg_is_used() {
    let env = Env::new(small());
    env.server
        .fault("/dists/bookworm/InRelease", Fault::Status(404), None);
    assert_ok(&env.sync());
    let mirror = env.served_digest();
    let upstream = digest_tree(&env.repo.dir);
    for f in ["Release", "Release.gpg"] {
        let p = format!("dists/bookworm/{f}");
        assert_eq!(mirror[&p], upstream[&p]);
    }
    assert!(!mirror.contains_key("dists/bookworm/InRelease"));
}

#[test]
fn a_release_gpg_by_another_key_is_refused() {
    let env = Env::new(small());
    env.server
        .fault("/dists/bookworm/InRelease", Fault::Status(404), None);
    let other = tempfile::tempdir().unwrap();
    let stranger = FixtureSpec::default()
        .with_packages(1)
        .build(other.path())
        .unwrap();
    let forged = stranger
        .signing_key()
        .sign_detached_armored(&std::fs::read(env.repo.dir.join("dists/bookworm/Release")).unwrap())
        .unwrap();
    env.server.fault(
        "/dists/bookworm/Release.gpg",
        Fault::Replace(forged.into_bytes()),
        None,
    );
    let stderr = assert_exit(&env.sync(), 1);
    assert!(stderr.contains("no valid signature"), "{stderr}");
    assert!(!env.served().exists());
}

#[test]
fn an_index_served_with_the_wrong_hash_fails_the_mirror() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    env.repo.add_package("ccc-new");
    env.publish();
    // Every Packages index upstream now lists comes with the wrong bytes; the one
    // the new package changed is fetched and must be caught.
    let inrelease = std::fs::read_to_string(env.repo.dir.join("dists/bookworm/InRelease")).unwrap();
    for line in inrelease
        .lines()
        .skip_while(|l| !l.starts_with("SHA256:"))
        .skip(1)
    {
        let mut parts = line.split_whitespace();
        let (Some(hash), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            break;
        };
        if path.contains("/Packages.") {
            let dir = path.rsplit_once('/').unwrap().0;
            env.server.fault(
                &format!("/dists/bookworm/{dir}/by-hash/SHA256/{hash}"),
                Fault::Corrupt,
                None,
            );
            env.server
                .fault(&format!("/dists/bookworm/{path}"), Fault::Corrupt, None);
        }
    }
    assert_fails_cleanly(&env, "SHA256 mismatch");
}

#[test]
fn the_trace_file_reports_the_run_as_checkers_read_it() {
    let env = Env::new(small());
    assert_ok(&env.sync());
    let trace =
        std::fs::read_to_string(env.served().join("project/trace/mirror.test.invalid")).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    // Line 1 as `date -u` prints it, e.g. "Wed Nov 25 10:55:16 UTC 2026".
    let first: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(first.len(), 6, "{}", lines[0]);
    assert_eq!(first[4], "UTC");
    assert!(
        lines[1..].iter().all(|l| l.split_once(": ").is_some()),
        "{trace}"
    );
    let field = |k: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .unwrap_or_else(|| panic!("no {k} in {trace}"))
            .to_string()
    };
    assert_eq!(field("Archive serial"), env.repo.archive_serial());
    assert_eq!(
        field("Creator"),
        format!("mirrorsync {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(field("Running on host"), "mirror.test.invalid");
    assert_eq!(field("Architectures-Configuration"), "INCLUDE amd64 arm64");
    assert_eq!(field("Upstream-mirror"), "127.0.0.1");
    assert_eq!(field("Trigger"), "cron");
    assert_eq!(field("Revision"), "inrelease i18n");
    assert!(field("Total bytes received").parse::<u64>().unwrap() > 0);
    assert!(field("Date").ends_with(" +0000"));
    assert!(trace.len() <= 1024);
    let traces = std::fs::read_to_string(env.served().join("project/trace/_traces")).unwrap();
    assert_eq!(traces, "master\nmirror.test.invalid\n");
    let hierarchy = std::fs::read_to_string(env.served().join("project/trace/_hierarchy")).unwrap();
    assert!(
        hierarchy.starts_with("mirror.test.invalid mirror.test.invalid "),
        "{hierarchy}"
    );
    assert!(hierarchy.ends_with(" 127.0.0.1\n"), "{hierarchy}");
}

#[test]
fn an_inrelease_upstream_dropped_is_not_kept_beside_the_new_release() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    env.repo.add_package("ddd-new");
    env.publish();
    env.server
        .fault("/dists/bookworm/InRelease", Fault::Status(404), None);
    assert_ok(&env.sync());
    assert!(!env.served().join("dists/bookworm/InRelease").exists());
    assert_eq!(
        std::fs::read(env.served().join("dists/bookworm/Release")).unwrap(),
        std::fs::read(env.repo.dir.join("dists/bookworm/Release")).unwrap()
    );
}

#[test]
fn a_release_only_upstream_costs_one_request_when_unchanged() {
    let env = Env::new(small());
    env.server
        .fault("/dists/bookworm/InRelease", Fault::Status(404), None);
    assert_ok(&env.sync());
    let snapshot = env.snapshot_id();
    env.server.clear_log();
    assert_ok(&env.sync());
    assert_eq!(
        env.snapshot_id(),
        snapshot,
        "nothing changed, nothing published"
    );
    let requests = env.server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/dists/bookworm/InRelease", "/dists/bookworm/Release"]
    );
    // The Release is asked for with its validators and not sent again.
    assert!(requests[1].conditional, "{:?}", requests[1]);
    assert_eq!(requests[1].status, Some(304), "{:?}", requests[1]);
    // And when upstream publishes, the next run sees it.
    let mut env = env;
    env.repo.add_package("zz-next");
    env.publish();
    assert_ok(&env.sync());
    assert_ne!(env.snapshot_id(), snapshot, "the new Release is taken");
}

#[test]
fn unsigned_text_around_a_genuine_inrelease_is_refused() {
    let (env, _) = synced_with_a_new_package();
    let genuine = std::fs::read(env.repo.dir.join("dists/bookworm/InRelease")).unwrap();
    let mut forged = b"Origin: Evil\nSuite: bookworm\n\n".to_vec();
    forged.extend_from_slice(&genuine);
    env.server
        .fault("/dists/bookworm/InRelease", Fault::Replace(forged), None);
    // apt's splitter refuses it at the first unsigned line, and says which.
    assert_fails_cleanly(
        &env,
        "line 1: text before the \"-----BEGIN PGP SIGNED MESSAGE-----\" line",
    );
}

#[test]
fn upstream_credentials_never_reach_messages_or_state() {
    let env = Env::new(small());
    let url = env
        .server
        .url()
        .replace("http://", "http://mirror:s3cretpw@");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            &format!("upstream = \"{}\"", env.server.url()),
            &format!("upstream = \"{url}nowhere/\""),
        ),
    )
    .unwrap();
    let stderr = assert_exit(&env.sync(), 1);
    assert!(!stderr.contains("s3cretpw"), "{stderr}");
    let state = std::fs::read_to_string(env.root.join(".mirrorsync/debian/state.json")).unwrap();
    assert!(state.contains("failed"), "{state}");
    assert!(!state.contains("s3cretpw"), "{state}");
}

#[test]
fn an_upstream_frozen_past_its_valid_until_is_a_failure_not_a_no_op() {
    // A Release whose Valid-Until passed a day ago, mirrored while the check is off:
    // the mirror then holds what a frozen upstream leaves it with once time runs out,
    // with no clock to wait on.
    let mut env = Env::with_config(small(), "check_valid_until = false");
    let now = jiff::Timestamp::now();
    env.repo.valid_for = jiff::SignedDuration::from_hours(24);
    env.repo.set_date(
        now.checked_sub(jiff::SignedDuration::from_hours(48))
            .unwrap(),
    );
    env.publish();
    let text = std::fs::read_to_string(env.repo.dir.join("dists/bookworm/InRelease")).unwrap();
    let until = text
        .lines()
        .find_map(|l| l.strip_prefix("Valid-Until: "))
        .unwrap();
    let until = jiff::fmt::rfc2822::parse(until).unwrap().timestamp();
    assert!(until < now, "Valid-Until {until} is not in the past");
    assert_ok(&env.sync());
    let served = env.served_digest();
    let snapshot = env.snapshot_id();

    // The check back on (it is not part of what decides a no-op), upstream unchanged.
    env.write_config("");
    env.server.clear_log();
    let out = env.sync();
    let requests = env.server.requests();
    let stderr = assert_exit(&out, 1);
    assert!(
        stderr.contains("the published Release expired at")
            && stderr.contains("upstream has not published a new one"),
        "{stderr}"
    );
    // It was the unchanged upstream that failed: one conditional InRelease request,
    // nothing published.
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/dists/bookworm/InRelease");
    assert!(requests[0].conditional);
    assert_eq!(requests[0].status, Some(304));
    assert_eq!(env.served_digest(), served);
    assert_eq!(env.snapshot_id(), snapshot);
}

#[test]
fn an_upstream_that_suddenly_lists_almost_nothing_is_not_published() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    let names: Vec<String> = env.repo.packages.keys().cloned().collect();
    for n in &names[1..] {
        env.repo.remove_package(n);
    }
    env.publish();
    // grace keeps the files a while, but the gutted indices must not go out.
    assert_fails_cleanly(&env, "max_delete_ratio");
    assert_ok(&env.run(&["sync", "--allow-mass-delete"]));
}

/// Every by-hash path a verified InRelease names (SHA256 and SHA512), under
/// `dists/<suite>/`, with the size and SHA256 its content must have.
fn by_hash_paths(inrelease: &[u8], keyring: &Keyring) -> BTreeMap<String, (u64, [u8; 32])> {
    let verified = verify_clearsigned(keyring, inrelease).unwrap();
    let release = Release::parse(&verified.text).unwrap();
    assert!(release.acquire_by_hash);
    let mut out = BTreeMap::new();
    for f in release.files.values() {
        let sha256 = f.sha256.unwrap();
        let dir = f.path.parent().unwrap_or("");
        let at = |p: String| {
            format!(
                "dists/bookworm/{}{p}",
                if dir.is_empty() {
                    String::new()
                } else {
                    format!("{dir}/")
                }
            )
        };
        out.insert(
            at(format!("by-hash/SHA256/{}", hex::encode(sha256))),
            (f.size, sha256),
        );
        if let Some(sha512) = &f.sha512 {
            out.insert(at(format!("by-hash/SHA512/{sha512}")), (f.size, sha256));
        }
    }
    out
}

#[test]
fn the_previous_inreleases_by_hash_indices_stay_served_after_a_publish() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    let keyring = Keyring::from_file(&env.repo.keyring).unwrap();
    let old_inrelease = std::fs::read(env.served().join("dists/bookworm/InRelease")).unwrap();
    // What the old InRelease names that the mirror serves (upstream does not serve
    // the uncompressed Packages it lists, so no by-hash copy of it exists anywhere).
    let old: BTreeMap<String, (u64, [u8; 32])> = by_hash_paths(&old_inrelease, &keyring)
        .into_iter()
        .filter(|(p, _)| env.repo.dir.join(p).exists())
        .collect();
    assert!(old.len() > 10, "{old:?}");
    for p in old.keys() {
        assert!(env.served().join(p).exists(), "{p} not mirrored at first");
    }

    // Upstream changes its indices and the mirror publishes them.
    let names: Vec<String> = env.repo.packages.keys().cloned().collect();
    env.repo.remove_package(&names[0]);
    env.repo.upgrade_package(&names[1]);
    env.repo.add_package("eee-new");
    env.publish();
    let before = env.snapshot_id();
    assert_ok(&env.sync());
    assert_ne!(env.snapshot_id(), before, "nothing was published");
    let new_inrelease = std::fs::read(env.served().join("dists/bookworm/InRelease")).unwrap();
    assert_ne!(new_inrelease, old_inrelease);
    let new = by_hash_paths(&new_inrelease, &keyring);
    let only_old: Vec<&String> = old.keys().filter(|p| !new.contains_key(*p)).collect();
    assert!(
        only_old
            .iter()
            .any(|p| p.contains("/binary-amd64/by-hash/")),
        "the publish must have changed the indices: {only_old:?}"
    );

    // A client still holding the old InRelease gets every index it names, by hash,
    // with the content it names.
    for (p, (size, sha256)) in &old {
        let bytes = std::fs::read(env.served().join(p))
            .unwrap_or_else(|e| panic!("{p}, named by the previous InRelease: {e}"));
        assert_eq!(bytes.len() as u64, *size, "{p}");
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&bytes)), *sha256, "{p}");
    }
}

/// A third-party upstream rebuilds a package without bumping its version: the same
/// pool path now holds other bytes. The mirror takes the new file (verified against
/// the new index), says so naming the file, and replaces it in the shared pool with
/// one rename: no reader ever sees a torn file.
#[test]
fn a_pool_file_rewritten_upstream_is_fetched_again_and_said_out_loud() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    let old_snapshot = env.snapshot_id().unwrap();
    let name = env.repo.packages.keys().next().cloned().unwrap();
    let path = env.repo.packages[&name].filename();
    let old = std::fs::read(env.served().join(&path)).unwrap();
    env.repo.packages.get_mut(&name).unwrap().seed += 1;
    std::fs::remove_file(env.repo.dir.join(&path)).unwrap();
    // The same run fails on another file: the rewritten one must not reach the
    // served tree before the run publishes.
    let broken = env.repo.add_package("aaa-broken").filename();
    env.publish();
    env.server
        .fault(&format!("/{broken}"), Fault::Status(404), None);
    assert_exit(&env.sync(), 1);
    assert_eq!(
        std::fs::read(env.served().join(&path)).unwrap(),
        old,
        "the served snapshot keeps its bytes while the run fails"
    );
    assert_exit(&env.run(&["verify"]), 0);
    env.server.clear_faults();

    let out = env.run(&["sync", "--json"]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = report[0]["warnings"].to_string();
    assert!(
        warnings.contains("rewrote files in place") && warnings.contains(&path),
        "the rewrite is named: {report}"
    );
    let new = std::fs::read(env.served().join(&path)).unwrap();
    assert_eq!(new, std::fs::read(env.repo.dir.join(&path)).unwrap());
    assert_ne!(new, old);
    let previous = env
        .root
        .join(".mirrorsync/debian/snapshots")
        .join(&old_snapshot)
        .join(&path);
    // The pool is stored once for all snapshots, one file per name: the snapshot
    // kept for rollback reads the new bytes too, whole, never a mix of the two.
    assert_eq!(
        std::fs::read(previous).unwrap(),
        new,
        "the old snapshot reads the new file, whole"
    );
    assert!(temp_files(&env.root).is_empty());
    assert_exit(&env.run(&["verify"]), 0);

    // An unchanged file is not a rewrite: the next delta says nothing of it.
    env.repo.add_package("zz-new");
    env.publish();
    let out = env.run(&["sync", "--json"]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !report[0]["warnings"].to_string().contains("rewrote"),
        "{report}"
    );
}

/// An old upstream still signs with SHA-224, which apt's policy refuses for data
/// signatures since 2026-02-01. The mirror refuses it too, naming the weakness and the setting that
/// accepts it; once the operator names it in `allow_weak_signatures`, the mirror
/// publishes. `probe --keyring` judges the same way, with the same escape hatch.
#[test]
fn a_weak_signing_key_is_refused_until_the_operator_accepts_that_weakness() {
    let env = Env::new(small().with_sha224_signatures());
    let stderr = assert_exit(&env.sync(), 1);
    assert!(
        stderr.contains("SHA-224") && stderr.contains("allow_weak_signatures = [\"sha224\"]"),
        "{stderr}"
    );
    assert!(!env.served().exists(), "nothing is published");
    let keyring = env.repo.keyring.display().to_string();
    let url = env.server.url();
    let probe = |extra: &[&str]| {
        let mut args = vec!["probe", url.as_str(), "--suite", "bookworm"];
        args.extend_from_slice(&["--keyring", keyring.as_str()]);
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let refused = probe(&[]);
    assert_eq!(
        refused.status.code(),
        Some(5),
        "the probe calls it unhealthy"
    );
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("SHA-224"),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );

    env.write_config("allow_weak_signatures = [\"sha224\"]");
    assert_ok(&env.sync());
    assert!(env.served().join("dists/bookworm/InRelease").exists());
    let accepted = probe(&["--allow-weak-signature", "sha224"]);
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&accepted.stdout)
    );
}

/// An operator mistypes a component, then an architecture. apt would only warn and
/// the mirror would publish a copy with no packages at all; instead the run fails,
/// naming what is missing and what the Release does offer, and publishes nothing.
#[test]
fn a_component_or_architecture_the_release_does_not_offer_is_refused_naming_what_it_does() {
    let env = Env::new(small());
    env.edit_config(
        r#"components = ["main", "contrib"]"#,
        r#"components = ["mian", "contrib"]"#,
    );
    let stderr = assert_exit(&env.sync(), 1);
    assert!(
        stderr.contains(
            "suite bookworm: its Release does not offer component mian (it offers: main contrib)"
        ),
        "{stderr}"
    );
    assert!(!env.served().exists(), "nothing is published");

    env.edit_config(
        r#"components = ["mian", "contrib"]"#,
        r#"components = ["main", "contrib"]"#,
    );
    env.edit_config(
        r#"architectures = ["amd64", "arm64"]"#,
        r#"architectures = ["amd46", "arm64"]"#,
    );
    let stderr = assert_exit(&env.sync(), 1);
    assert!(
        stderr
            .contains("its Release does not offer architecture amd46 (it offers: all amd64 arm64)"),
        "{stderr}"
    );
    assert!(!env.served().exists(), "nothing is published");
}

/// Some repositories offer their Packages in one compression only, and not always
/// gz or xz: zstd (Ubuntu since 21.10 for its debs, some vendors for indices), bzip2
/// and lzma (old reprepro setups). Each mirrors whole: every pool file its index
/// lists, the index itself, and a tree that verifies.
#[test]
fn a_repository_offering_its_indices_only_as_zst_bz2_or_lzma_is_mirrored() {
    for ext in ["zst", "bz2", "lzma"] {
        let env = Env::new(small().with_index_compressions(&[ext]));
        assert_ok(&env.sync());
        let upstream = digest_tree(&env.repo.dir);
        let mirror = env.served_digest();
        for (path, _) in env.repo.pool_files() {
            assert_eq!(mirror.get(&path), upstream.get(&path), "{ext}: {path}");
        }
        let index = format!("dists/bookworm/main/binary-amd64/Packages.{ext}");
        assert_eq!(mirror.get(&index), upstream.get(&index), "{ext}");
        assert_exit(&env.run(&["verify"]), 0);
    }
}
