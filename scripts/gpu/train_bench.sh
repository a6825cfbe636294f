#!/usr/bin/env bash
# GPU training benchmark and check (issue "simcse train"), one call on the GPU machine, nothing
# built there.
# 1. Speed and memory: a random BERT-base, unsupervised SimCSE steps on batches of 64 pairs x 32
#    tokens ([CLS] + MLP, AdamW, clipping): our fp32, fp16 (the hand-written half linear + loss
#    scaling) and bf16 against PyTorch eager AMP fp16, AMP bf16 and fp32 (transformers BertModel +
#    the SimCSE loss) in the same call. Each process's GPU memory is sampled the same way for both
#    (nvidia-smi every 100 ms, the CUDA context included); PyTorch's max_memory_reserved beside it.
#    Goal: our fp16 at least PyTorch AMP fp16's it/s with at most its peak memory.
# 2. A real run on CUDA: all-MiniLM-L6-v2 (sent as f16, trained in f32 master weights), fp16,
#    one epoch of 8,192 corpus sentences at batch 64, STS-B dev every 32 steps; its start and best
#    Spearman, and the run's metrics, show that fp16 training on the GPU learns.
#
# Prepare with scripts/gpu/stage.sh, then run   bash scripts/gpu/train_bench.sh
# with carry: .gpu/simcse.xz .gpu/simcse-bench.xz .gpu/minilm16 .gpu/data. Results: $OUT/summary.txt (the table printed
# last) and $OUT/train-bench.tgz (every log, JSON figure file and the run's metrics).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$SIMCSE" env | tee "$OUT/env.txt"

# sampled NAME CMD...: runs CMD (its output to $OUT/NAME.log) while sampling every process's
# GPU memory every 100 ms; writes the peak in MiB to $OUT/NAME.peak_mib.
sampled() {
  local name=$1; shift
  local log="$WORK/$name.smi"
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -lms 100 > "$log" &
  local sampler=$!
  local status=0
  "$@" > "$OUT/$name.log" 2>&1 || status=$?
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  awk -F', ' '$2 + 0 > max { max = $2 + 0 } END { print max + 0 }' "$log" > "$OUT/$name.peak_mib"
  [ "$status" = 0 ] || { echo "$name failed ($status):"; tail -20 "$OUT/$name.log"; }
}

CONFIG=${CONFIG:-bert-base} STEPS=${STEPS:-50}
ARGS=(--config "$CONFIG" --batch-size 64 --seq 32 --steps "$STEPS" --warmup 10)
for precision in fp32 fp16 bf16; do
  sampled "simcse-$precision" "$SIMCSE_BENCH" train "${ARGS[@]}" --precisions "$precision" --device "$DEVICE" \
    --output "$OUT/simcse-$precision.json"
done
for mode in amp-fp16 amp-bf16 fp32; do
  sampled "torch-$mode" "$PY" bench/python/train_torch.py "$CONFIG" "$DEVICE" 64 32 "$STEPS" 10 "$mode"
done

sampled minilm-fp16-run "$SIMCSE" train --model-name-or-path .gpu/minilm16 --train-file .gpu/data/corpus.txt \
  --output-dir "$WORK/minilm-run" --pooler-type cls --precision fp16 --device "$DEVICE" --num-train-epochs 1 ${MAX_STEPS:+--max-steps $MAX_STEPS} \
  --per-device-train-batch-size 64 --learning-rate 3e-5 --senteval-dir .gpu/data/senteval --eval-steps 32 \
  --logging-steps 16 --quiet
cp "$WORK/minilm-run/metrics.jsonl" "$OUT/minilm-fp16-metrics.jsonl" 2>/dev/null || true

"$PY" - "$OUT" <<'PY' | tee "$WORK/summary.txt"
import json, sys
out = sys.argv[1]
def peak(name):
    return int(open(f"{out}/{name}.peak_mib").read())
def row(name, load):
    try:
        return (name,) + load()
    except Exception as e:  # a failed run: its log is in $OUT
        return (name, float("nan"), 0, f"failed: {type(e).__name__}")
def simcse(p):
    return json.load(open(f"{out}/simcse-{p}.json"))["simcse"][0]["it_per_s"], peak(f"simcse-{p}"), "-"
def torch(m):
    d = json.loads(open(f"{out}/torch-{m}.log").read().strip().splitlines()[-1])["modes"][0]
    return d["it_per_s"], peak(f"torch-{m}"), f"{d['max_memory_reserved_gib']:.2f}"
rows = [row(f"simcse {p}", lambda p=p: simcse(p)) for p in ["fp32", "fp16", "bf16"]]
rows += [row(f"pytorch {m}", lambda m=m: torch(m)) for m in ["amp-fp16", "amp-bf16", "fp32"]]
amp = next(r for r in rows if r[0] == "pytorch amp-fp16")[1]
print(f"\nBERT-base, 64 pairs x 32 tokens   {'it/s':>8} {'vs AMP fp16':>12} {'peak MiB (nvidia-smi)':>22} {'torch reserved GiB':>19}")
for name, its, mib, reserved in rows:
    print(f"{name:<33} {its:>8.2f} {its / amp:>11.2f}x {mib:>22} {reserved:>19}")
try:
    records = [json.loads(l) for l in open(f"{out}/minilm-fp16-metrics.jsonl")]
    evals = [(r["step"], r["eval_stsb_spearman"]) for r in records if "eval_stsb_spearman" in r]
    steps = [r for r in records if "it_per_s" in r]
    print(f"\nall-MiniLM-L6-v2 fp16 on CUDA, {steps[-1]['step']} steps of 64: STS-B dev "
          + " -> ".join(f"{s}:{v:.2f}" for s, v in evals)
          + f"; {sum(r['it_per_s'] for r in steps[1:]) / max(len(steps) - 1, 1):.1f} it/s, peak {max(r['peak_gpu_memory_gib'] or 0 for r in steps):.2f} GiB,"
          f" loss scale {steps[-1]['loss_scale']}, last loss {steps[-1]['loss']:.4f}")
except Exception as e:
    print(f"\nall-MiniLM-L6-v2 run: no metrics ({e}); see $OUT/minilm-fp16-run.log")
PY

# The device tool returns at most 8 files: everything goes back as one archive beside the table.
tar -czf "$WORK/train-bench.tgz" -C "$OUT" .
find "$OUT" -mindepth 1 -delete
mv "$WORK/train-bench.tgz" "$WORK/summary.txt" "$OUT/"
