#!/usr/bin/env bash
# The benchmarks, from a fresh clone, in one command:
#  - benches/sync.rs: end-to-end table (cold, no-op, delta, --bwlimit) against a plain
#    parallel fetch of the same files, peak RSS from /usr/bin/time -v;
#  - benches/metadata.rs: Packages parsing and planning at Debian scale (criterion),
#    and hard-linking a 100,000-file tree;
#  - benches/images.rs: image trees: a 200 MB download cut at 40% and resumed
#    (bytes sent, overhead), and a crawl of 5,000 files in each listing style;
#  - benches/probe.rs: `mirrorsync probe` of 50 loopback mirrors at once: all healthy,
#    IPv6 refused on every one, and 5 that accept and never answer (--timeout 2s);
#  - benches/signature.rs: a 20 MB InRelease with 1 and 16 signatures, oversized and
#    over-many signatures refused;
#  - benches/scale.rs: cold, no-op and a 3,000-stanza delta at 30,000 and 300,000
#    packages: time, peak RSS and disk writes (BENCH_SCALE_SIZES, BENCH_SCALE_REPLACE);
#  - scripts/mutants.sh: mutation testing of the promise-guarding modules (installs
#    cargo-mutants; an hour or more on two cores).
# Sizes: BENCH_PACKAGES, BENCH_MIN_SIZE, BENCH_MAX_SIZE, BENCH_CONCURRENCY;
# BENCH_IMAGE_MB, BENCH_CRAWL_DIRS, BENCH_CRAWL_FILES for the image trees;
# BENCH_MIRRORS for the probe.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/time ] && [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
cargo bench --bench sync
cargo bench --bench metadata
cargo bench --bench link
cargo bench --bench images
cargo bench --bench probe
cargo bench --bench s3
cargo bench --bench signature
cargo bench --bench scale
scripts/mutants.sh
