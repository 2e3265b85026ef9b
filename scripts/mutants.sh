#!/usr/bin/env bash
# Mutation testing of the code that guards the mirror's promises: paths from upstream
# (relpath), the planner (plan_files, plan_removals, the mass-delete guard), apt's
# clear-signed splitter, and publishing a snapshot (publish_staging, prune, links,
# staging clean-up). Each mutant is built and judged by the library's tests; a
# "missed" mutant is a change to that code no test notices.
# Installs cargo-mutants with cargo when missing (not in CI: it takes a while).
# Prints caught/missed/unviable per module; outputs under target/mutants/<module>.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install --locked cargo-mutants
fi
run() {
    local name=$1 file=$2
    shift 2
    cargo mutants --no-shuffle --timeout 300 --output "target/mutants/$name" \
        --file "$file" "$@" -- --lib >"target/mutants-$name.log" 2>&1 || true
    local out="target/mutants/$name/mutants.out"
    printf '%-10s caught %3d  missed %3d  unviable %3d  timeout %3d\n' "$name" \
        "$(wc -l <"$out/caught.txt")" "$(wc -l <"$out/missed.txt")" \
        "$(wc -l <"$out/unviable.txt")" "$(wc -l <"$out/timeout.txt")"
    sed 's/^/    missed: /' "$out/missed.txt"
}
mkdir -p target/mutants
run relpath src/relpath.rs
run cleartext src/apt/signature/cleartext.rs
run plan src/plan.rs -F 'plan_files|plan_removals|deletes_too_much'
run snapshot src/snapshot.rs -F 'publish_staging|prune|link_file|clean_staging|current_id'
