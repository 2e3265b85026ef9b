//! An operator checks a published tree after a disk scare, and repairs it.

use mirrorsync_testkit::FixtureSpec;

use crate::support::*;

fn damage(file: &std::path::Path) {
    let mut perms = std::fs::metadata(file).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(file, perms).unwrap();
    let mut bytes = std::fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn an_intact_tree_verifies_clean() {
    let env = Env::new(FixtureSpec::default().with_packages(10));
    assert_ok(&env.sync());
    let out = env.run(&["verify"]);
    assert_ok(&out);
    assert!(out.stderr.is_empty());
}

#[test]
fn damage_is_found_reported_with_exit_4_and_repaired() {
    let env = Env::new(FixtureSpec::default().with_packages(10));
    assert_ok(&env.sync());
    let (pool_file, _) = env.repo.pool_files()[3].clone();
    damage(&env.served().join(&pool_file));
    let trace = env.served().join("project/trace/mirror.test.invalid");
    std::fs::remove_file(&trace).unwrap();
    std::fs::write(env.served().join("dists/stray.deb"), b"stray").unwrap();

    let stderr = assert_exit(&env.run(&["verify"]), 4);
    assert!(stderr.contains(&format!("{pool_file}: SHA256")), "{stderr}");
    assert!(
        stderr.contains("project/trace/mirror.test.invalid: cannot be read"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dists/stray.deb: not part of the published snapshot"),
        "{stderr}"
    );

    let json = env.run(&["verify", "--json"]);
    assert_eq!(json.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["damaged"].as_array().unwrap().len(), 3);

    env.server.clear_log();
    let stderr = assert_exit(&env.run(&["verify", "--repair"]), 0);
    assert!(stderr.contains("repaired"), "{stderr}");
    assert_eq!(
        env.server.count(&format!("/{pool_file}")),
        1,
        "the damaged file is fetched again"
    );
    assert_eq!(env.server.count("/pool/"), 1, "nothing else from the pool");
    assert_ok(&env.run(&["verify"]));
    assert_eq!(
        std::fs::read(env.served().join(&pool_file)).unwrap(),
        std::fs::read(env.repo.dir.join(&pool_file)).unwrap()
    );
}

#[test]
fn a_tampered_inrelease_in_the_published_tree_is_damage() {
    let env = Env::new(FixtureSpec::default().with_packages(5));
    assert_ok(&env.sync());
    let inrelease = env.served().join("dists/bookworm/InRelease");
    damage(&inrelease);
    let stderr = assert_exit(&env.run(&["verify"]), 4);
    assert!(stderr.contains("dists/bookworm/InRelease"), "{stderr}");
}
