//! A stable-Rust stand-in for libFuzzer, for hosts without a nightly toolchain: runs
//! each target's body over inputs mutated from seeds (the captures in
//! `../tests/data` plus a few made here) with a seeded xorshift, for a given time per
//! target. No coverage feedback; mutations stack and one input in 32 joins the pool,
//! so they compound. A panic is a finding: its input is written to
//! `smoke-findings/<target>-<n>`, its message printed, and the run goes on.
//!
//! ```sh
//! cargo run --release --bin smoke -- [seconds per target] [seed] [target...]
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mirrorsync_fuzz::TARGETS;
use mirrorsync_testkit::XorShift;

/// Inputs are kept below this, as libFuzzer's default -max_len is 4096 only for
/// empty corpora; our seeds are bigger.
const MAX_INPUT: usize = 1 << 20;

const DICTIONARY: &[&str] = &[
    "..",
    "%2e%2e",
    "%2F",
    "/",
    "\n",
    "\n\n",
    "\r\n",
    " ",
    "\t",
    ":",
    "SHA256:\n",
    "MD5Sum:\n",
    "SHA512:\n",
    "Filename: ",
    "Size: ",
    "SHA256: ",
    "Directory: ",
    "Checksums-Sha256:\n ",
    "Date: Sat, 01 Jan 2000 00:00:00 UTC\n",
    "Valid-Until: ",
    "<a href=\"",
    "\">",
    "</a>",
    "<pre>",
    "<script>",
    "<title>",
    "&amp;",
    "&#x2f;",
    "?C=N;O=D",
    "http://other.invalid/",
    "{\"name\":\"",
    "\",\"type\":\"file\",\"size\":",
    "\"url\":\"",
    "\"subitems\":[",
    "\"subitems_url\":\"",
    "\"image_download_size\":",
    "\"image_download_sha256\":\"",
    "\"os_list\":[",
    "18446744073709551616",
    "-1",
    "1e999",
    "\\\\",
    "\\n",
    "SHA256 (",
    ") = ",
    "*",
    "\u{feff}",
    "\u{fffd}",
    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n",
    "-----BEGIN PGP SIGNATURE-----\n",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
];

fn mutate(rng: &mut XorShift, input: &mut Vec<u8>, pool: &[Vec<u8>]) {
    let at = |rng: &mut XorShift, v: &Vec<u8>| rng.index(v.len() + 1);
    match rng.index(10) {
        0 if !input.is_empty() => {
            let i = rng.index(input.len());
            input[i] ^= 1 << rng.index(8);
        }
        1 if !input.is_empty() => {
            let i = rng.index(input.len());
            input[i] = b"\0\xff\n :/.%\"<>\\\r\t{}[],0159-*"[rng.index(24)];
        }
        2 => {
            let i = at(rng, input);
            let n = 1 + rng.index(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(i..i, bytes);
        }
        3 if !input.is_empty() => {
            let i = rng.index(input.len());
            let n = 1 + rng.index((input.len() - i).min(64));
            input.drain(i..i + n);
        }
        4 if !input.is_empty() => {
            let i = rng.index(input.len());
            let n = 1 + rng.index((input.len() - i).min(256));
            let chunk = input[i..i + n].to_vec();
            let j = at(rng, input);
            input.splice(j..j, chunk);
        }
        5 | 6 => {
            let token = DICTIONARY[rng.index(DICTIONARY.len())].as_bytes();
            let i = at(rng, input);
            input.splice(i..i, token.iter().copied());
        }
        7 => {
            let other = &pool[rng.index(pool.len())];
            let i = at(rng, input);
            let j = rng.index(other.len() + 1);
            input.truncate(i);
            input.extend_from_slice(&other[j..]);
        }
        8 if !input.is_empty() => {
            let i = rng.index(input.len());
            input.truncate(i);
        }
        _ if !input.is_empty() => {
            // Repeat a piece many times: long lines, many entries.
            let i = rng.index(input.len());
            let n = 1 + rng.index((input.len() - i).min(128));
            let chunk = input[i..i + n].to_vec();
            let times = 1 + rng.index(2000);
            let j = at(rng, input);
            let repeated: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
            input.splice(j..j, repeated);
        }
        _ => input.extend_from_slice(DICTIONARY[rng.index(DICTIONARY.len())].as_bytes()),
    }
    input.truncate(MAX_INPUT);
}

fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e != "md") && p.is_file() {
                out.extend(std::fs::read(&p).ok());
            }
        }
    }
    out
}

/// Seeds per target: real captures where the repository has them, else made here.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let mut out: Vec<Vec<u8>> = match target {
        "release" => {
            let mut v: Vec<Vec<u8>> = std::fs::read(data.join("debian/bookworm-updates_InRelease"))
                .into_iter()
                .collect();
            v.push(
                b"Origin: X\nSuite: s\nDate: Sat, 01 Jan 2000 00:00:00 UTC\nAcquire-By-Hash: yes\nArchitectures: amd64\nComponents: main\nMD5Sum:\n 00000000000000000000000000000000 1 main/binary-amd64/Packages\nSHA256:\n e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 1 main/binary-amd64/Packages\n"
                    .to_vec(),
            );
            v
        }
        "packages" => {
            let mut packages = vec![0u8];
            packages.extend_from_slice(mirrorsync_testkit::debian_like_packages(8, 7).as_bytes());
            let sources = b"\x01Package: hello\nDirectory: pool/main/h/hello\nChecksums-Sha256:\n 35b1508eeee9c1dfba798c4c04304ef0f266990f936a51f165571edf53325cbc 1183 hello_2.10-3.dsc\n 0000000000000000000000000000000000000000000000000000000000000000 725946 hello_2.10.orig.tar.gz\n\n".to_vec();
            vec![packages, sources]
        }
        "listing" => read_dir_files(&data.join("listings"))
            .into_iter()
            .map(|body| {
                let ct = if body.first() == Some(&b'[') { 2 } else { 1 };
                let mut v = vec![ct];
                v.extend(body);
                v
            })
            .collect(),
        "sums" => vec![
            b"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  a.img.xz\n9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 *./b c.img\n\\60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752  x\\ny\\\\z\nSHA256 (d (1).iso) = 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752\n# comment\n\r\n".to_vec(),
            b"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n".to_vec(),
        ],
        "oslist" => read_dir_files(&data.join("oslist")),
        other => panic!("no seeds for {other}"),
    };
    out.retain(|s| !s.is_empty());
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(60, |s| s.parse().expect("seconds"));
    let seed: u64 = args
        .next()
        .map_or(0x5eed_f022, |s| s.parse().expect("seed"));
    let only: Vec<String> = args.collect();
    let findings_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("smoke-findings");

    std::panic::set_hook(Box::new(|info| {
        let msg = match info.location() {
            Some(l) => format!(
                "{} at {}:{}",
                info.payload_as_str().unwrap_or("?"),
                l.file(),
                l.line()
            ),
            None => info.payload_as_str().unwrap_or("?").to_string(),
        };
        LAST_PANIC.with(|p| *p.borrow_mut() = msg);
    }));

    let mut total_findings = 0;
    for (name, body) in TARGETS {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let mut rng = XorShift::new(seed);
        let mut pool = seeds(name);
        let seed_count = pool.len();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let mut execs = 0u64;
        let mut panics: BTreeMap<String, (u64, Vec<u8>)> = BTreeMap::new();
        let mut slowest = (Duration::ZERO, 0usize);
        // The seeds as they are, first.
        let mut queue: Vec<Vec<u8>> = pool.clone();
        while Instant::now() < deadline {
            let input = queue.pop().unwrap_or_else(|| {
                let mut input = pool[rng.index(pool.len())].clone();
                for _ in 0..1 + rng.index(6) {
                    mutate(&mut rng, &mut input, &pool);
                }
                input
            });
            let t = Instant::now();
            let result = std::panic::catch_unwind(|| body(&input));
            let took = t.elapsed();
            execs += 1;
            if took > slowest.0 {
                slowest = (took, input.len());
            }
            if result.is_err() {
                let msg = LAST_PANIC.with(|p| p.borrow().clone());
                let entry = panics.entry(msg).or_insert((0, input.clone()));
                entry.0 += 1;
                if input.len() < entry.1.len() {
                    entry.1 = input.clone();
                }
            } else if rng.index(32) == 0 && pool.len() < 4096 {
                pool.push(input);
            }
        }
        println!(
            "{name}: {execs} executions in {:.0?} from {seed_count} seeds (seed {seed}); slowest input {:?} ({} bytes); {} distinct panics",
            started.elapsed(),
            slowest.0,
            slowest.1,
            panics.len()
        );
        for (i, (msg, (count, input))) in panics.iter().enumerate() {
            total_findings += 1;
            std::fs::create_dir_all(&findings_dir).expect("creating smoke-findings");
            let file = findings_dir.join(format!("{name}-{i}"));
            std::fs::write(&file, input).expect("writing a finding");
            let shown: String = String::from_utf8_lossy(&input[..input.len().min(400)])
                .escape_debug()
                .collect();
            println!(
                "  PANIC x{count}: {msg}\n    smallest input ({} bytes, saved to {}): \"{shown}\"",
                input.len(),
                file.display()
            );
        }
    }
    if total_findings > 0 {
        std::process::exit(1);
    }
}
