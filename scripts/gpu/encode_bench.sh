#!/usr/bin/env bash
# GPU encoding benchmark (issue "export and runtime"), one call on the GPU machine, nothing built
# there: a BERT-base-shaped random model exported fp32, fp16 and fp16 + --optimize ort, run on ONNX
# Runtime's CUDA execution provider (IO binding), beside PyTorch eager fp16 (transformers BertModel)
# in the same call. Latency p50/p99 at 1 x 32 tokens, throughput at 128 x 32 and 512 x 32.
# Goals: batch-1 p50 <= 1.0 ms; 512 x 32 >= 1.5x PyTorch eager fp16.
#
# Prepare with `scripts/gpu/stage.sh --ort`, then, while one machine stays warm, two calls:
#   mkdir -p /tmp/simcse-gpu && bash .gpu/ort-bundle/unpack.sh /tmp/ort > /tmp/simcse-gpu/ort-env.sh
#                                                  (carry: .gpu/ort-bundle)
#   bash scripts/gpu/encode_bench.sh               (carry: .gpu/simcse.xz .gpu/simcse-bench.xz)
# Results: $OUT/latency-*.json and a table printed last; copy them into docs/benchmarks.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ONNX Runtime with the CUDA provider: unpacked once per machine, kept in /tmp/ort.
if [ -f .gpu/ort-bundle/unpack.sh ]; then
  bash .gpu/ort-bundle/unpack.sh /tmp/ort > "$WORK/ort-env.sh"
fi
[ -f "$WORK/ort-env.sh" ] || { echo "no ONNX Runtime CUDA bundle: send .gpu/ort-bundle first" >&2; exit 1; }
# shellcheck disable=SC1091
source "$WORK/ort-env.sh"
"$SIMCSE" env

# A random BERT-base (bert-base-uncased's shapes) made here: weights are not worth sending.
MODEL=$WORK/bert-base
"$PY" - "$MODEL" "${CONFIG:-bert-base}" <<'PY'
import json, sys, torch
from transformers import BertConfig, BertModel
torch.manual_seed(0)
shapes = {"bert-base": {}, "bert-tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512)}
BertModel(BertConfig(**shapes[sys.argv[2]])).save_pretrained(sys.argv[1])
json.dump({"pooler": "cls_before_pooler", "max_seq_length": 128, "normalize": False, "provenance": []},
          open(f"{sys.argv[1]}/simcse.json", "w"))
PY

SHAPES=1x32,128x32,512x32
for variant in fp32:none fp16:none fp16:ort; do
  dtype=${variant%:*}; optimize=${variant#*:}
  "$SIMCSE" export "$MODEL" --dtype "$dtype" --optimize "$optimize" -o "$WORK/$dtype-$optimize.onnx"
  python_args=()
  if [ "$variant" = fp16:none ]; then python_args=(--python "$PY" --python-dtype fp16); fi
  "$SIMCSE_BENCH" latency "$MODEL" --onnx "$WORK/$dtype-$optimize.onnx" --device "$DEVICE" --shapes "$SHAPES" \
    --iters "${ITERS:-200}" --warmup 20 "${python_args[@]}" --output "$OUT/latency-$dtype-$optimize.json"
done

"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
rows = {}
for v in ["fp32-none", "fp16-none", "fp16-ort"]:
    d = json.load(open(f"{out}/latency-{v}.json"))
    rows[f"simcse ort {v}"] = {(r["batch"], r["seq"]): r for r in d["simcse"]}
    if "pytorch" in d:
        rows["pytorch eager fp16"] = {(r["batch"], r["seq"]): r for r in d["pytorch"]["shapes"]}
torch = rows["pytorch eager fp16"]
print(f"{'':<24} {'1x32 p50':>9} {'1x32 p99':>9} {'128x32 s/s':>11} {'512x32 s/s':>11} {'vs torch':>9}")
for name, r in rows.items():
    print(f"{name:<24} {r[(1,32)]['p50_ms']:>9.3f} {r[(1,32)]['p99_ms']:>9.3f} {r[(128,32)]['sentences_per_s']:>11.0f} "
          f"{r[(512,32)]['sentences_per_s']:>11.0f} {r[(512,32)]['sentences_per_s'] / torch[(512,32)]['sentences_per_s']:>8.2f}x")
PY
