#!/usr/bin/env python3
"""The Python baseline of `simcse-bench eval`: SimCSE's evaluation.py in test mode on the STS
tasks (STS12-16 over all subsets, STS Benchmark test) with transformers, SentEval's protocol
(senteval_reference.py) and every sentence encoded where SentEval encodes it (no cache, as
SimCSE runs it). SimCSE's own script also encodes STS-B's train and dev splits; this baseline
leaves them out, so it does exactly the work `simcse eval` does.

usage: eval_senteval.py MODEL_DIR SENTEVAL_DIR [avg|cls_before_pooler]
Prints the Spearman x 100 per task and the timings as JSON.
"""
import json
import os
import sys
import time

started = time.perf_counter()
from transformers import AutoModel, AutoTokenizer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from senteval_reference import STS_SUBSETS, load_stsb, load_sts_year, make_batcher, run  # noqa: E402

imported = time.perf_counter()
model_dir, senteval = sys.argv[1], sys.argv[2]
pooler = sys.argv[3] if len(sys.argv) > 3 else "avg"
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModel.from_pretrained(model_dir).eval()
batcher = make_batcher(model, tokenizer, pooler, cache_sentences=False)
loaded = time.perf_counter()
sts = os.path.join(senteval, "downstream", "STS")
scores = {}
for year, subsets in STS_SUBSETS.items():
    scores[year] = run(load_sts_year(os.path.join(sts, f"{year}-en-test"), subsets), batcher)["spearman"]["all"] * 100
scores["STSBenchmark"] = run({"test": load_stsb(os.path.join(sts, "STSBenchmark", "sts-test.csv"))}, batcher)["spearman"]["all"] * 100
evaluated = time.perf_counter()
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported, "eval_s": evaluated - loaded,
                  "scores": scores}))
