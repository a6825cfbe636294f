#!/usr/bin/env bash
# Prepares what the GPU scripts need on the GPU machine, in the git-ignored .gpu/ (pass it as
# `carry`): the stripped release binary, and ONNX Runtime's CUDA bundle (about 58 MiB, built by
# ../shared/gpu/make-ort-cuda-bundle.sh). Together they pass the 64 MiB a call may send, so send
# them in two calls while the machine stays warm: first `.gpu/ort-bundle` (the script unpacks it
# to /tmp/ort), then `.gpu/simcse` with the benchmark script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mkdir -p .gpu
cargo build --release
strip -o .gpu/simcse target/release/simcse
if [ ! -f .gpu/ort-bundle/unpack.sh ]; then
  bash ../shared/gpu/make-ort-cuda-bundle.sh .gpu/ort-bundle
fi
du -sh .gpu/simcse .gpu/ort-bundle
