#!/usr/bin/env bash
# The whole test suite, release profile (the same build as the demo, so libtorch's C++ wrapper
# is compiled once), then the slim build (make slim) against the default one
# (scripts/test_slim.sh), then the Python package's wheel in a clean venv (scripts/test_python.sh;
# the extension is no cargo test: it links against the interpreter that loads it). Ends with
# one line totalling every test binary's summary.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --release --workspace --exclude simcse-python --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Both builds: the slim one is built and checked even when a workspace test failed.
make --no-print-directory slim 2>&1 | tail -n 3 && scripts/test_slim.sh 2>&1 | tee -a "$log"
slim_status=${PIPESTATUS[0]}
[ "$slim_status" -eq 0 ] || [ "$status" -ne 0 ] || status=$slim_status
# The Python package, built from the slim build's dependencies, in a clean venv.
scripts/test_python.sh 2>&1 | tee -a "$log"
python_status=${PIPESTATUS[0]}
[ "$python_status" -eq 0 ] || [ "$status" -ne 0 ] || status=$python_status
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) g += $(i-1) } }
     /^slim: [0-9]+ checks passed/ { s = $2 }
     /^python: [0-9]+ passed/ { py = $2; pf = $4 }
     END { printf "\nTOTAL: %d passed, %d failed, %d ignored, slim build: %s checks passed, python: %d passed, %d failed (exit status %d)\n", p, f, g, s + 0, py, pf, '"$status"' }' "$log"
exit "$status"
