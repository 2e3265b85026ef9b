//! The command line as an operator meets it: config errors, exit codes, the demo.

use std::process::Command;

use crate::support::*;

fn mirrorsync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
}

#[test]
fn check_config_names_file_line_and_column_of_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mirrors.toml");
    std::fs::write(
        &cfg,
        "[global]\nroot = \"/srv/mirror\"\nhostname = \"m.example.org\"\nconcurency = 3\n",
    )
    .unwrap();
    let out = mirrorsync()
        .arg("-c")
        .arg(&cfg)
        .arg("check-config")
        .output()
        .unwrap();
    let stderr = assert_exit(&out, 2);
    assert!(
        stderr.contains(&format!(
            "{}: line 4, column 1: unknown field `concurency`",
            cfg.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_valid_config_checks_clean_and_silently() {
    let env = Env::new(mirrorsync_testkit::FixtureSpec::default().with_packages(1));
    let out = env.run(&["check-config"]);
    assert_ok(&out);
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_mirror_is_a_usage_error_for_every_command() {
    let env = Env::new(mirrorsync_testkit::FixtureSpec::default().with_packages(1));
    for cmd in ["sync", "verify", "status"] {
        let stderr = assert_exit(&env.run(&[cmd, "nosuch"]), 2);
        assert!(
            stderr.contains("no mirror named \"nosuch\""),
            "{cmd}: {stderr}"
        );
    }
}

#[test]
fn a_runtime_failure_outside_any_mirror_is_exit_1_not_a_usage_error() {
    let env = Env::new(mirrorsync_testkit::FixtureSpec::default().with_packages(1));
    // status --html into a directory that cannot be made.
    let blocker = env.root.parent().unwrap().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let target = blocker.join("status.html");
    let stderr = assert_exit(&env.run(&["status", "--html", target.to_str().unwrap()]), 1);
    assert!(stderr.contains("status.html"), "{stderr}");
}

#[test]
fn json_output_summarises_each_mirror() {
    let env = Env::new(mirrorsync_testkit::FixtureSpec::default().with_packages(5));
    let out = env.run(&["sync", "--json"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "debian");
    assert_eq!(v[0]["outcome"], "published");
    assert!(v[0]["bytes_fetched"].as_u64().unwrap() > 0);
}

#[test]
fn the_demo_mirrors_changes_and_resyncs_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let out = mirrorsync().arg("demo").arg(&demo).output().unwrap();
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1. cold sync:"), "{stdout}");
    assert!(
        stdout.contains("2. no-op sync:  upstream unchanged, 1 request(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("3. delta sync:"), "{stdout}");
    assert!(
        demo.join("mirror/fixture/dists/bookworm/InRelease")
            .exists()
    );
    // The status page shows both trees, with the apt mirror's cold, no-op and delta
    // runs and the image tree's two runs as history.
    let page = std::fs::read_to_string(demo.join("mirror/status/index.html")).unwrap();
    for (name, runs) in [("fixture", 3), ("images", 2)] {
        let at = page
            .find(&format!("data-name=\"{name}\""))
            .unwrap_or_else(|| panic!("{name} is on the page"));
        let section = &page[at..];
        let section = &section[..section.find("</section>").unwrap()];
        assert!(section.contains("data-state=\"fresh\""), "{name}");
        assert!(
            section.contains(&format!("data-points=\"{runs}\"")),
            "{name}: {runs} runs"
        );
    }
    // A second demo run in the same place starts afresh.
    assert_ok(&mirrorsync().arg("demo").arg(&demo).output().unwrap());
}

#[test]
fn the_demo_refuses_a_directory_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious"), b"data").unwrap();
    let out = mirrorsync().arg("demo").arg(dir.path()).output().unwrap();
    assert_exit(&out, 2);
    assert!(dir.path().join("precious").exists());
}

#[test]
fn every_sync_leaves_prometheus_metrics_for_the_textfile_collector() {
    let env = Env::new(mirrorsync_testkit::FixtureSpec::default().with_packages(5));
    assert_ok(&env.sync());
    let prom = std::fs::read_to_string(env.root.join(".mirrorsync/metrics.prom")).unwrap();
    assert!(
        prom.contains("# TYPE mirrorsync_last_run_success gauge"),
        "{prom}"
    );
    assert!(
        prom.contains("mirrorsync_last_run_success{mirror=\"debian\"} 1\n"),
        "{prom}"
    );
    assert!(
        prom.contains("mirrorsync_last_run_fetched_files{mirror=\"debian\"} "),
        "{prom}"
    );
    assert!(
        prom.contains("mirrorsync_upstream_release_timestamp_seconds{mirror=\"debian\"} "),
        "{prom}"
    );
    // Every sample line is `name{labels} number`.
    for line in prom.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }
    env.server.fault(
        "/dists/bookworm/InRelease",
        mirrorsync_testkit::server::Fault::Status(404),
        None,
    );
    env.server.fault(
        "/dists/bookworm/Release",
        mirrorsync_testkit::server::Fault::Status(404),
        None,
    );
    assert_exit(&env.sync(), 1);
    let prom = std::fs::read_to_string(env.root.join(".mirrorsync/metrics.prom")).unwrap();
    assert!(
        prom.contains("mirrorsync_last_run_success{mirror=\"debian\"} 0\n"),
        "{prom}"
    );
    assert!(
        prom.contains("mirrorsync_last_success_timestamp_seconds{mirror=\"debian\"} "),
        "{prom}"
    );
}
