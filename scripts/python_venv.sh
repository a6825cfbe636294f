#!/usr/bin/env bash
# Builds the Python package's wheel (make wheel) and installs it into a new, clean venv,
# target/python-venv, with nothing else but python/requirements-test.txt (numpy, the onnxruntime
# wheel for its library, pytest). Used by scripts/test_python.sh and make bench-python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
venv=target/python-venv

make --no-print-directory wheel
wheel=$(ls -t target/wheels/simcse_rs-*.whl | head -n 1)
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r python/requirements-test.txt
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$wheel"
echo "python_venv: $wheel installed in $venv" >&2
