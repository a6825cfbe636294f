#!/usr/bin/env bash
# Prepares what the GPU scripts need on the GPU machine, in the git-ignored .gpu/ (pass the
# paths named below as `carry`). A call may send 64 MiB in all, so:
#   train_bench.sh   carry .gpu/simcse.xz .gpu/simcse-bench.xz .gpu/minilm16 .gpu/data   (about 62 MB)
#   encode_bench.sh  first a call carrying .gpu/ort-bundle (about 58 MiB; the script unpacks it to
#                    /tmp/ort), then, while the machine is warm, one carrying .gpu/simcse.xz and
#                    .gpu/simcse-bench.xz
# .gpu/simcse.xz, .gpu/simcse-bench.xz: the stripped release binaries, xz-compressed (about 7 MB each).
# .gpu/minilm16:  all-MiniLM-L6-v2 converted to f16 (45 MB; training loads it into f32 weights).
# .gpu/data:      8,192 sentences of the bundled corpus and SentEval's STS-B dev set.
# .gpu/ort-bundle: ONNX Runtime's CUDA bundle (../shared/gpu/make-ort-cuda-bundle.sh), with --ort.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mkdir -p .gpu
cargo build --release -p simcse -p simcse-bench
for bin in simcse simcse-bench; do
  strip -o .gpu/$bin target/release/$bin
  xz -T0 -6 -f .gpu/$bin
done
rm -rf .gpu/minilm16 .gpu/data
target/release/simcse convert assets/all-MiniLM-L6-v2 .gpu/minilm16 --dtype f16 --quiet
mkdir -p .gpu/data/senteval/downstream/STS/STSBenchmark
cp ../shared/data/senteval/downstream/STS/STSBenchmark/sts-dev.csv .gpu/data/senteval/downstream/STS/STSBenchmark/
head -n 8192 assets/corpus/en.txt > .gpu/data/corpus.txt
if [ "${1:-}" = --ort ] && [ ! -f .gpu/ort-bundle/unpack.sh ]; then
  bash ../shared/gpu/make-ort-cuda-bundle.sh .gpu/ort-bundle
fi
du -sh .gpu/*
