#!/usr/bin/env python3
"""SimCSE's tool API three ways, in the same run, on the same model and sentences:
simcse_rs.SimCSE (the wheel, in its own venv), SimCSE's own `simcse.SimCSE` (PyPI simcse==0.4
on PyTorch) and sentence-transformers' `SentenceTransformer.encode`.

    bench/python/python_api.py MODEL_DIR SENTENCES_FILE [--runs 3] \
        [--rs-python target/python-venv/bin/python] [--torch-python .venv/bin/python]

Each contestant runs in a fresh process, one after another (never two at once): the time from
process start to a loaded model ("import+load", the imports included), the best of --runs
encodes of every sentence (after a warm-up of one batch), and the process's peak RSS. All
encode in batches of 64, truncating at 128 tokens; SimCSE's tool and simcse_rs pool through
[CLS] (the only poolers SimCSE's tool has), sentence-transformers by its mean pooling.
Prints a Markdown table.
"""
import argparse
import json
import subprocess
import sys
import time

# Run as `python -c CHILD NAME MODEL SENTENCES RUNS`; prints one JSON line.
CHILD = r"""
import json, os, resource, sys, time
started = time.perf_counter()
name, model, path, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sentences = [line.rstrip("\n") for line in open(path)]
if name == "simcse_rs":
    from simcse_rs import SimCSE
    tool = SimCSE(model, pooler="cls", device="cpu")
    encode = lambda batch: tool.encode(batch, batch_size=64, max_length=128)
elif name == "simcse":
    import logging
    logging.disable(logging.INFO)
    from simcse import SimCSE
    tool = SimCSE(model, pooler="cls", device="cpu")
    encode = lambda batch: tool.encode(batch, batch_size=64, max_length=128, return_numpy=True)
else:
    from sentence_transformers import SentenceTransformer
    tool = SentenceTransformer(model, device="cpu")
    tool.max_seq_length = 128
    encode = lambda batch: tool.encode(batch, batch_size=64, show_progress_bar=False)
loaded = time.perf_counter() - started
encode(sentences[:64])
times = []
for _ in range(runs):
    t = time.perf_counter()
    embeddings = encode(sentences)
    times.append(time.perf_counter() - t)
assert len(embeddings) == len(sentences)
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"load_s": loaded, "best_s": min(times), "n": len(sentences), "peak_mib": peak_mib}))
"""


def run(python, name, model, sentences, runs):
    started = time.perf_counter()
    env = {"TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([python, "-c", CHILD, name, model, sentences, str(runs)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{name} ({python}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Process start to loaded, as the child measured it from its first line, plus interpreter start.
    result["wall_s"] = time.perf_counter() - started
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("sentences")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rs-python", default="target/python-venv/bin/python")
    parser.add_argument("--torch-python", default=".venv/bin/python")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    contestants = [
        ("simcse_rs.SimCSE", args.rs_python, "simcse_rs"),
        ("simcse.SimCSE (0.4, PyTorch)", args.torch_python, "simcse"),
        ("sentence-transformers", args.torch_python, "sentence_transformers"),
    ]
    rows = []
    for label, python, name in contestants:
        print(f"running {label} ...", file=sys.stderr)
        rows.append((label, run(python, name, args.model, args.sentences, args.runs)))
    baseline = rows[1][1]["n"] / rows[1][1]["best_s"]
    print(f"\n{rows[0][1]['n']} sentences, best of {args.runs}, batch 64, max_length 128\n")
    print("| | sentences/s | vs SimCSE's tool | import+load s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for label, r in rows:
        rate = r["n"] / r["best_s"]
        print(f"| {label} | {rate:.0f} | {rate / baseline:.2f}x | {r['load_s']:.2f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
