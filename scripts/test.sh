#!/usr/bin/env bash
# Installs what the tests need (gpgv to cross-check our signatures, nginx and apt for
# the real-client tests, systemd-analyze to check the example units), then runs the whole test suite, lints included.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in gpgv:gpgv nginx:nginx apt-get:apt systemd-analyze:systemd; do
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

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
