//! A mirror operator's worst days: the power goes at any moment of a run, the disk
//! fills up, upstream publishes broken or enormous metadata. Each story asserts that
//! the served tree is byte for byte what it was after the failure, and complete once
//! the cause is gone.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mirrorsync::apt::packages::{self, IndexKind};
use mirrorsync::apt::release::Release;
use mirrorsync_testkit::FixtureSpec;
use mirrorsync_testkit::server::Fault;

use crate::support::*;
// Seeded, so a failing sequence of kills can be replayed.
use mirrorsync_testkit::XorShift;

/// The trace file this mirror writes: it holds the run's own times and byte counts,
/// so two complete runs never agree on it.
const OWN_TRACE: &str = "project/trace/mirror.test.invalid";

/// The served tree without the files that differ between any two complete runs.
fn comparable(mut d: TreeDigest) -> TreeDigest {
    d.remove(OWN_TRACE);
    d
}

/// `cp -a`: keeps the served symlink (relative) and the hard links between snapshots.
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("running cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// Whether a killed run left files in staging or partial/ for the next run.
fn left_work(root: &Path) -> bool {
    ["snapshots/.staging", "partial"].iter().any(|d| {
        walkdir::WalkDir::new(root.join(".mirrorsync/debian").join(d))
            .into_iter()
            .filter_map(|e| e.ok())
            .any(|e| e.file_type().is_file())
    })
}

/// The test's config with another mirror root.
fn config_with_root(env: &Env, root: &Path, at: &Path) -> PathBuf {
    let text = std::fs::read_to_string(&env.config).expect("config");
    let text = text.replace(
        &format!("root = \"{}\"", env.root.display()),
        &format!("root = \"{}\"", root.display()),
    );
    std::fs::write(at, text).expect("writing config");
    at.to_path_buf()
}

fn mirrorsync(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorsync"));
    cmd.arg("-c")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// Checks the served tree the way a client would, from its own digests: every index
/// the served InRelease lists for this mirror's components and architectures is there
/// with its size and SHA256, and under by-hash too (a listed variant may be missing,
/// as long as another of the same index is there: Debian does not serve uncompressed
/// Packages), and every Filename of every served Packages is there with its size and
/// SHA256. Returns the problems found.
fn client_view_problems(served: &Path, digests: &TreeDigest, suite: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let inrelease = served.join(format!("dists/{suite}/InRelease"));
    let Ok(bytes) = std::fs::read(&inrelease) else {
        return vec![format!("{} cannot be read", inrelease.display())];
    };
    // The test's own reading of what it served: split as apt splits it.
    let Ok(text) = mirrorsync::apt::signature::unsigned_text(&bytes) else {
        return vec!["the served InRelease is not a Release".into()];
    };
    let rel = match Release::parse(&text) {
        Ok(r) => r,
        Err(e) => return vec![format!("the served InRelease does not parse: {e}")],
    };
    let components = ["main".to_string(), "contrib".to_string()];
    let arches = ["amd64".to_string(), "arm64".to_string()];
    let mut indices = Vec::new();
    for f in rel.wanted_indices(&components, &arches, false) {
        let path = format!("dists/{suite}/{}", f.path);
        let want = (f.size, hex::encode(f.sha256.expect("SHA256")));
        match digests.get(&path) {
            Some(have) if *have == want => {
                // apt fetches by hash when the Release says so.
                if rel.acquire_by_hash {
                    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                    let by_hash = format!("{dir}/by-hash/SHA256/{}", want.1);
                    if digests.get(&by_hash) != Some(&want) {
                        problems.push(format!("{by_hash}: missing or wrong"));
                    }
                }
                if f.path.file_name().starts_with("Packages.") {
                    indices.push(path);
                }
            }
            Some(have) => problems.push(format!("{path}: {have:?}, listed as {want:?}")),
            None => {
                let served_variant = [".gz", ".xz"]
                    .iter()
                    .any(|ext| digests.contains_key(&format!("{path}{ext}")));
                if !served_variant {
                    problems.push(format!("{path}: listed but not served"));
                }
            }
        }
    }
    if indices.is_empty() {
        problems.push("no Packages index is served".into());
    }
    for index in indices {
        let mut files = Vec::new();
        if let Err(e) =
            packages::pool_files_of(&served.join(&index), IndexKind::Packages, &index, |f| {
                files.push(f)
            })
        {
            problems.push(format!("{index}: {e}"));
            continue;
        }
        for f in files {
            let want = (f.size, hex::encode(f.sha256));
            match digests.get(f.path.as_str()) {
                Some(have) if *have == want => {}
                Some(have) => problems.push(format!("{}: {have:?}, {index} says {want:?}", f.path)),
                None => problems.push(format!("{}: in {index} but not served", f.path)),
            }
        }
    }
    problems
}

/// The seed of the kill test's moments when MIRRORSYNC_KILL_SEED does not give one.
const KILL_SEED: u64 = 16;

/// Where the kill test stops a run. In every phase but [`KillPhase::Tail`] one file
/// the run needs before it can publish never answers (the fixture server's `Hang`;
/// the client gives up only after three 5 s timeouts), so the run is certain to be
/// alive, and not yet publishing, when the test sees the phase's event and kills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPhase {
    /// InRelease is held: killed at once or once it is asked for, before anything was
    /// fetched.
    Release,
    /// An index the delta changed is held: killed after a seeded number of requests
    /// or once that index is asked for; before the pool.
    Indices,
    /// The last new pool file is held: killed once a new pool file was downloaded
    /// into staging by this run.
    PoolDownloaded,
    /// The last new pool file is held: killed after a seeded number of pool requests
    /// or once it is asked for.
    Pool,
    /// Nothing is held: killed a seeded time (within the reference run's tail) after
    /// the last new pool file is asked for, among the last downloads, the writing of
    /// the Release files and the publish. Whether such a kill lands before the run
    /// ends is not certain: it is counted, not asserted.
    Tail,
}

/// The kill test's rounds, in this order: each phase's held file is one that no
/// earlier round can have completed, so it is asked for again.
const KILL_ROUNDS: [(KillPhase, usize); 5] = [
    (KillPhase::Release, 3),
    (KillPhase::Indices, 5),
    (KillPhase::PoolDownloaded, 1),
    (KillPhase::Pool, 10),
    (KillPhase::Tail, 11),
];

/// What one killed run did and left.
struct KillRound {
    round: usize,
    phase: KillPhase,
    /// How long after the spawn the kill was sent (None: the run ended first).
    killed_after: Option<Duration>,
    status: ExitStatus,
    /// Requests the fixture server logged during the round, pool ones, and whether
    /// the held file was among them.
    requests: usize,
    pool_requests: usize,
    asked_held: bool,
    /// Body bytes the server sent during the round.
    bytes_sent: u64,
    /// New pool files (of the reference run's downloads) that this run put in staging.
    downloaded: usize,
    /// Files left in staging or partial/ for the next run.
    left_work: bool,
    /// A publish was under way: a snapshot or manifest that was not there before.
    publish_begun: bool,
    /// "old", "new" or "neither".
    state: &'static str,
}

impl KillRound {
    fn killed(&self) -> bool {
        self.status.signal() == Some(libc::SIGKILL)
    }
}

impl std::fmt::Display for KillRound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "round {:2} {:?}: {} {}; {} requests ({} pool{}), {} bytes sent, {} new pool \
             files staged, work left {}, publish begun {}; served tree {}",
            self.round,
            self.phase,
            self.status,
            match (self.killed_after, self.killed()) {
                (None, _) => "(ended before its kill moment)".to_string(),
                (Some(d), true) => format!("at {d:?}"),
                (Some(d), false) => format!("(ended before the kill sent at {d:?})"),
            },
            self.requests,
            self.pool_requests,
            if self.asked_held {
                ", held file asked"
            } else {
                ""
            },
            self.bytes_sent,
            self.downloaded,
            self.left_work,
            self.publish_begun,
            self.state
        )
    }
}

/// The entries of the mirror's snapshots directory (snapshots, manifests, a publish's
/// temporary manifest).
fn snapshot_entries(root: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(root.join(".mirrorsync/debian/snapshots"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The pool files of `paths` (URL paths, "/pool/...") that are in staging.
fn staged_of(root: &Path, paths: &[String]) -> std::collections::BTreeSet<String> {
    let staging = root.join(".mirrorsync/debian/snapshots/.staging");
    paths
        .iter()
        .filter(|p| staging.join(p.trim_start_matches('/')).is_file())
        .cloned()
        .collect()
}

/// Polls `event` until it holds (None) or the child ends first (its status).
fn wait_for(
    child: &mut std::process::Child,
    what: &str,
    mut event: impl FnMut() -> bool,
) -> Option<ExitStatus> {
    // Far longer than any phase takes, far shorter than the held request's timeouts.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if event() {
            return None;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not happen within 10 s");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// A power cut at any moment of a delta run: SIGKILL at 30 moments, each after an
/// event of the run seen from outside (the fixture server's request log, new pool
/// files in staging), with one file the run needs held unanswered so that the kill is
/// certain to land while it runs, in the phase meant; the last 11 are aimed at the
/// run's tail, up to and through the publish, where nothing can be held. After each kill
/// the served tree is exactly the old one or exactly the new one (compared with a
/// reference run into another root), `verify` passes, and a client reading it finds
/// every index and pool file it lists. Killed runs are chained, each starting from
/// what the previous one left; once one gets as far as publishing, or leaves too
/// little to fetch for the next kill's moment to come, the root goes back to its state
/// before the delta, so later kills still land in a delta. A last run completes and
/// verifies.
///
/// Asserted because certain: every held-phase kill was delivered to a running process
/// (its wait status is SIGKILL) before publishing; the Release-phase runs fetched
/// nothing, the index-phase ones asked for no pool file, the pool-phase ones had asked
/// for pool files, and one run was killed after it downloaded a new pool file into
/// staging and before publishing. Tail kills that landed (and where) are counted.
///
/// The moments come from a fixed seed; `MIRRORSYNC_KILL_SEED=<n>` tries another.
#[test]
fn a_run_killed_at_any_moment_leaves_the_old_or_the_new_tree() {
    let seed: u64 = std::env::var("MIRRORSYNC_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(KILL_SEED);
    let mut rng = XorShift::new(seed);
    let started = Instant::now();
    let scratch = tempfile::tempdir().expect("tempdir");

    // A mirror synced once.
    let mut env = Env::new(
        FixtureSpec::default()
            .with_packages(240)
            .with_sizes(8_000, 40_000),
    );
    assert_ok(&env.sync());
    let old = comparable(env.served_digest());
    let pristine = scratch.path().join("pristine");
    copy_tree(&env.root, &pristine);

    // Upstream's next dinstall: upgrades, new packages, removals.
    let names: Vec<String> = env.repo.packages.keys().cloned().collect();
    for name in names.iter().step_by(10) {
        env.repo.upgrade_package(name);
    }
    for name in names.iter().skip(5).step_by(20) {
        env.repo.remove_package(name);
    }
    for i in 0..24 {
        env.repo.add_package(&format!("new{i:03}"));
    }
    env.publish();

    // The reference: the same delta, uninterrupted, from the same start, elsewhere;
    // its requests (in order, with when each was first seen) say what a run asks for.
    let reference_root = scratch.path().join("reference");
    copy_tree(&pristine, &reference_root);
    let reference_config = config_with_root(
        &env,
        &reference_root,
        &scratch.path().join("reference.toml"),
    );
    env.server.clear_log();
    let reference_err = scratch.path().join("reference.err");
    let t = Instant::now();
    let mut child = mirrorsync(&reference_config, &["sync"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&reference_err).unwrap())
        .spawn()
        .expect("reference run");
    let mut seen: Vec<Instant> = Vec::new();
    let status = loop {
        let n = env.server.requests().len();
        while seen.len() < n {
            seen.push(Instant::now());
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let full_run = t.elapsed();
    let ended = Instant::now();
    assert!(
        status.success(),
        "reference run: {status}\n{}",
        std::fs::read_to_string(&reference_err).unwrap()
    );
    let new = comparable(digest_tree(&reference_root.join("debian")));
    assert_ne!(old, new, "the delta changed nothing");
    let log: Vec<String> = env.server.requests().into_iter().map(|r| r.path).collect();
    let inrelease = format!("/dists/{}/InRelease", env.repo.suite);
    assert_eq!(log.first(), Some(&inrelease), "a run starts with InRelease");
    let is_release = |p: &str| {
        ["/InRelease", "/Release", "/Release.gpg"]
            .iter()
            .any(|s| p.ends_with(s))
    };
    let (held_index_at, held_index) = log
        .iter()
        .enumerate()
        .rfind(|(_, p)| p.starts_with("/dists/") && !is_release(p))
        .expect("the delta fetches indices");
    let held_index = held_index.clone();
    let new_pool: Vec<String> = log
        .iter()
        .filter(|p| p.starts_with("/pool/"))
        .cloned()
        .collect();
    assert!(
        new_pool.len() >= 8,
        "the delta downloads {} pool files",
        new_pool.len()
    );
    let held_pool = new_pool.last().unwrap().clone();
    let held_pool_at = log.iter().rposition(|p| *p == held_pool).unwrap();
    let tail = ended.duration_since(seen[held_pool_at.min(seen.len() - 1)]);
    println!(
        "reference delta run: {full_run:?}, {} requests ({} pool files); {tail:?} from \
         asking for the last one, {held_pool}, to the end",
        log.len(),
        new_pool.len()
    );

    let mut rounds: Vec<KillRound> = Vec::new();
    let mut inconsistent: Vec<String> = Vec::new();
    let phases = KILL_ROUNDS
        .iter()
        .flat_map(|&(phase, n)| std::iter::repeat_n(phase, n));
    for (round, phase) in phases.enumerate() {
        let held = match phase {
            KillPhase::Release => Some(&inrelease),
            KillPhase::Indices => Some(&held_index),
            KillPhase::PoolDownloaded | KillPhase::Pool => Some(&held_pool),
            KillPhase::Tail => None,
        };
        // Seeded, drawn every round whatever the phase, so a seed gives one sequence.
        let k = rng.below(held_index_at as u64 + 1) as usize;
        let j = 1 + rng.below(new_pool.len() as u64) as usize;
        let first = rng.below(2) as usize;
        let delay = Duration::from_micros(rng.below(tail.as_micros() as u64 + 1));

        // Earlier kills may have left too little to fetch for this kill's moment to
        // come (fewer than j pool files; the last one already staged): then back to
        // the state before the delta.
        let staged = staged_of(&env.root, &new_pool);
        let reset = match phase {
            KillPhase::Pool => new_pool.len() - staged.len() < j,
            KillPhase::Tail => staged.contains(&held_pool),
            _ => false,
        };
        if reset {
            std::fs::remove_dir_all(&env.root).expect("removing the root");
            copy_tree(&pristine, &env.root);
        }
        env.server.clear_faults();
        if let Some(h) = held {
            env.server.fault(h, Fault::Hang, None);
        }
        env.server.clear_log();
        let sent_before = env.server.bytes_sent();
        let staged_before = staged_of(&env.root, &new_pool);
        let snapshots_before = snapshot_entries(&env.root);
        let asked = |p: &str| env.server.requests().iter().any(|r| r.path == p);
        let pool_asked = || env.server.count("/pool/");

        let spawned = Instant::now();
        let mut child = mirrorsync(&env.config, &["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning mirrorsync");
        let ended_first = match phase {
            KillPhase::Release => wait_for(&mut child, "asking for InRelease", || {
                env.server.requests().len() >= first || asked(&inrelease)
            }),
            KillPhase::Indices => wait_for(&mut child, "asking for the held index", || {
                env.server.requests().len() >= k.max(1) || asked(&held_index)
            }),
            KillPhase::PoolDownloaded => wait_for(&mut child, "a new pool file downloaded", || {
                staged_of(&env.root, &new_pool)
                    .difference(&staged_before)
                    .any(|p| *p != held_pool)
            }),
            KillPhase::Pool => wait_for(&mut child, "asking for pool files", || {
                pool_asked() >= j || asked(&held_pool)
            }),
            KillPhase::Tail => {
                // Or it is already staged (left by an earlier kill), so not asked for.
                let ended = wait_for(&mut child, "asking for the last pool file", || {
                    asked(&held_pool)
                        || staged_of(&env.root, std::slice::from_ref(&held_pool)).len() == 1
                });
                if ended.is_none() {
                    std::thread::sleep(delay);
                }
                ended
            }
        };
        let killed_after = match ended_first {
            Some(_) => None,
            None => {
                let at = spawned.elapsed();
                let _ = child.kill(); // SIGKILL; a no-op if it has just ended
                Some(at)
            }
        };
        let status = match ended_first {
            Some(status) => status,
            None => child.wait().expect("wait"),
        };

        let requests = env.server.requests();
        let digests = digest_tree(&env.served());
        let now = comparable(digests.clone());
        let state = if now == old {
            "old"
        } else if now == new {
            "new"
        } else {
            "neither"
        };
        let record = KillRound {
            round,
            phase,
            killed_after,
            status,
            requests: requests.len(),
            pool_requests: requests
                .iter()
                .filter(|r| r.path.starts_with("/pool/"))
                .count(),
            asked_held: held.is_some_and(|h| requests.iter().any(|r| r.path == *h)),
            bytes_sent: env.server.bytes_sent() - sent_before,
            downloaded: staged_of(&env.root, &new_pool)
                .difference(&staged_before)
                .count(),
            left_work: left_work(&env.root),
            publish_begun: snapshot_entries(&env.root)
                .difference(&snapshots_before)
                .next()
                .is_some(),
            state,
        };
        println!("{record}");

        let mut problems = client_view_problems(&env.served(), &digests, &env.repo.suite);
        if state == "neither" {
            let differ: Vec<&String> = now
                .keys()
                .chain(new.keys())
                .filter(|k| now.get(*k) != new.get(*k) && now.get(*k) != old.get(*k))
                .take(5)
                .collect();
            problems.push(format!(
                "the served tree is neither the old nor the new one (e.g. {differ:?})"
            ));
        }
        let verify = mirrorsync(&env.config, &["verify"])
            .output()
            .expect("verify");
        if !verify.status.success() {
            problems.push(format!(
                "verify exited {:?}: {}",
                verify.status.code(),
                String::from_utf8_lossy(&verify.stderr)
            ));
        }
        if !problems.is_empty() {
            inconsistent.push(format!("{record}: {problems:#?}"));
        }
        if state == "new" {
            // Back to the state before the delta, so the next kills hit one again.
            std::fs::remove_dir_all(&env.root).expect("removing the root");
            copy_tree(&pristine, &env.root);
        }
        rounds.push(record);
    }
    env.server.clear_faults();

    let count = |f: &dyn Fn(&KillRound) -> bool| rounds.iter().filter(|r| f(r)).count();
    let tail_rounds = count(&|r| r.phase == KillPhase::Tail);
    println!(
        "kill test (seed {seed}): {} of {} runs killed while running ({} of {tail_rounds} \
         tail kills landed: {} with a publish under way, {} after the new tree was \
         served). Of the killed runs {} had been sent something, {} had asked for pool \
         files, {} had downloaded new pool files, {} left staged or partial files. \
         Served tree old after {}, new after {}; {} inconsistent; {:?} in all",
        count(&|r| r.killed()),
        rounds.len(),
        count(&|r| r.phase == KillPhase::Tail && r.killed()),
        count(&|r| r.phase == KillPhase::Tail && r.killed() && r.publish_begun && r.state != "new"),
        count(&|r| r.phase == KillPhase::Tail && r.killed() && r.state == "new"),
        count(&|r| r.killed() && r.bytes_sent > 0),
        count(&|r| r.killed() && r.pool_requests > 0),
        count(&|r| r.killed() && r.downloaded > 0),
        count(&|r| r.killed() && r.left_work),
        count(&|r| r.state == "old"),
        count(&|r| r.state == "new"),
        inconsistent.len(),
        started.elapsed()
    );
    assert!(
        inconsistent.is_empty(),
        "seed {seed} (MIRRORSYNC_KILL_SEED={seed}): {} inconsistent states:\n{}",
        inconsistent.len(),
        inconsistent.join("\n")
    );

    // What the held phases make certain: the kills landed mid-run, where meant.
    for r in rounds.iter().filter(|r| r.phase != KillPhase::Tail) {
        assert!(
            r.killed(),
            "seed {seed}: the kill did not land on a running process: {r}"
        );
        assert_eq!(r.state, "old", "seed {seed}: killed before publishing: {r}");
        match r.phase {
            KillPhase::Release => assert!(
                r.bytes_sent == 0 && r.pool_requests == 0,
                "seed {seed}: killed before anything was fetched: {r}"
            ),
            KillPhase::Indices => assert_eq!(
                r.pool_requests, 0,
                "seed {seed}: killed before the pool: {r}"
            ),
            KillPhase::PoolDownloaded => assert!(
                r.downloaded > 0 && r.left_work,
                "seed {seed}: killed after a new pool file was downloaded: {r}"
            ),
            KillPhase::Pool => assert!(
                r.pool_requests > 0,
                "seed {seed}: killed among the pool downloads: {r}"
            ),
            KillPhase::Tail => unreachable!(),
        }
    }

    // Power back for good: the next run completes.
    let out = env.sync();
    assert!(out.status.success(), "seed {seed}: {out:?}");
    let digests = env.served_digest();
    assert!(comparable(digests.clone()) == new, "seed {seed}");
    let out = env.run(&["verify"]);
    assert!(out.status.success(), "seed {seed}: {out:?}");
    let problems = client_view_problems(&env.served(), &digests, &env.repo.suite);
    assert!(problems.is_empty(), "seed {seed}: {problems:#?}");
    let stray = stray_files(&env.root);
    assert!(stray.is_empty(), "seed {seed}: {stray:?}");
}

/// The served tree and snapshot id before a run that must fail.
struct Before {
    digest: TreeDigest,
    snapshot: Option<String>,
}

fn before(env: &Env) -> Before {
    Before {
        digest: env.served_digest(),
        snapshot: env.snapshot_id(),
    }
}

/// The failed run changed nothing that is served, left nothing outside the mirror's
/// own directories (`ignore`: the test's own files there), and the tree verifies.
#[track_caller]
fn unchanged(env: &Env, was: &Before, ignore: &[&str]) {
    assert!(env.served_digest() == was.digest, "the served tree changed");
    assert_eq!(env.snapshot_id(), was.snapshot, "a snapshot was published");
    let stray: Vec<String> = stray_files(&env.root)
        .into_iter()
        .filter(|f| !ignore.contains(&f.as_str()))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    assert_ok(&env.run(&["verify"]));
}

#[track_caller]
fn one_clear_failure(stderr: &str, expect: &str) {
    assert!(
        stderr.contains(expect),
        "stderr lacks {expect:?}:\n{stderr}"
    );
    assert!(stderr.contains("mirror \"debian\""), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A tmpfs mounted for one test; unmounted when dropped, during a panic too.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "72m") on `at`. None when that is not possible
    /// (not root, or a container without the capability) and not required; where these
    /// tests are required ([`root_tests_required`]: scripts/test.sh, CI) that panics
    /// instead, so they fail there rather than pass without having run.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let why_not = if unsafe { libc::geteuid() } != 0 {
            "not root".to_string()
        } else {
            std::fs::create_dir_all(at).expect("creating the mount point");
            let out = Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0755"),
                    "tmpfs",
                ])
                .arg(at)
                .output()
                .expect("running mount");
            if out.status.success() {
                println!("a {size} tmpfs of its own on {}", at.display());
                return Some(Tmpfs {
                    at: at.to_path_buf(),
                });
            }
            format!(
                "mount failed: {}",
                // mount's message on one line.
                String::from_utf8_lossy(&out.stderr)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        assert!(
            !root_tests_required(),
            "this test needs a tmpfs of its own and cannot mount one ({why_not}); it is \
             required here (MIRRORSYNC_REQUIRE_ROOT_TESTS=1 or CI set): run it as root, \
             allowed to mount"
        );
        println!(
            "SKIPPED in part or whole: no tmpfs ({why_not}); as root, or with \
             MIRRORSYNC_REQUIRE_ROOT_TESTS=1 to make this a failure"
        );
        None
    }
}

/// Whether the tests that need root (a tmpfs of their own) must run rather than skip:
/// scripts/test.sh, which CI runs as root, sets MIRRORSYNC_REQUIRE_ROOT_TESTS=1; `CI`
/// set says the same.
fn root_tests_required() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var("MIRRORSYNC_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.at)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a child we could not reap?): detach it rather than leak it.
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}

fn free_bytes(path: &Path) -> u64 {
    let st = rustix::fs::statvfs(path).expect("statvfs");
    st.f_bavail.saturating_mul(st.f_frsize)
}

/// Writes `len` bytes of real data (tmpfs does not count a sparse file's holes).
fn fill(path: &Path, len: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("creating the filler");
    let chunk = vec![0xA5u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).expect("writing the filler");
        left -= n as u64;
    }
    f.sync_all().expect("syncing the filler");
}

/// The number in "... and <n> are free" of the precheck's message.
fn reported_free(stderr: &str) -> Option<u64> {
    let (head, _) = stderr.split_once(" are free")?;
    head.rsplit(' ').next()?.parse().ok()
}

/// The mirror's disk has less room than upstream's next publish needs: the run is
/// refused before any pool file is fetched, with a message naming the free space,
/// and the served tree is left as it was.
///
/// As root the mirror root is a 72 MiB tmpfs of its own, whose free space the test
/// knows to the byte; otherwise (no tmpfs: a failure where root tests are required,
/// see [`root_tests_required`]) the test's own filesystem, whose free space other
/// processes move, so the figure is only checked to be there.
#[test]
fn a_plan_bigger_than_the_free_space_is_refused_naming_the_free_space() {
    let mut env = Env::new(FixtureSpec::default().with_packages(20));
    // The precheck keeps a 64 MiB margin, so the first sync needs a little more.
    let tmpfs = Tmpfs::mount(&env.root, "72m");
    if tmpfs.is_none() {
        println!("the precheck is checked on the test's own filesystem, the figure loosely");
    }
    assert_ok(&env.sync());
    let free = free_bytes(&env.root);
    let size = free + (1 << 20);
    env.repo.extra_stanza = Some(format!(
        "Package: toobig\nVersion: 1\nArchitecture: all\nFilename: pool/main/t/toobig/toobig_1_all.deb\nSize: {size}\nSHA256: {}\n",
        "0".repeat(64)
    ));
    env.publish();
    let was = before(&env);
    env.server.clear_log();
    let stderr = assert_exit(&env.sync(), 1);
    one_clear_failure(&stderr, "not enough free space");
    assert!(
        stderr.contains(&format!("would download {size} bytes")),
        "{stderr}"
    );
    let reported = reported_free(&stderr).expect("the free space, in bytes");
    if tmpfs.is_some() {
        // Less only by the new indices, staged before the pool is planned.
        assert!(
            reported <= free && free - reported < 1 << 20,
            "reported {reported} free, the tmpfs had {free}"
        );
    }
    assert_eq!(env.server.count("/pool/"), 0, "nothing is fetched");
    unchanged(&env, &was, &[]);
}

/// The disk fills up while the pool downloads: something else on the host takes the
/// space after the run's free-space check passed. The mirror root is a 160 MiB tmpfs
/// (root only; skipped otherwise, except where root tests are required, see
/// [`root_tests_required`], where it fails instead).
///
/// How the ENOSPC is made deterministic: every new pool file answers 503 to its first
/// request and the run's `retry_delay` is 3 s (2.25 s at least, with jitter). The
/// first pool request can only come after the free-space check passed (it is made
/// between planning and the pool downloads); when the fixture server logs it, the
/// test fills the tmpfs up to 2 MiB from full. The retries then write the 10 MB of
/// new pool files into `partial/` and run into a real ENOSPC there. A run while the
/// disk is still full is refused by the check; once the filler goes, the next run
/// publishes, reusing what the failed one had verified.
#[test]
fn a_disk_filling_up_mid_download_fails_cleanly_and_the_next_run_publishes() {
    let mut env = Env::new(
        FixtureSpec::default()
            .with_packages(40)
            .with_sizes(20_000, 60_000),
    );
    let Some(_tmpfs) = Tmpfs::mount(&env.root, "160m") else {
        println!("SKIPPED: the mid-download ENOSPC is not tested");
        return;
    };
    env.edit_config("retry_delay = \"10ms\"", "retry_delay = \"3s\"");
    assert_ok(&env.sync());

    env.repo.size_range = (400_000, 600_000);
    let mut new = Vec::new();
    for i in 0..20 {
        let p = env.repo.add_package(&format!("big{i:02}"));
        new.push((p.filename(), p.size));
    }
    env.publish();
    let need: u64 = new.iter().map(|(_, size)| size).sum();
    let free = free_bytes(&env.root);
    assert!(
        need + (64 << 20) + (4 << 20) < free,
        "the precheck must pass: {need} needed, {free} free"
    );
    for (path, _) in &new {
        env.server
            .fault(&format!("/{path}"), Fault::Status(503), Some(1));
    }
    let was = before(&env);
    env.server.clear_log();

    let child = mirrorsync(&env.config, &["sync"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning mirrorsync");
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.server.count("/pool/") == 0 {
        assert!(Instant::now() < deadline, "the run never reached the pool");
        std::thread::sleep(Duration::from_millis(5));
    }
    let filler = env.root.join("filler");
    let noticed = Instant::now();
    fill(&filler, free_bytes(&env.root).saturating_sub(2 << 20));
    let filled_in = noticed.elapsed();
    let out = child.wait_with_output().expect("waiting for mirrorsync");
    let stderr = assert_exit(&out, 1);
    assert!(
        filled_in < Duration::from_secs(2),
        "filling the tmpfs took {filled_in:?}, longer than the retry delay"
    );
    // Each failed file is named with the file it was being written to, and why.
    one_clear_failure(&stderr, "fetching pool files");
    assert!(
        stderr.contains("writing ")
            && stderr.contains(".mirrorsync/debian/partial/")
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    unchanged(&env, &was, &["filler"]);

    // Cron runs again before anyone frees the space: refused up front this time.
    let refused = assert_exit(&env.sync(), 1);
    one_clear_failure(&refused, "not enough free space");
    unchanged(&env, &was, &["filler"]);

    // The operator frees the space; the next run publishes.
    std::fs::remove_file(&filler).unwrap();
    env.server.clear_faults();
    env.server.clear_log();
    assert_ok(&env.sync());
    for (path, size) in &new {
        let meta = std::fs::metadata(env.served().join(path)).expect(path);
        assert_eq!(meta.len(), *size, "{path}");
    }
    assert_ok(&env.run(&["verify"]));
    assert!(stray_files(&env.root).is_empty());
    assert!(
        temp_files(&env.root).is_empty(),
        "{:?}",
        temp_files(&env.root)
    );
    let refetched = new
        .iter()
        .filter(|(p, _)| env.server.count(&format!("/{p}")) > 0)
        .count();
    let ranged = env
        .server
        .requests()
        .iter()
        .filter(|r| r.range.is_some())
        .count();
    println!(
        "ENOSPC: {} of {} new pool files fetched again after the disk was freed ({ranged} resumed with Range); failure was:\n{stderr}",
        refetched,
        new.len()
    );
    assert!(
        refetched < new.len(),
        "the failed run's verified downloads were all fetched again"
    );
}

/// Rewrites index files upstream the way a broken archive publish would, and signs a
/// Release that vouches for them: `replace` gives new bytes for paths under
/// `dists/<suite>/` (by-hash copies included), `drop` takes paths out of the Release
/// and off the server.
fn republish_indices(env: &Env, replace: &[(&str, Vec<u8>)], drop: &[&str]) {
    use md5::Md5;
    use sha1::Sha1;
    use sha2::{Digest, Sha256, Sha512};
    let dists = env.repo.dir.join("dists").join(&env.repo.suite);
    let release = std::fs::read_to_string(dists.join("Release")).unwrap();
    let mut text = String::new();
    let mut section = "";
    for line in release.lines() {
        if !line.starts_with(' ') {
            section = line.strip_suffix(':').unwrap_or("");
            text.push_str(line);
            text.push('\n');
            continue;
        }
        let path = line.split_whitespace().nth(2).expect("a Release entry");
        if drop.contains(&path) {
            continue;
        }
        match replace.iter().find(|(p, _)| *p == path) {
            Some((_, bytes)) => {
                let hash = match section {
                    "MD5Sum" => hex::encode(Md5::digest(bytes)),
                    "SHA1" => hex::encode(Sha1::digest(bytes)),
                    "SHA256" => hex::encode(Sha256::digest(bytes)),
                    "SHA512" => hex::encode(Sha512::digest(bytes)),
                    other => panic!("unknown hash section {other:?}"),
                };
                text.push_str(&format!(" {hash} {} {path}\n", bytes.len()));
            }
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    for (path, bytes) in replace {
        let file = dists.join(path);
        std::fs::write(&file, bytes).unwrap();
        let dir = file.parent().unwrap().join("by-hash");
        for (algo, name) in [
            ("SHA256", hex::encode(Sha256::digest(bytes))),
            ("SHA512", hex::encode(Sha512::digest(bytes))),
        ] {
            std::fs::create_dir_all(dir.join(algo)).unwrap();
            std::fs::write(dir.join(algo).join(name), bytes).unwrap();
        }
    }
    for path in drop {
        let _ = std::fs::remove_file(dists.join(path));
    }
    let key = env.repo.signing_key();
    std::fs::write(dists.join("Release"), &text).unwrap();
    std::fs::write(
        dists.join("Release.gpg"),
        key.sign_detached_armored(text.as_bytes()).unwrap(),
    )
    .unwrap();
    std::fs::write(dists.join("InRelease"), key.clearsign(&text).unwrap()).unwrap();
}

/// A mirror synced once, and an upstream that has published again since.
fn synced_then_republished() -> Env {
    let mut env = Env::new(FixtureSpec::default().with_packages(20));
    assert_ok(&env.sync());
    env.repo.add_package("aaa-new");
    env.publish();
    env
}

/// Upstream's amd64 Packages text, as published.
fn packages_text(env: &Env) -> Vec<u8> {
    use std::io::Read;
    let gz = env
        .repo
        .dir
        .join("dists/bookworm/main/binary-amd64/Packages.gz");
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text
}

fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// A broken index that Release vouches for fails the mirror with one message naming
/// it, leaving the served tree as it was.
fn a_broken_index_fails_naming_it(replace: &[(&str, Vec<u8>)], drop: &[&str], expect: &[&str]) {
    let env = synced_then_republished();
    republish_indices(&env, replace, drop);
    let was = before(&env);
    let stderr = assert_exit(&env.sync(), 1);
    for e in expect {
        one_clear_failure(&stderr, e);
    }
    unchanged(&env, &was, &[]);
    assert!(
        temp_files(&env.root).is_empty(),
        "{:?}",
        temp_files(&env.root)
    );
}

#[test]
fn a_garbage_packages_gz_that_release_vouches_for_fails_naming_it() {
    // The mirror reads the .gz (cheapest to decompress) of the variants served.
    a_broken_index_fails_naming_it(
        &[("main/binary-amd64/Packages.gz", garbage(4096, 3))],
        &[],
        &["main/binary-amd64/Packages.gz"],
    );
}

#[test]
fn a_garbage_packages_xz_that_release_vouches_for_fails_naming_it() {
    // Without a .gz the .xz is the variant the mirror must read.
    a_broken_index_fails_naming_it(
        &[("main/binary-amd64/Packages.xz", garbage(4096, 5))],
        &["main/binary-amd64/Packages.gz"],
        &["main/binary-amd64/Packages.xz"],
    );
}

#[test]
fn a_truncated_packages_xz_that_release_vouches_for_fails_naming_it() {
    let env = synced_then_republished();
    let xz = mirrorsync_testkit::xz_bytes(&packages_text(&env), 6).unwrap();
    drop(env);
    a_broken_index_fails_naming_it(
        &[("main/binary-amd64/Packages.xz", xz[..xz.len() / 2].to_vec())],
        &["main/binary-amd64/Packages.gz"],
        &["main/binary-amd64/Packages.xz"],
    );
}

#[test]
fn a_packages_xz_with_a_line_over_the_cap_fails_naming_it() {
    let env = synced_then_republished();
    let mut text = packages_text(&env);
    drop(env);
    text.extend_from_slice(b"\nPackage: long\nDescription: ");
    text.extend(std::iter::repeat_n(b'x', (1 << 20) + 1));
    text.push(b'\n');
    let xz = mirrorsync_testkit::xz_bytes(&text, 1).unwrap();
    a_broken_index_fails_naming_it(
        &[("main/binary-amd64/Packages.xz", xz)],
        &["main/binary-amd64/Packages.gz"],
        &[
            "main/binary-amd64/Packages.xz",
            "a line longer than 1048576 bytes",
        ],
    );
}

/// Peak resident memory of a child, from the kernel's accounting when it is reaped.
struct Finished {
    status: ExitStatus,
    elapsed: Duration,
    max_rss_kib: u64,
}

/// Runs `cmd` to the end (killing it past `limit`), with its peak RSS.
// The child is reaped by wait4, which also gives its peak RSS, not by Child::wait.
#[allow(clippy::zombie_processes)]
fn run_measured(mut cmd: Command, limit: Duration) -> Finished {
    let started = Instant::now();
    let child = cmd.spawn().expect("spawning");
    let pid = child.id() as libc::pid_t;
    // VmHWM of the running program, polled: ru_maxrss would also count the pages the
    // child shared with this (big) test process between fork and exec.
    let mut hwm_kib = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
            && let Some(kib) = line.split_whitespace().nth(1).and_then(|v| v.parse().ok())
        {
            hwm_kib = hwm_kib.max(kib);
        }
        let mut status = 0;
        // SAFETY: rusage is plain data the kernel fills in; pid is our own child,
        // which we reap here and nowhere else.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            return Finished {
                status: ExitStatus::from_raw(status),
                elapsed: started.elapsed(),
                max_rss_kib: hwm_kib,
            };
        }
        if started.elapsed() > limit {
            // SAFETY: pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A Release this mirror accepts: at most this many bytes (src/apt/sync.rs,
/// `MAX_RELEASE_BYTES`), as a body of that size announced or sent is refused.
const MAX_RELEASE_BYTES: usize = 16 << 20;

/// What a run must do with a Release of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReleaseVerdict {
    /// Within the cap: verified, parsed and published, as any Release.
    Published,
    /// Over the cap: refused before it is held in memory, the run fails (exit 1)
    /// naming the InRelease and the cap, and nothing is published.
    RefusedOverTheCap,
}

/// Serves a signed InRelease whose SHA256 section also lists `entries` files in a
/// component this mirror does not carry (so nothing is fetched for them) and runs a
/// sync, killed if it is still running after `limit`. The run must end within
/// `limit` with a peak RSS under `max_rss_mib`, and do what `verdict` says: publish
/// that very InRelease with upstream's new package (and verify), or fail with exit
/// 1, one message naming the InRelease and the 16 MiB cap, and the served tree as it
/// was.
fn a_release_listing_many_files(
    entries: usize,
    limit: Duration,
    max_rss_mib: u64,
    verdict: ReleaseVerdict,
) {
    let env = synced_then_republished();
    let was = before(&env);
    let dists = env.repo.dir.join("dists/bookworm");
    let release = std::fs::read_to_string(dists.join("Release")).unwrap();
    let (head, tail) = release.split_once("SHA512:\n").expect("a SHA512 section");
    let mut text = String::with_capacity(release.len() + entries * 100);
    text.push_str(head);
    for i in 0..entries {
        use std::fmt::Write;
        writeln!(
            text,
            " {i:064x} {:>8} junk/binary-amd64/Packages-{i}",
            1000 + i
        )
        .unwrap();
    }
    text.push_str("SHA512:\n");
    text.push_str(tail);
    let signed = env.repo.signing_key().clearsign(&text).unwrap();
    let signed_bytes = signed.len();
    // The case is the one its name says: under the cap, or over it.
    match verdict {
        ReleaseVerdict::Published => assert!(
            signed_bytes <= MAX_RELEASE_BYTES,
            "{signed_bytes} bytes signed: over the {MAX_RELEASE_BYTES}-byte cap"
        ),
        ReleaseVerdict::RefusedOverTheCap => assert!(
            signed_bytes > MAX_RELEASE_BYTES,
            "{signed_bytes} bytes signed: within the {MAX_RELEASE_BYTES}-byte cap"
        ),
    }
    env.server.fault(
        "/dists/bookworm/InRelease",
        Fault::Replace(signed.clone().into_bytes()),
        None,
    );
    // A served Release must match the InRelease; one signing pass is enough here.
    for f in ["Release", "Release.gpg"] {
        env.server
            .fault(&format!("/dists/bookworm/{f}"), Fault::Status(404), None);
    }

    let scratch = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (scratch.path().join("out"), scratch.path().join("err"));
    let mut cmd = mirrorsync(&env.config, &["sync"]);
    cmd.stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let run = run_measured(cmd, limit);
    let stderr = std::fs::read_to_string(&stderr).unwrap();
    println!(
        "Release with {entries} extra entries ({signed_bytes} bytes signed): {} after {:?}, peak RSS {} MiB\n{stderr}",
        run.status,
        run.elapsed,
        run.max_rss_kib / 1024
    );
    assert!(
        run.elapsed < limit,
        "still running after {:?} (killed); stderr:\n{stderr}",
        run.elapsed
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    match verdict {
        ReleaseVerdict::Published => {
            assert_eq!(
                run.status.code(),
                Some(0),
                "a {signed_bytes}-byte Release is within the cap and must be published; \
                 stderr:\n{stderr}"
            );
            // Published: this InRelease, byte for byte, and what it brought.
            let served = std::fs::read(env.served().join("dists/bookworm/InRelease"))
                .expect("the served InRelease");
            assert!(
                served == signed.as_bytes(),
                "the served InRelease is not the {signed_bytes}-byte one upstream signed"
            );
            assert_ne!(env.snapshot_id(), was.snapshot, "no new snapshot");
            let path = env.repo.packages["aaa-new"].filename();
            assert!(env.served().join(&path).exists(), "{path} not served");
            assert_ok(&env.run(&["verify"]));
            assert!(stray_files(&env.root).is_empty());
        }
        ReleaseVerdict::RefusedOverTheCap => {
            assert_eq!(
                run.status.code(),
                Some(1),
                "a {signed_bytes}-byte Release is over the cap and must fail the run; \
                 stderr:\n{stderr}"
            );
            one_clear_failure(&stderr, "fetching InRelease");
            let cap = format!("longer than the {MAX_RELEASE_BYTES} bytes expected");
            assert!(
                stderr.contains("/dists/bookworm/InRelease") && stderr.contains(&cap),
                "stderr does not name both the InRelease and the cap ({cap:?}):\n{stderr}"
            );
            unchanged(&env, &was, &[]);
            assert!(
                temp_files(&env.root).is_empty(),
                "{:?}",
                temp_files(&env.root)
            );
        }
    }
    assert!(
        run.max_rss_kib < max_rss_mib << 10,
        "peak RSS {} MiB",
        run.max_rss_kib / 1024
    );
}

/// Four times the entries of Debian's biggest Release (main/contrib/non-free for ten
/// architectures lists ~2,500 files): 1 MB signed, published.
#[test]
fn a_release_listing_ten_thousand_files_is_handled_within_bounds() {
    a_release_listing_many_files(
        10_000,
        Duration::from_secs(30),
        128,
        ReleaseVerdict::Published,
    );
}

/// Just under the 16 MiB a Release may be: 140,000 files, 15 MB signed. Verified,
/// parsed and published within bounds: the signature check takes time linear in the
/// lines (pgp 0.21's cleartext reader alone took minutes at this size).
#[test]
fn a_release_listing_140_000_files_is_handled_within_bounds() {
    a_release_listing_many_files(
        140_000,
        Duration::from_secs(60),
        256,
        ReleaseVerdict::Published,
    );
}

/// A hostile or broken upstream signs a Release listing a million files (109 MB): the
/// run ends within a minute with a peak RSS under 128 MiB; it is refused as larger than
/// any real Release (16 MiB), naming the InRelease and the cap, and nothing is
/// published. Below that cap the signature check is linear (pgp 0.21's cleartext
/// reader was quadratic in the lines; src/apt/signature.rs splits the cleartext
/// framework itself).
#[test]
fn a_release_listing_a_million_files_is_handled_within_bounds() {
    a_release_listing_many_files(
        1_000_000,
        Duration::from_secs(60),
        128,
        ReleaseVerdict::RefusedOverTheCap,
    );
}

/// Runs a sync under strace, which delivers a SIGKILL exactly as the run makes its
/// first `syscall` (a regex: "unlink" covers unlinkat) on `path`, before it takes
/// effect; asserts the run died of it.
fn sync_killed_at(env: &Env, path: &Path, syscall: &str) {
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-P"])
        .arg(path)
        .arg("-e")
        .arg(format!("trace=/{syscall}"))
        .arg("-e")
        .arg(format!("inject=/{syscall}:signal=KILL"))
        .arg(env!("CARGO_BIN_EXE_mirrorsync"))
        .arg("-c")
        .arg(&env.config)
        .arg("sync")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("strace (scripts/test.sh installs it)");
    assert_eq!(
        status.signal().or(status.code().map(|c| c - 128)),
        Some(9),
        "killed at {syscall} of {}: {status}",
        path.display()
    );
}

/// The power goes while a run clears from the shared pool what only a pruned snapshot
/// listed (the files removed upstream, once grace is over and no kept snapshot names
/// them). strace delivers the SIGKILL exactly as the run unlinks the third such pool
/// file: the new tree is served whole, the snapshots kept for rollback are whole, and
/// the next publish finishes the removal.
#[test]
fn a_run_killed_while_it_clears_the_shared_pool_leaves_every_kept_snapshot_whole() {
    let mut env = Env::new(FixtureSpec::default().with_packages(60));
    env.without_grace();
    assert_ok(&env.sync());
    // Upstream removes packages: the snapshot kept for rollback still lists them.
    let names: Vec<String> = env.repo.packages.keys().take(6).cloned().collect();
    let mut garbage: Vec<String> = names
        .iter()
        .map(|n| env.repo.remove_package(n).unwrap().filename())
        .collect();
    garbage.sort();
    env.publish();
    assert_ok(&env.sync());
    let content = env.root.join(".mirrorsync/debian/content");
    for g in &garbage {
        assert!(content.join(g).is_file(), "{g} is kept for rollback");
    }
    let snapshots_before = snapshot_entries(&env.root);

    // The next publish prunes that snapshot, and with it those files; killed mid-way.
    env.repo.add_package("zz-next");
    env.publish();
    sync_killed_at(&env, &content.join(&garbage[2]), "unlink");
    let left: Vec<bool> = garbage.iter().map(|g| content.join(g).exists()).collect();
    assert_eq!(
        left,
        [false, false, true, true, true, true],
        "killed as the third file went"
    );

    // What is served is the new tree, whole; what is kept is whole too.
    let digests = env.served_digest();
    let problems = client_view_problems(&env.served(), &digests, &env.repo.suite);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(digests.keys().any(|p| p.contains("zz-next")));
    assert_exit(&env.run(&["verify"]), 0);
    assert!(
        snapshot_entries(&env.root).is_superset(&snapshots_before),
        "the pruned snapshot stays until its shared files are gone"
    );

    // The next publish finishes it.
    env.repo.add_package("zz-after");
    env.publish();
    assert_ok(&env.sync());
    for g in &garbage {
        assert!(!content.join(g).exists(), "{g} is gone");
    }
    assert_exit(&env.run(&["verify"]), 0);
    assert!(temp_files(&env.root).is_empty());
}

/// The power goes at the very switch of a run that replaces a rewritten pool file:
/// the new bytes are in the shared pool, the served snapshot still lists the old
/// ones. strace kills the run as it renames the new served symlink into place. The
/// next run, upstream meanwhile put back the old file, does not trust the pool: it
/// fetches the file again, and what is served matches what is listed.
#[test]
fn a_run_killed_at_the_switch_after_replacing_a_pool_file_is_made_good_by_the_next() {
    let mut env = Env::new(FixtureSpec::default().with_packages(20));
    assert_ok(&env.sync());
    let name = env.repo.packages.keys().next().cloned().unwrap();
    let path = env.repo.packages[&name].filename();
    let original = std::fs::read(env.repo.dir.join(&path)).unwrap();
    env.repo.packages.get_mut(&name).unwrap().seed += 1;
    std::fs::remove_file(env.repo.dir.join(&path)).unwrap();
    env.publish();

    sync_killed_at(&env, &env.root.join(".debian.new-link"), "rename");
    assert!(
        env.root.join(".mirrorsync/debian/replacing").is_file(),
        "the replacement was recorded before it went in"
    );

    // Upstream puts the original back (same name, same bytes as published).
    env.repo.packages.get_mut(&name).unwrap().seed -= 1;
    std::fs::remove_file(env.repo.dir.join(&path)).unwrap();
    env.publish();
    assert_eq!(std::fs::read(env.repo.dir.join(&path)).unwrap(), original);
    env.server.clear_log();
    assert_ok(&env.sync());
    assert_eq!(
        env.server.count(&format!("/{path}")),
        1,
        "fetched again, not trusted"
    );
    assert_eq!(std::fs::read(env.served().join(&path)).unwrap(), original);
    assert!(!env.root.join(".mirrorsync/debian/replacing").exists());
    assert_exit(&env.run(&["verify"]), 0);
    let digests = env.served_digest();
    let problems = client_view_problems(&env.served(), &digests, &env.repo.suite);
    assert!(problems.is_empty(), "{problems:#?}");
}
