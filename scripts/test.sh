#!/usr/bin/env bash
# Installs what the tests need (gpgv and sqv to cross-check our signature verdicts, gpg
# to make the keys and signatures they judge, nginx and apt for the real-client tests,
# systemd-analyze to check the example units, strace to kill a run at an exact system
# call, zstd/bzip2/lzma to make indices in every compression apt reads, Garage for the
# S3 publish tests, dpkg-dev, apt-utils, reprepro and aptly to make repositories the
# way vendors do, man-db and file to check the Debian package, Chromium to look at the
# status page), then
# runs the whole test suite, lints included.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in gpgv:gpgv gpg:gnupg sqv:sqv nginx:nginx apt-get:apt systemd-analyze:systemd strace:strace zstd:zstd bzip2:bzip2 lzma:xz-utils \
    dpkg-scanpackages:dpkg-dev apt-ftparchive:apt-utils reprepro:reprepro aptly:aptly \
    man:man-db file:file flock:util-linux runuser:util-linux chromium:chromium; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if ((${#need[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: missing ${need[*]}; run as root or install them" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Garage (S3 store, crates/testkit/src/garage.rs) is not packaged by Debian: build it once with
# cargo and cache the binary outside the tree, so later runs and CI caches reuse it.
# Only lmdb and metrics (and the bundled C libraries it links): the fixture needs nothing
# else, and it keeps the build short.
garage_version=2.5.0
tools="${MIRRORSYNC_TOOLS:-$HOME/.cache/mirrorsync-tools}"
export PATH="$tools/bin:$PATH"
if ! command -v garage >/dev/null 2>&1; then
    # `garage --version` prints e.g. "garage cargo:2.5.0 [features: ...]".
    if [[ "$("$HOME/.cargo/bin/garage" --version 2>/dev/null)" == *":$garage_version "* ]]; then
        mkdir -p "$tools/bin"
        ln -sf "$HOME/.cargo/bin/garage" "$tools/bin/garage"
    else
        echo "scripts/test.sh: building Garage $garage_version into $tools (once)" >&2
        # opt-level 1: it is a test fixture, and a lighter optimisation builds sooner.
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
            cargo install garage --version "$garage_version" --locked --quiet \
            --no-default-features --features bundled-libs,lmdb,metrics --root "$tools"
    fi
fi

# The tests that need a tmpfs of their own (disk full, free-space check) run as root;
# CI runs this script as root, so there they must fail rather than skip when they
# cannot mount one (tests/it/reliability.rs).
export MIRRORSYNC_REQUIRE_ROOT_TESTS=1

cargo fmt --all --check
# The whole workspace: mirrorsync and its test support crate (crates/testkit).
cargo clippy --workspace --all-targets --locked -- -D warnings
# The product without the `demo` feature, as a packager may build it: no testkit, so
# no HTTP server and no Garage manager in the binary.
cargo check -p mirrorsync --no-default-features --lib --bins --locked
# The Garage tests fail instead of skipping when the binary is missing.
MIRRORSYNC_REQUIRE_GARAGE=1 cargo test --workspace --locked

# The Debian package, built, installed, checked and purged on this machine (as root:
# CI runs this script as root; elsewhere run scripts/package-test.sh as root).
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/package-test.sh
else
    echo "scripts/test.sh: not root; the package test (scripts/package-test.sh) did not run" >&2
fi
