#!/usr/bin/env bash
# GPU training benchmark (issue "simcse train"), one call on the GPU machine, nothing built there:
# a random BERT-base, unsupervised SimCSE steps on batches of 64 pairs x 32 tokens ([CLS] + MLP,
# AdamW, clipping), our fp32 and our fp16 (the hand-written half linear + loss scaling) against
# PyTorch eager AMP fp16 and fp32 (transformers BertModel + the SimCSE loss) in the same call.
# Memory of each process is sampled the same way for both (nvidia-smi, every 100 ms, the CUDA
# context included); PyTorch's own max_memory_reserved is printed beside it.
# Goal: our fp16 at least PyTorch AMP's it/s with at most its peak memory.
#
# Prepare with scripts/gpu/stage.sh, then run   bash scripts/gpu/train_bench.sh   (carry: .gpu/simcse)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# sampled NAME CMD...: runs CMD (its output to $OUT/NAME.log) while sampling every process's
# GPU memory every 100 ms; writes the peak in MiB to $OUT/NAME.peak_mib.
sampled() {
  local name=$1; shift
  local log="$OUT/$name.smi"
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -lms 100 > "$log" &
  local sampler=$!
  "$@" > "$OUT/$name.log" 2>&1
  kill "$sampler" 2>/dev/null || true
  awk -F', ' '$2 + 0 > max { max = $2 + 0 } END { print max + 0 }' "$log" > "$OUT/$name.peak_mib"
}

ARGS=(--config bert-base --batch-size 64 --seq 32 --steps 50 --warmup 10)
for precision in fp32 fp16; do
  sampled "simcse-$precision" "$SIMCSE" bench train "${ARGS[@]}" --precisions "$precision" --device cuda \
    --output "$OUT/simcse-$precision.json"
done
for mode in amp-fp16 fp32; do
  sampled "torch-$mode" "$PY" benches/python/train_torch.py bert-base cuda 64 32 50 10 "$mode"
done

"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
peak = lambda name: int(open(f"{out}/{name}.peak_mib").read())
rows = []
for p in ["fp32", "fp16"]:
    rows.append((f"simcse {p}", json.load(open(f"{out}/simcse-{p}.json"))["simcse"][0]["it_per_s"], peak(f"simcse-{p}"), None))
for m in ["amp-fp16", "fp32"]:
    d = json.loads(open(f"{out}/torch-{m}.log").read().strip().splitlines()[-1])["modes"][0]
    rows.append((f"pytorch {m}", d["it_per_s"], peak(f"torch-{m}"), d["max_memory_reserved_gib"]))
amp = next(r for r in rows if r[0] == "pytorch amp-fp16")
print(f"{'':<20} {'it/s':>8} {'vs AMP':>8} {'peak MiB (nvidia-smi)':>22} {'torch reserved GiB':>19}")
for name, its, mib, reserved in rows:
    print(f"{name:<20} {its:>8.2f} {its / amp[1]:>7.2f}x {mib:>22} {reserved if reserved is not None else '-':>19}")
PY
