#!/usr/bin/env bash
# Does unsupervised SimCSE help an encoder that is already trained on a billion supervised pairs?
# A short run from all-mpnet-base-v2 (mean pooling, as it was trained) on the bundled English
# corpus, the best step on STS-B dev kept, against the model before: STS-B dev and test
# (SentEval's copies), Spearman x 100. Writes target/experiments/mpnet/{results.md, *.json, the run}.
#
# usage: scripts/experiments/mpnet_simcse.sh   (after make models; STEPS, BATCH, LR, EVAL_STEPS, DEVICE override)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SIMCSE=${SIMCSE:-target/release/simcse}
MODEL=${MODEL:-assets/all-mpnet-base-v2}
CORPUS=${CORPUS:-assets/corpus/en.txt}
OUT=${OUT:-target/experiments/mpnet}
STEPS=${STEPS:-60} BATCH=${BATCH:-64} LR=${LR:-3e-5} EVAL_STEPS=${EVAL_STEPS:-20} DEVICE=${DEVICE:-cpu}
SENTEVAL=${SIMCSE_SENTEVAL_DIR:-../shared/data/senteval}
for need in "$SIMCSE" "$MODEL/config.json" "$CORPUS" "$SENTEVAL/downstream/STS"; do
  [ -e "$need" ] || { echo "mpnet_simcse.sh: $need not found (make models builds the model)" >&2; exit 1; }
done
mkdir -p "$OUT"

# eval_row NAME DIR: STS-B dev and test.
eval_row() {
  local name=$1 dir=$2 mode
  for mode in dev test; do
    "$SIMCSE" eval "$dir" -q --task-set na --tasks STSBenchmark --mode "$mode" --senteval-dir "$SENTEVAL" \
      --output "$OUT/$name.$mode.json" >/dev/null
  done
}

eval_row before "$MODEL"
"$SIMCSE" train --model-name-or-path "$MODEL" --train-file "$CORPUS" --output-dir "$OUT/simcse-avg" --overwrite-output-dir \
  --pooler-type avg --max-seq-length 32 --per-device-train-batch-size "$BATCH" --learning-rate "$LR" \
  --max-steps "$STEPS" --eval-steps "$EVAL_STEPS" --senteval-dir "$SENTEVAL" --device "$DEVICE" --quiet
eval_row simcse-avg "$OUT/simcse-avg"

"${PYTHON:-python3}" - "$OUT" "$STEPS" "$BATCH" "$LR" <<'PY' | tee "$OUT/results.md"
import json, os, sys
out, steps, batch, lr = sys.argv[1:]
def stsb(name, mode):
    return 100 * json.load(open(os.path.join(out, f"{name}.{mode}.json")))["tasks"][0]["spearman"]["all"]
print("| all-mpnet-base-v2 | STS-B dev | STS-B test |")
print("| --- | --- | --- |")
print(f"| before | {stsb('before', 'dev'):.2f} | {stsb('before', 'test'):.2f} |")
print(f"| unsupervised SimCSE, {steps} steps of {batch}, lr {lr} | {stsb('simcse-avg', 'dev'):.2f} | {stsb('simcse-avg', 'test'):.2f} |")
PY
