#!/usr/bin/env bash
# The whole test suite, release profile (the same build as the demo, so libtorch's C++ wrapper
# is compiled once). Ends with one line totalling every test binary's summary.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --release --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) g += $(i-1) } }
     END { printf "\nTOTAL: %d passed, %d failed, %d ignored (cargo test exit status %d)\n", p, f, g, '"$status"' }' "$log"
exit "$status"
