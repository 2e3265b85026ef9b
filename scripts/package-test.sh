#!/usr/bin/env bash
# The Debian package as an operator meets it: built by scripts/package.sh, installed
# with dpkg -i on this machine, checked (binary, man page, units, the shipped config,
# its user and mirror root), then purged, leaving nothing of its own behind. Needs
# root (CI runs as root); it fails, not skips, without it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/package-test.sh: needs root (dpkg -i)" >&2
    exit 1
fi
# A machine that has mirrorsync (installed, or set up by hand) is not a test bed: the
# purge at the end would take its config.
if dpkg -s mirrorsync >/dev/null 2>&1 || [ -e /etc/mirrorsync ] ||
    { [ -e /srv/mirror ] && [ -n "$(ls -A /srv/mirror)" ]; }; then
    if [ "${MIRRORSYNC_PACKAGE_TEST_ANYWAY:-}" != 1 ]; then
        echo "scripts/package-test.sh: mirrorsync (or /etc/mirrorsync, or a non-empty /srv/mirror) is here; not touching it" >&2
        exit 1
    fi
fi

bash scripts/package.sh
deb=$(ls -t target/debian/mirrorsync_*.deb | head -n1)
echo "== $deb: $(stat -c %s "$deb") bytes"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"

fail() { echo "scripts/package-test.sh: $*" >&2; exit 1; }
existed_srv=$([ -e /srv/mirror ] && echo yes || echo no)

trap 'dpkg --purge mirrorsync >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb"

mirrorsync --version
[ "$(command -v mirrorsync)" = /usr/bin/mirrorsync ] || fail "not in /usr/bin"
file -L /usr/bin/mirrorsync | grep -q ", stripped" || fail "binary not stripped"
man -w mirrorsync >/dev/null || fail "no man page mirrorsync(1)"
man -w mirrorsync-sync >/dev/null || fail "no man page mirrorsync-sync(1)"
for f in /usr/share/bash-completion/completions/mirrorsync \
    /usr/share/zsh/vendor-completions/_mirrorsync \
    /usr/share/fish/vendor_completions.d/mirrorsync.fish; do
    [ -s "$f" ] || fail "no completion $f"
done
systemd-analyze verify /usr/lib/systemd/system/mirrorsync.service \
    /usr/lib/systemd/system/mirrorsync.timer
getent passwd mirrorsync >/dev/null || fail "no mirrorsync user"
[ "$(stat -c %U /srv/mirror)" = mirrorsync ] || fail "/srv/mirror is not mirrorsync's"
dpkg-query -W -f='${Conffiles}\n' mirrorsync | grep -q /etc/mirrorsync/mirrors.toml ||
    fail "mirrors.toml is not a conffile"
# The shipped config is valid, names no mirror, and a run with it does nothing.
runuser -u mirrorsync -- mirrorsync check-config -v
runuser -u mirrorsync -- mirrorsync sync
[ -z "$(ls -A /srv/mirror | grep -vxF '.mirrorsync' || true)" ] || fail "a run of the shipped config served something: $(ls -A /srv/mirror)"

files=$(dpkg -L mirrorsync)
dpkg --purge mirrorsync
trap - EXIT
for f in $files; do
    # Directories the package shares with others (/usr/bin, /etc...) stay.
    if [ -f "$f" ] || [ -L "$f" ]; then fail "$f is left after purge"; fi
done
[ ! -e /etc/mirrorsync ] || fail "/etc/mirrorsync is left after purge"
if [ "$existed_srv" = no ] && [ -e /srv/mirror ]; then
    fail "/srv/mirror (no mirror in it) is left after purge"
fi
[ ! -e /etc/systemd/system/timers.target.wants/mirrorsync.timer ] || fail "timer still enabled after purge"
echo "scripts/package-test.sh: installed, checked and purged $deb"
