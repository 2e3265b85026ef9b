//! What an operator meets around the engine: push triggers, tiers of mirrors, address
//! families, completions and the man page.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use mirrorsync_testkit::FixtureSpec;

use crate::live::Nginx;
use crate::support::*;

#[test]
fn a_push_during_a_run_is_queued_and_the_running_sync_goes_again() {
    let env = Env::new(FixtureSpec::default().with_packages(5));
    // Another run holds the lock: the push must neither fail nor run alongside it.
    let held = mirrorsync::lock::RunLock::acquire(&env.root).unwrap();
    let out = env.run(&["sync", "debian", "--trigger", "push"]);
    // Nothing for cron to mail: the running sync will do the work.
    let stderr = assert_exit(&out, 0);
    assert!(stderr.is_empty(), "{stderr}");
    assert!(
        !env.served().exists(),
        "the push must not sync alongside the holder"
    );
    drop(held);
    // The run that holds the lock next picks the push up and syncs once more.
    let out = env.run(&["sync", "--json"]);
    assert_ok(&out);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcomes: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["published", "unchanged"]);
    // Queue consumed: the next run syncs once.
    let again: serde_json::Value =
        serde_json::from_slice(&env.run(&["sync", "--json"]).stdout).unwrap();
    assert_eq!(again.as_array().unwrap().len(), 1);
}

#[test]
fn a_push_over_ssh_is_recognised_as_such() {
    let env = Env::new(FixtureSpec::default().with_packages(3));
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .arg("-c")
        .arg(&env.config)
        .arg("sync")
        .env("SSH_ORIGINAL_COMMAND", "sync")
        .output()
        .unwrap();
    assert_ok(&out);
    let trace =
        std::fs::read_to_string(env.served().join("project/trace/mirror.test.invalid")).unwrap();
    assert!(trace.contains("\nTrigger: push\n"), "{trace}");
}

#[test]
fn a_mirrorsync_tree_served_by_nginx_is_an_upstream_for_the_next_tier() {
    let tier1 = Env::new(FixtureSpec::default().with_packages(15));
    assert_ok(&tier1.sync());
    let nginx = Nginx::serve(&tier1.root);

    let work = tempfile::tempdir().unwrap();
    let root2 = work.path().join("mirror");
    let config2 = work.path().join("mirrors.toml");
    std::fs::write(
        &config2,
        format!(
            "[global]\nroot = \"{}\"\nhostname = \"tier2.test.invalid\"\nretry_delay = \"10ms\"\n\n[[mirror]]\nname = \"debian\"\nkind = \"apt\"\nupstream = \"{}\"\nsuites = [\"bookworm\"]\ncomponents = [\"main\", \"contrib\"]\narchitectures = [\"amd64\", \"arm64\"]\nkeyring = \"{}\"\n",
            root2.display(),
            nginx.url("debian/"),
            tier1.repo.keyring.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .arg("-c")
        .arg(&config2)
        .arg("sync")
        .output()
        .unwrap();
    assert_ok(&out);
    let tier2 = root2.join("debian");
    // Same archive, byte for byte, apart from the trace directory.
    let a = digest_tree(&tier1.served());
    let b = digest_tree(&tier2);
    for (path, digest) in a.iter().filter(|(p, _)| !p.starts_with("project/trace/")) {
        assert_eq!(b.get(path), Some(digest), "{path}");
    }
    let traces = std::fs::read_to_string(tier2.join("project/trace/_traces")).unwrap();
    assert_eq!(traces, "master\nmirror.test.invalid\ntier2.test.invalid\n");
    let hierarchy = std::fs::read_to_string(tier2.join("project/trace/_hierarchy")).unwrap();
    let lines: Vec<&str> = hierarchy.lines().collect();
    assert_eq!(lines.len(), 2, "{hierarchy}");
    assert!(lines[0].starts_with("mirror.test.invalid "), "{hierarchy}");
    assert!(lines[1].starts_with("tier2.test.invalid "), "{hierarchy}");
    assert_eq!(
        std::fs::read(tier2.join("project/trace/mirror.test.invalid")).unwrap(),
        std::fs::read(tier1.served().join("project/trace/mirror.test.invalid")).unwrap()
    );

    // The probe, pointed at tier 2 with tier 1 as its upstream, finds it up to date,
    // whether the URLs end in '/' or are written as sources.list usually has them.
    let nginx2 = Nginx::serve(&root2);
    for (mirror, upstream) in [
        (nginx2.url("debian/"), nginx.url("debian/")),
        (nginx2.url("debian"), nginx.url("debian")),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
            .args(["probe", &mirror, "--upstream", &upstream])
            .arg("--keyring")
            .arg(&tier1.repo.keyring)
            .arg("--json")
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("probe JSON");
        assert_eq!(out.status.code(), Some(0), "{upstream}: {doc:#}");
        assert_eq!(
            doc["mirrors"][0]["families"][0]["freshness"], "up to date",
            "{upstream}"
        );
    }
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing in CI (scripts/test.sh installs systemd)"
        );
        eprintln!("systemd-analyze not installed; skipping the unit check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    // The unit names the installed binary; point it at the one under test.
    let service = std::fs::read_to_string(examples.join("mirrorsync.service"))
        .unwrap()
        .replace("/usr/bin/mirrorsync", env!("CARGO_BIN_EXE_mirrorsync"));
    std::fs::write(dir.path().join("mirrorsync.service"), service).unwrap();
    std::fs::copy(
        examples.join("mirrorsync.timer"),
        dir.path().join("mirrorsync.timer"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("mirrorsync.service"))
        .arg(dir.path().join("mirrorsync.timer"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The source addresses the fixture server saw, and how many requests it logged.
fn peers(env: &Env) -> (BTreeSet<IpAddr>, usize) {
    let log = env.server.requests();
    let ips = log
        .iter()
        .map(|r| r.peer.expect("the server logs each request's peer").ip())
        .collect();
    (ips, log.len())
}

#[test]
fn the_address_family_and_source_address_are_honoured() {
    let mut env = Env::with_config(FixtureSpec::default().with_packages(3), "ip = \"6\"");
    // The upstream listens on 127.0.0.1 only: IPv6-only must fail to connect.
    let stderr = assert_exit(&env.sync(), 1);
    assert!(stderr.contains("could not connect"), "{stderr}");
    assert!(
        env.server.requests().is_empty(),
        "an IPv6-only run reached the IPv4 upstream"
    );

    // Control: without bind_address the kernel picks the source, 127.0.0.1 on
    // loopback, so seeing 127.0.0.2 below can only come from the option.
    env.write_config("");
    assert_ok(&env.sync());
    let (ips, n) = peers(&env);
    assert!(n > 1, "a cold sync makes many requests");
    assert_eq!(ips, BTreeSet::from([IpAddr::from([127, 0, 0, 1])]));

    // Any 127.0.0.0/8 address is loopback on Linux: every request of a delta run,
    // index and pool file alike, must come from the configured one.
    env.repo.add_package("aaa-bound");
    env.publish();
    env.server.clear_log();
    env.write_config("bind_address = \"127.0.0.2\"");
    assert_ok(&env.sync());
    let (ips, n) = peers(&env);
    assert!(
        env.server.count("/pool/") > 0 && n > 2,
        "{:?}",
        env.server.requests()
    );
    assert_eq!(ips, BTreeSet::from([IpAddr::from([127, 0, 0, 2])]));
    assert!(
        env.served()
            .join(env.repo.packages["aaa-bound"].filename())
            .exists()
    );
}

#[test]
fn completions_and_a_man_page_are_generated() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
            .args(args)
            .output()
            .unwrap();
        assert_ok(&out);
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.contains("_mirrorsync()"), "{bash}");
    assert!(bash.contains("check-config"));
    let man = run(&["man"]);
    assert!(man.contains(".TH mirrorsync"), "{man}");
    assert!(man.contains("sync"));
}
