#!/usr/bin/env python3
"""The PyTorch eager baseline of `simcse-bench latency`: transformers' AutoModel forward with
[CLS] pooling, the pooled vectors copied to the host as simcse's output is.

usage: latency_torch.py MODEL_DIR fp32|fp16 cpu|cuda SHAPES ITERS WARMUP   (SHAPES: 1x32,128x32,...)
Prints per-shape p50/p90/p99 milliseconds and sentences per second as JSON.
"""
import json
import sys
import time

import torch
from transformers import AutoModel

model_dir, dtype, device = sys.argv[1], sys.argv[2], sys.argv[3]
shapes = [tuple(int(x) for x in s.split("x")) for s in sys.argv[4].split(",")]
iters, warmup = int(sys.argv[5]), int(sys.argv[6])
torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
model = AutoModel.from_pretrained(model_dir, dtype=torch_dtype).to(device).eval()
vocab = model.config.vocab_size
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
rows = []
for batch, seq in shapes:
    ids = torch.randint(1000, vocab, (batch, seq), device=device)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        run = lambda: model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0].float().cpu()
        for _ in range(warmup):
            run()
        sync()
        times = []
        for _ in range(iters):
            started = time.perf_counter()
            run()
            sync()
            times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    pick = lambda p: times[min(len(times), max(1, -(-int(p * len(times)) // 100))) - 1]
    mean = sum(times) / len(times)
    rows.append({"batch": batch, "seq": seq, "p50_ms": pick(50), "p90_ms": pick(90), "p99_ms": pick(99),
                 "mean_ms": mean, "sentences_per_s": batch * 1e3 / mean})
print(json.dumps({"torch": torch.__version__, "dtype": dtype, "device": device, "shapes": rows}))
