#!/usr/bin/env bash
# The Python package (python/): its wheel in a new, clean venv (scripts/python_venv.sh), and
# python/tests run against that install. Ends with
# "python: N passed, M failed" for scripts/test.sh's total.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/python_venv.sh || { echo "python: 0 passed, 1 failed (the wheel did not build or install)"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# ORT_DYLIB_PATH unset: the package must find ONNX Runtime in the venv by itself.
env -u ORT_DYLIB_PATH target/python-venv/bin/python -m pytest python/tests -q -p no:cacheprovider "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -oE '[0-9]+ passed' "$log" | tail -n 1 | cut -d' ' -f1)
failed=$(grep -oE '[0-9]+ (failed|error)' "$log" | awk '{ n += $1 } END { print n + 0 }')
echo "python: ${passed:-0} passed, $failed failed (pytest exit status $status)"
exit "$status"
