//! Metadata at Debian scale: parsing a 65,000-stanza Packages.xz (about 50 MB
//! uncompressed, shaped like Debian's main/binary-amd64) into the pool plan, and
//! planning it against a published manifest of the same size. Criterion, one core.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mirrorsync::apt::packages::{IndexKind, pool_files_of};
use mirrorsync::manifest::{Entry, Manifest};
use mirrorsync::plan::{Wanted, WantedSet, plan_owned};
use mirrorsync_testkit::{debian_like_packages, xz_bytes};

const STANZAS: usize = 65_000;

fn metadata(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = debian_like_packages(STANZAS, 7);
    let xz_path = dir.path().join("Packages.xz");
    std::fs::write(&xz_path, xz_bytes(text.as_bytes(), 6).expect("xz")).expect("write");
    let plain_path = dir.path().join("Packages");
    std::fs::write(&plain_path, &text).expect("write");
    eprintln!(
        "Packages: {STANZAS} stanzas, {:.1} MB, {:.1} MB as .xz",
        text.len() as f64 / 1e6,
        std::fs::metadata(&xz_path).expect("stat").len() as f64 / 1e6
    );

    let mut g = c.benchmark_group("packages");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.bench_function("parse 65k stanzas from .xz", |b| {
        b.iter(|| {
            let mut n = 0u64;
            pool_files_of(&xz_path, IndexKind::Packages, "bench", |f| {
                n += f.size;
            })
            .expect("parse");
            black_box(n)
        })
    });
    g.bench_function("parse 65k stanzas, uncompressed", |b| {
        b.iter(|| {
            let mut n = 0u64;
            pool_files_of(&plain_path, IndexKind::Packages, "bench", |f| {
                n += f.size;
            })
            .expect("parse");
            black_box(n)
        })
    });

    // The published snapshot holds the same pool; 2% of it changed upstream.
    let mut wanted = Vec::with_capacity(STANZAS);
    pool_files_of(&plain_path, IndexKind::Packages, "bench", |f| {
        wanted.push(Wanted {
            source: f.path.clone(),
            path: f.path,
            size: f.size,
            sha256: f.sha256,
        })
    })
    .expect("parse");
    let mut published = Manifest::default();
    for (i, w) in wanted.iter().enumerate() {
        let mut sha256 = w.sha256;
        if i % 50 == 0 {
            sha256[0] ^= 1;
        }
        published.files.insert(
            w.path.clone(),
            Entry {
                size: w.size,
                sha256,
                gone_since: None,
            },
        );
    }
    g.bench_function("plan 65k pool files against a 65k manifest", |b| {
        b.iter(|| {
            let mut set = WantedSet::default();
            for w in &wanted {
                set.insert(w.clone()).expect("no conflicts");
            }
            black_box(plan_owned(set.iter().cloned(), &published).len())
        })
    });
    g.bench_function("parse .xz and plan, end to end", |b| {
        b.iter(|| {
            let mut set = WantedSet::default();
            pool_files_of(&xz_path, IndexKind::Packages, "bench", |f| {
                let _ = set.insert(Wanted {
                    source: f.path.clone(),
                    path: f.path,
                    size: f.size,
                    sha256: f.sha256,
                });
            })
            .expect("parse");
            black_box(plan_owned(set.iter().cloned(), &published).len())
        })
    });
    g.finish();
}

criterion_group!(benches, metadata);
criterion_main!(benches);
