//! An operator upgrades mirrorsync on a mirror the previous version built: snapshots
//! that are whole trees of hard links, staged in `.mirrorsync/<name>/staging`. The
//! first run of the new version moves it to the shared content without fetching
//! anything it has, while clients keep reading every file the served tree lists.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mirrorsync_testkit::FixtureSpec;
use sha2::{Digest, Sha256};

use crate::support::*;

/// Turns a root of this layout back into the previous one: each snapshot's shared
/// directories become real trees of hard links into the content, the content goes,
/// and staging is where the previous version kept it (with a leftover in it).
fn to_previous_layout(root: &Path) {
    let base = root.join(".mirrorsync/debian");
    let content = base.join("content");
    for snap in std::fs::read_dir(base.join("snapshots")).unwrap() {
        let snap = snap.unwrap().path();
        if !snap.is_dir() {
            continue;
        }
        let links: Vec<PathBuf> = walkdir::WalkDir::new(&snap)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.path_is_symlink())
            .map(|e| e.path().to_path_buf())
            .collect();
        for link in links {
            let rel = link.strip_prefix(&snap).unwrap();
            std::fs::remove_file(&link).unwrap();
            for e in walkdir::WalkDir::new(content.join(rel)) {
                let e = e.unwrap();
                let to = link.join(e.path().strip_prefix(content.join(rel)).unwrap());
                if e.file_type().is_dir() {
                    std::fs::create_dir_all(&to).unwrap();
                } else {
                    std::fs::hard_link(e.path(), &to).unwrap();
                }
            }
        }
    }
    std::fs::remove_dir_all(&content).unwrap();
    std::fs::remove_dir_all(base.join("snapshots/.staging")).unwrap();
    std::fs::create_dir_all(base.join("staging/pool/main")).unwrap();
    std::fs::write(
        base.join("staging/pool/main/left-by-a-failed-run.deb"),
        b"x",
    )
    .unwrap();
}

/// What a client reading the served tree the whole time saw go wrong.
struct Reader {
    stop: Arc<AtomicBool>,
    passes: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

/// Reads every file the served snapshot's manifest lists, over and over, checking
/// each against the manifest it was listed in.
fn start_reader(served: PathBuf) -> Reader {
    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicU64::new(0));
    let (s, p) = (stop.clone(), passes.clone());
    let handle = std::thread::spawn(move || {
        let mut problems = Vec::new();
        while !s.load(Ordering::Relaxed) {
            // One view: the snapshot the served symlink names now.
            let Ok(snapshot) = std::fs::canonicalize(&served) else {
                problems.push("the served symlink does not resolve".to_string());
                continue;
            };
            let manifest = snapshot.with_file_name(format!(
                "{}.manifest",
                snapshot.file_name().unwrap().to_string_lossy()
            ));
            let text = std::fs::read_to_string(&manifest).unwrap_or_default();
            for line in text.lines() {
                let f: Vec<&str> = line.splitn(4, '\t').collect();
                match std::fs::read(snapshot.join(f[3])) {
                    Ok(b) if hex::encode(Sha256::digest(&b)) == f[0] => {}
                    Ok(_) => problems.push(format!("{}: other bytes", f[3])),
                    Err(e) => problems.push(format!("{}: {e}", f[3])),
                }
            }
            p.fetch_add(1, Ordering::Relaxed);
        }
        problems
    });
    Reader {
        stop,
        passes,
        handle,
    }
}

#[test]
fn a_mirror_of_the_previous_layout_moves_to_the_shared_pool_without_refetching() {
    let mut env = Env::new(FixtureSpec::default().with_packages(120));
    assert_ok(&env.sync());
    env.repo.add_package("zz-first");
    env.publish();
    assert_ok(&env.sync());
    to_previous_layout(&env.root);
    let base = env.root.join(".mirrorsync/debian");
    assert!(
        !std::fs::symlink_metadata(env.served().join("pool"))
            .unwrap()
            .is_symlink()
    );
    assert_exit(&env.run(&["verify"]), 0);
    let before = env.served_digest();

    // Upstream moves on while a client reads the served tree the whole time.
    let name = env.repo.packages.keys().next().cloned().unwrap();
    env.repo.upgrade_package(&name);
    env.repo.add_package("zz-second");
    env.publish();
    env.server.clear_log();
    let reader = start_reader(env.served());
    while reader.passes.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    assert_ok(&env.sync());
    let after_run = reader.passes.load(Ordering::Relaxed);
    while reader.passes.load(Ordering::Relaxed) < after_run + 2 {
        std::thread::yield_now();
    }
    reader.stop.store(true, Ordering::Relaxed);
    let problems = reader.handle.join().unwrap();
    assert!(problems.is_empty(), "a reader saw: {problems:#?}");

    // Only what changed crossed the network.
    let pool: Vec<String> = env
        .server
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("/pool/"))
        .collect();
    assert!(
        !pool.is_empty() && pool.len() <= 4,
        "fetched only the new and upgraded packages: {pool:?}"
    );
    // The new layout: the pool is shared, the old staging and its leftover gone.
    assert!(
        std::fs::symlink_metadata(env.served().join("pool"))
            .unwrap()
            .is_symlink()
    );
    assert!(!base.join("staging").exists());
    assert!(base.join("content/pool").is_dir());
    let served = env.served_digest();
    let kept = before
        .iter()
        .filter(|(p, v)| p.starts_with("pool/") && served.get(*p) == Some(v))
        .count();
    assert!(kept > 100, "the pool carried over: {kept} files");
    assert_exit(&env.run(&["verify"]), 0);

    // The snapshot of the previous layout stays whole for rollback until pruned; the
    // next publish prunes it and takes nothing the served one needs.
    env.repo.add_package("zz-third");
    env.publish();
    assert_ok(&env.sync());
    assert_exit(&env.run(&["verify"]), 0);
    assert!(temp_files(&env.root).is_empty());
}
