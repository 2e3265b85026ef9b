//! Publishing into object storage: a real three-node Garage cluster on loopback,
//! read back the way clients read a bucket-served mirror, through the website
//! endpoint (stock apt-get among them).

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mirrorsync::apt::packages::{IndexKind, read_index};
use mirrorsync::apt::release::Release;
use mirrorsync::apt::signature::{Keyring, verify_clearsigned};
use mirrorsync::manifest::Manifest;
use mirrorsync::relpath::RelPath;
use mirrorsync::s3::record::{BucketRecord, RECORD_KEY};
use mirrorsync_testkit::FixtureSpec;
use mirrorsync_testkit::garage::GarageCluster;
use sha2::{Digest, Sha256};

use crate::live::Apt;
use crate::support::*;

const BUCKET: &str = "mirror";

/// An upstream, a local mirror root and a bucket the mirror also publishes to.
struct Bucketed {
    env: Env,
    garage: GarageCluster,
    _dir: tempfile::TempDir,
}

impl Bucketed {
    fn new(spec: FixtureSpec, extra: &str) -> Bucketed {
        let dir = tempfile::tempdir().unwrap();
        let garage = GarageCluster::start(&dir.path().join("garage"), BUCKET)
            .expect("starting the Garage cluster");
        // Credentials in a file of their own, as an operator keeps them.
        let creds = dir.path().join("s3-credentials");
        garage.write_credentials(&creds).unwrap();
        let env = Env::with_config(
            spec,
            &format!(
                "publish = \"s3://{BUCKET}/debian\"\ns3_endpoint = \"{}\"\ns3_region = \"{}\"\ns3_credentials = \"{}\"\n{extra}",
                garage.s3_endpoint(),
                garage.region(),
                creds.display()
            ),
        );
        Bucketed {
            env,
            garage,
            _dir: dir,
        }
    }

    /// GET through the bucket's website endpoint, as a web client would.
    fn web_get(&self, path: &str) -> (u16, Vec<u8>) {
        web_get(&self.garage, path)
    }

    fn puts(&self) -> u64 {
        self.garage.s3_requests("PutObject").expect("PUT count")
    }

    fn local_manifest(&self, id: &str) -> Manifest {
        Manifest::load(
            &self
                .env
                .root
                .join(".mirrorsync/debian/snapshots")
                .join(format!("{id}.manifest")),
        )
        .unwrap()
    }

    fn sync_json(&self) -> serde_json::Value {
        let out = self.env.run(&["sync", "--json"]);
        assert_ok(&out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0].clone()
    }
}

fn web_get(garage: &GarageCluster, path: &str) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addr = garage.web_addr(0);
        let client = reqwest::Client::builder()
            .resolve(&garage.web_host(), addr)
            .build()
            .unwrap();
        let url = format!("http://{}:{}/debian/{path}", garage.web_host(), addr.port());
        let resp = client.get(&url).send().await.expect("website endpoint");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap().to_vec())
    })
}

/// What apt would find reading the bucket now: the signed InRelease, the
/// indices it lists (by hash, as apt asks for them), and every pool file those
/// list, all present with the right bytes. Returns the number of pool files, or
/// None when the bucket has no InRelease yet.
fn assert_bucket_consistent(garage: &GarageCluster, keyring: &Path) -> Option<usize> {
    let (status, inrelease) = web_get(garage, "dists/bookworm/InRelease");
    if status == 404 {
        return None;
    }
    assert_eq!(
        status,
        200,
        "InRelease: {}",
        String::from_utf8_lossy(&inrelease)
    );
    let keyring = Keyring::from_file(keyring).unwrap();
    let verified = verify_clearsigned(&keyring, &inrelease).expect("InRelease verifies");
    let release = Release::parse(&verified.text).unwrap();
    assert!(release.acquire_by_hash);
    let mut pool = HashMap::new();
    for (path, f) in &release.files {
        let p = path.as_str();
        if !p.ends_with("/Packages.xz") {
            continue;
        }
        let sha = f.sha256.expect("SHA256 listed");
        let dir = p.rsplit_once('/').unwrap().0;
        let (status, bytes) = web_get(
            garage,
            &format!("dists/bookworm/{dir}/by-hash/SHA256/{}", hex::encode(sha)),
        );
        assert_eq!(status, 200, "{p} by hash is missing from the bucket");
        assert_eq!(Sha256::digest(&bytes).as_slice(), sha, "{p} by hash");
        let reader = std::io::BufReader::new(liblzma::read::XzDecoder::new(&bytes[..]));
        read_index(reader, IndexKind::Packages, p, Path::new(p), |f| {
            pool.insert(f.path.as_str().to_string(), (f.size, f.sha256));
        })
        .unwrap();
    }
    assert!(!pool.is_empty());
    for (path, (size, sha)) in &pool {
        let (status, bytes) = web_get(garage, path);
        assert_eq!(status, 200, "{path} is listed but missing from the bucket");
        assert_eq!(bytes.len() as u64, *size, "{path}");
        assert_eq!(Sha256::digest(&bytes).as_slice(), sha, "{path}");
    }
    Some(pool.len())
}

#[test]
fn a_published_repository_is_served_from_the_bucket_to_stock_apt_get() {
    let mut b = Bucketed::new(FixtureSpec::default().with_packages(30), "");
    let report = b.sync_json();
    let bucket = &report["bucket"];
    let id = report["snapshot"].as_str().unwrap().to_string();
    let manifest = b.local_manifest(&id);
    assert_eq!(
        bucket["uploaded"],
        manifest.files.len() as u64,
        "{report:#}"
    );
    assert_eq!(bucket["snapshot"], id.as_str());

    // Every file of the local snapshot, byte for byte, through the website endpoint.
    for (path, e) in &manifest.files {
        let (status, bytes) = b.web_get(path.as_str());
        assert_eq!(status, 200, "{path}");
        assert_eq!(bytes.len() as u64, e.size, "{path}");
        assert_eq!(Sha256::digest(&bytes).as_slice(), e.sha256, "{path}");
    }
    assert!(assert_bucket_consistent(&b.garage, &b.env.repo.keyring).is_some());

    // Stock apt-get, talking to the website endpoint as its HTTP proxy: it sends
    // the bucket's host name, which is how the endpoint picks the bucket.
    let web = b.garage.web_addr(0);
    let apt = Apt::with_options(
        &format!(
            "deb [signed-by={}] http://{}/debian bookworm main contrib",
            b.env.repo.keyring.display(),
            b.garage.web_host()
        ),
        &[format!("Acquire::http::Proxy=http://{web}/")],
    );
    apt.must(&["update"]);
    let pkgs = crate::live::packages_for_amd64(&b.env, 3);
    let mut args = vec!["download"];
    args.extend(pkgs.iter().map(|(n, _)| n.as_str()));
    apt.must(&args);
    for (_, filename) in &pkgs {
        let base = Path::new(filename).file_name().unwrap().to_string_lossy();
        assert_eq!(
            apt.downloaded(&base),
            std::fs::read(b.env.repo.dir.join(filename)).unwrap()
        );
    }

    // The mirror-list probe, pointed at the website endpoint, finds it healthy and
    // as fresh as upstream. A bucket has no directory listings, so the suite is named.
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .args([
            "probe",
            &format!("http://{}:{}/debian/", b.garage.web_host(), web.port()),
            "--resolve",
            &format!("{}={}", b.garage.web_host(), web.ip()),
            "--upstream",
            &b.env.server.url(),
            "--keyring",
            &b.env.repo.keyring.display().to_string(),
            "--suite",
            "bookworm",
            "--json",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_eq!(
        doc["mirrors"][0]["summary"], "healthy (IPv4 only)",
        "{doc:#}"
    );
    assert_eq!(doc["mirrors"][0]["families"][0]["freshness"], "up to date");

    // An upstream change reaches apt through the bucket too.
    let name = pkgs[0].0.clone();
    b.env.repo.upgrade_package(&name);
    b.env.publish();
    b.sync_json();
    apt.must(&["update"]);
    apt.must(&["download", &name]);
    let new_file = b.env.repo.packages[&name].filename();
    let base = Path::new(&new_file).file_name().unwrap().to_string_lossy();
    assert_eq!(
        apt.downloaded(&base),
        std::fs::read(b.env.repo.dir.join(&new_file)).unwrap()
    );
}

#[test]
fn a_delta_uploads_only_the_changed_objects_and_a_no_op_none() {
    let mut b = Bucketed::new(FixtureSpec::default().with_packages(40), "");
    let first = b.sync_json();
    let old = b.local_manifest(first["snapshot"].as_str().unwrap());

    // Nothing changed upstream: the bucket is not even asked.
    let puts = b.puts();
    let again = b.sync_json();
    assert_eq!(again["outcome"], "unchanged");
    assert!(again["bucket"].is_null(), "{again:#}");
    assert_eq!(b.puts(), puts);

    let names: Vec<String> = b.env.repo.packages.keys().cloned().collect();
    for n in names.iter().take(3) {
        b.env.repo.upgrade_package(n);
    }
    b.env.repo.remove_package(&names[10]);
    b.env.repo.add_package("zz-new");
    b.env.publish();
    let puts = b.puts();
    let delta = b.sync_json();
    let new = b.local_manifest(delta["snapshot"].as_str().unwrap());
    let changed = new
        .files
        .iter()
        .filter(|(p, e)| {
            old.files
                .get(*p)
                .is_none_or(|o| (o.size, o.sha256) != (e.size, e.sha256))
        })
        .count() as u64;
    let gone = old
        .files
        .keys()
        .filter(|p| !new.files.contains_key(*p))
        .count() as u64;
    let bucket = &delta["bucket"];
    assert_eq!(bucket["uploaded"], changed, "{delta:#}");
    assert_eq!(bucket["deleted"], gone);
    assert_eq!(bucket["unchanged"], new.files.len() as u64 - changed);
    // Garage's own count: the changed objects plus the two writes of the bucket
    // record (in-progress, then complete), and nothing else.
    let garage_puts = b.puts() - puts;
    assert_eq!(garage_puts, changed + 2);
    assert_eq!(bucket["put_requests"], garage_puts);
    // The removed package is still served (grace), and what apt sees is whole.
    assert!(gone < changed);
    assert!(assert_bucket_consistent(&b.garage, &b.env.repo.keyring).is_some());
}

/// Starts `mirrorsync sync` in the background and returns once the bucket has
/// taken `after` more PUTs from it, its stderr captured.
fn sync_until_uploads(b: &Bucketed, after: u64) -> Child {
    let start = b.puts();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorsync"))
        .arg("-c")
        .arg(&b.env.config)
        .arg("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while b.puts() < start + after {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sync ended ({status}) before {after} uploads: make the delta larger");
        }
        assert!(Instant::now() < deadline, "uploads did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// SIGKILLs a sync once the bucket has taken `after` more PUTs from it; returns
/// how it ended.
fn kill_during_upload(b: &Bucketed, after: u64) -> ExitStatus {
    let mut child = sync_until_uploads(b, after);
    child.kill().unwrap();
    child.wait().unwrap()
}

#[test]
fn a_publish_killed_midway_leaves_the_bucket_consistent_and_the_next_run_finishes_it() {
    let mut b = Bucketed::new(
        FixtureSpec::default().with_packages(20),
        "concurrency = 1\n",
    );
    let first = b.sync_json();
    let old = b.local_manifest(first["snapshot"].as_str().unwrap());
    let before = assert_bucket_consistent(&b.garage, &b.env.repo.keyring).unwrap();
    let listed_before = list_bucket(&b.garage);

    // A big delta upstream; the run is killed while the bucket takes it: once
    // Garage has counted 120 of its PUTs, not after some time.
    for i in 0..300 {
        b.env.repo.add_package(&format!("zz-added-{i:03}"));
    }
    b.env.publish();
    let puts = b.puts();
    let started = Instant::now();
    let killed = kill_during_upload(&b, 120);
    let killed_after = started.elapsed();
    assert_eq!(killed.signal(), Some(libc::SIGKILL), "{killed}");
    let killed_puts = b.puts() - puts;
    // Readers still get the previous snapshot, whole.
    assert_eq!(
        assert_bucket_consistent(&b.garage, &b.env.repo.keyring),
        Some(before)
    );

    // What the killed run had to upload: the local snapshot it was publishing
    // (published locally before the bucket is touched) against the bucket's.
    let id = b.env.snapshot_id().unwrap();
    assert_ne!(first["snapshot"], id.as_str());
    let new = b.local_manifest(&id);
    let delta: HashSet<&str> = new
        .files
        .iter()
        .filter(|(p, e)| {
            old.files
                .get(*p)
                .is_none_or(|o| (o.size, o.sha256) != (e.size, e.sha256))
        })
        .map(|(p, _)| p.as_str())
        .collect();
    assert!(delta.len() > 300, "{}", delta.len());
    // What of it had landed when the kill came, by a LIST of the bucket: objects
    // new or changed since before the killed run, every one of them in the delta.
    let listed = list_bucket(&b.garage);
    let changed: Vec<&str> = listed
        .iter()
        .filter(|(k, v)| listed_before.get(*k) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    for k in &changed {
        assert!(
            delta.contains(k),
            "{k} changed in the bucket but is no upload"
        );
    }
    let landed = changed.len() as u64;
    let delta = delta.len() as u64;
    // Killed midway: some of the delta was there, not all of it.
    assert!(0 < landed && landed < delta, "{landed} of {delta} landed");
    // The record it left says the publish did not finish; of what landed it lists
    // only what a checkpoint (every 30 s) caught, so none unless the run was slow.
    let record = bucket_record(&b.garage);
    assert!(!record.complete);
    let recorded = changed
        .iter()
        .filter(|k| {
            let e = &new.files[&RelPath::new(k).unwrap()];
            record.held.get(&RelPath::new(k).unwrap()) == Some(&(e.size, e.sha256))
        })
        .count() as u64;
    let checkpoints = killed_after.as_secs() / 30;
    assert!(recorded == 0 || checkpoints > 0, "{recorded} recorded");
    // Garage's own count agrees: the in-progress record (and any checkpoint),
    // every landed object, and at most the one upload in flight (concurrency 1)
    // when the kill came.
    assert!(
        (landed + 1..=landed + 2 + checkpoints).contains(&killed_puts),
        "Garage took {killed_puts} PUTs; {landed} objects landed"
    );

    // The next run (upstream unchanged by now) finishes the bucket, asking the
    // objects that landed instead of uploading them again.
    let puts = b.puts();
    let report = b.sync_json();
    let bucket = &report["bucket"];
    assert_eq!(bucket["snapshot"], id.as_str(), "{report:#}");
    assert!(bucket["checked"].as_u64().unwrap() > 0, "{report:#}");
    // Each landed object the record lacks asked once, and none of what landed
    // uploaded again: exactly the rest of the delta goes up.
    assert_eq!(bucket["checked"], landed - recorded, "{report:#}");
    let uploaded = bucket["uploaded"].as_u64().unwrap();
    assert!(uploaded > 0 && uploaded + 100 < 600, "{report:#}");
    assert_eq!(
        uploaded,
        delta - landed,
        "delta {delta}, {landed} landed before the kill: {report:#}"
    );
    // Garage's count: those uploads plus the bucket record's writes (in progress,
    // complete, and a checkpoint per 30 s of uploading), nothing else.
    let garage_puts = b.puts() - puts;
    assert_eq!(garage_puts, bucket["put_requests"].as_u64().unwrap());
    let checkpoints = (bucket["seconds"].as_f64().unwrap() / 30.0) as u64;
    assert!(
        (delta - landed + 2..=delta - landed + 2 + checkpoints).contains(&garage_puts),
        "Garage took {garage_puts} PUTs for a delta of {delta} of which {landed} had landed: {report:#}"
    );
    assert_eq!(
        assert_bucket_consistent(&b.garage, &b.env.repo.keyring),
        Some(before + 300)
    );

    // And the served copy is exactly the local snapshot: `verify --url` says so.
    let web = b.garage.web_addr(0);
    let url = format!("http://{}:{}/debian/", b.garage.web_host(), web.port());
    let resolve = format!("{}={}", b.garage.web_host(), web.ip());
    let out = b
        .env
        .run(&["verify", "debian", "--url", &url, "--resolve", &resolve]);
    assert_ok(&out);
}

#[test]
fn a_node_lost_during_a_publish_still_leaves_a_consistent_bucket() {
    let mut b = Bucketed::new(
        FixtureSpec::default().with_packages(20),
        "concurrency = 2\n",
    );
    b.sync_json();
    for i in 0..200 {
        b.env.repo.add_package(&format!("zz-added-{i:03}"));
    }
    b.env.publish();
    let child = sync_until_uploads(&b, 50);
    // Node 2 dies; node 0 (the endpoint) and node 1 still make a write quorum.
    b.garage.stop_node(2).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Failing is allowed, but cleanly: said, and the bucket still whole.
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("s3://mirror/debian/"), "{stderr}");
    }
    assert!(assert_bucket_consistent(&b.garage, &b.env.repo.keyring).is_some());
    b.garage.start_node(2).unwrap();
    let report = b.sync_json();
    let _ = report;
    assert_eq!(
        assert_bucket_consistent(&b.garage, &b.env.repo.keyring),
        Some(220)
    );
}

#[test]
fn damage_in_the_bucket_is_found_through_the_website_and_repaired() {
    let b = Bucketed::new(FixtureSpec::default().with_packages(10), "");
    b.sync_json();
    let web = b.garage.web_addr(0);
    let url = format!("http://{}:{}/debian/", b.garage.web_host(), web.port());
    let resolve = format!("{}={}", b.garage.web_host(), web.ip());
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "debian", "--url", &url, "--resolve", &resolve];
        args.extend_from_slice(extra);
        b.env.run(&args)
    };
    assert_ok(&verify(&[]));

    // Someone overwrites a pool file in the bucket behind mirrorsync's back.
    let pool = b.env.repo.pool_files();
    let victim = pool[0].0.trim_start_matches('/').to_string();
    overwrite_object(&b.garage, &format!("debian/{victim}"), b"not a package");
    let out = verify(&[]);
    let stderr = assert_exit(&out, 4);
    assert!(stderr.contains(&victim), "{stderr}");

    let out = verify(&["--repair"]);
    assert_ok(&out);
    assert_ok(&verify(&[]));
    assert!(assert_bucket_consistent(&b.garage, &b.env.repo.keyring).is_some());
}

/// A plain S3 client of the bucket, as another tool would have.
fn s3_client(garage: &GarageCluster) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(garage.bucket())
        .with_region(garage.region())
        .with_endpoint(garage.s3_endpoint())
        .with_allow_http(true)
        .with_access_key_id(garage.key_id())
        .with_secret_access_key(garage.secret_key())
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What a LIST of the mirror's prefix shows, the bucket record left out: each
/// object's path under the prefix, with its size and ETag.
fn list_bucket(garage: &GarageCluster) -> HashMap<String, (u64, Option<String>)> {
    use futures_util::TryStreamExt;
    use object_store::ObjectStore;
    let store = s3_client(garage);
    let prefix = object_store::path::Path::from("debian");
    let listed: Vec<object_store::ObjectMeta> = current_thread()
        .block_on(store.list(Some(&prefix)).try_collect())
        .expect("listing the bucket");
    listed
        .into_iter()
        .filter_map(|m| {
            let rel = m.location.as_ref().strip_prefix("debian/")?.to_string();
            (!rel.starts_with(".mirrorsync/")).then_some((rel, (m.size, m.e_tag)))
        })
        .collect()
}

/// The bucket record, as the last run left it.
fn bucket_record(garage: &GarageCluster) -> BucketRecord {
    use object_store::ObjectStore;
    let store = s3_client(garage);
    let key = object_store::path::Path::parse(format!("debian/{RECORD_KEY}")).unwrap();
    let bytes = current_thread()
        .block_on(async {
            store
                .get_opts(&key, Default::default())
                .await?
                .bytes()
                .await
        })
        .expect("reading the bucket record");
    BucketRecord::parse(&String::from_utf8_lossy(&bytes), RECORD_KEY).unwrap()
}

/// Writes an object with plain S3 credentials, as another tool would.
fn overwrite_object(garage: &GarageCluster, key: &str, bytes: &'static [u8]) {
    use object_store::ObjectStore;
    let store = s3_client(garage);
    current_thread()
        .block_on(store.put_opts(
            &object_store::path::Path::parse(key).unwrap(),
            bytes.into(),
            Default::default(),
        ))
        .unwrap();
}
