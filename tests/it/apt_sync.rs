//! An operator mirrors a signed apt repository: cold, no-op and delta runs, and every
//! way upstream can go wrong leaving the served tree exactly as it was.

use mirrorsync::fixture::FixtureSpec;
use mirrorsync::fixture::server::Fault;

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
    // grace = 0s: removed files go at the next publish.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("keep_snapshots = 2", "keep_snapshots = 2\ngrace = \"0s\""),
    )
    .unwrap();
    assert_ok(&env.sync());
    let name = env.repo.packages.keys().next().cloned().unwrap();
    let gone = env.repo.remove_package(&name).unwrap().filename();
    env.publish();
    assert_ok(&env.sync());
    assert!(!env.served().join(&gone).exists());
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
    assert_fails_cleanly(&env, "HTTP 404");
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
    env.server
        .fault(&format!("/{path}"), Fault::Status(503), Some(2));
    assert_ok(&env.sync());
    assert!(env.served().join(&path).exists());
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

#[test]
fn a_filename_leaving_the_tree_fails_and_writes_nothing_outside() {
    let mut env = Env::new(small());
    assert_ok(&env.sync());
    env.repo.extra_stanza = Some(
        "Package: evil\nVersion: 1\nArchitecture: all\nFilename: ../../../../tmp/evil.deb\nSize: 3\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n"
            .into(),
    );
    env.publish();
    let stderr = assert_fails_cleanly(&env, "unsafe path \"../../../../tmp/evil.deb\"");
    assert!(stderr.contains("package \"evil\""), "{stderr}");
    assert!(
        stderr.contains("Packages"),
        "the message names the index: {stderr}"
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
    let stderr = assert_exit(&env.sync(), 3);
    assert!(stderr.contains("another mirrorsync run"), "{stderr}");
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

#[test]
fn an_upstream_mid_update_is_waited_for() {
    let (env, path) = synced_with_a_new_package();
    let marker = env.repo.dir.join("Archive-Update-in-Progress-127.0.0.1");
    std::fs::write(&marker, "upstream.example.org\n").unwrap();
    let remover = {
        let marker = marker.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(800));
            std::fs::remove_file(marker).unwrap();
        })
    };
    let started = std::time::Instant::now();
    assert_ok(&env.sync());
    remover.join().unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(800),
        "did not wait"
    );
    assert!(env.served().join(&path).exists());
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
    let paths: Vec<String> = env.server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/dists/bookworm/InRelease", "/dists/bookworm/Release"]
    );
}

#[test]
fn unsigned_text_around_a_genuine_inrelease_is_refused() {
    let (env, _) = synced_with_a_new_package();
    let genuine = std::fs::read(env.repo.dir.join("dists/bookworm/InRelease")).unwrap();
    let mut forged = b"Origin: Evil\nSuite: bookworm\n\n".to_vec();
    forged.extend_from_slice(&genuine);
    env.server
        .fault("/dists/bookworm/InRelease", Fault::Replace(forged), None);
    assert_fails_cleanly(&env, "text outside the signed part");
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
    let mut env = Env::new(small());
    env.repo.valid_for = jiff::SignedDuration::from_secs(3);
    env.repo.set_date(
        jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(60))
            .unwrap(),
    );
    env.publish();
    assert_ok(&env.sync());
    std::thread::sleep(std::time::Duration::from_secs(4));
    let stderr = assert_exit(&env.sync(), 1);
    assert!(stderr.contains("expired"), "{stderr}");
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
