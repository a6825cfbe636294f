#!/usr/bin/env python3
"""Writes what SimCSE's own tool (PyPI `simcse==0.4`, `simcse.SimCSE`) returns on the bundled
all-MiniLM-L6-v2 (assets/), for the Python package's tests to compare simcse_rs.SimCSE with.

    scripts/setup.sh --reference
    .venv/bin/pip install --no-deps simcse==0.4    # its own pins would replace transformers
    .venv/bin/python python/tests/gen_simcse_fixtures.py

python/tests/fixtures/
  simcse04.npz    for each pooler P of SimCSE's tool (cls: pooler_output; cls_before_pooler):
                  P.encode             encode(SENTENCES)                       [n, 384], unit rows
                  P.encode_raw         encode(SENTENCES, normalize_to_unit=False)
                  P.encode_one         encode(QUERIES[0])                      [384]
                  P.encode_keepdim     encode(QUERIES[0], keepdim=True)        [1, 384]
                  P.encode_short       encode(SENTENCES, max_length=8, batch_size=3)
                  P.similarity         similarity(QUERIES, SENTENCES)          [2, n]
                  P.similarity_one     similarity(QUERIES[0], SENTENCES)       [n]
                  P.similarity_pair    similarity(QUERIES[0], SENTENCES[0])    [] (a float)
                  P.similarity_keys    similarity(QUERIES, encode(SENTENCES[:4]))  keys as an array
  simcse04.json   sentences, queries, and for each pooler the hits of
                  build_index(SENTENCES, use_faiss=False) then search(QUERIES),
                  search(QUERIES[0]) and search(QUERIES[1], threshold=0.3, top_k=3)
                  (SimCSE's brute-force search of a list ignores threshold and top_k: the
                  list case is recorded with the defaults only)
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
from simcse import SimCSE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "assets", "all-MiniLM-L6-v2")
OUT = os.path.join(ROOT, "python", "tests", "fixtures")

# SimCSE's README example, a sentence past 128 tokens (truncation), and some non-ASCII.
SENTENCES = [
    "An animal is biting a persons finger.",
    "A woman is reading.",
    "A man is lifting weights in a garage.",
    "A man plays the violin.",
    "A man is eating food.",
    "A man plays the piano.",
    "A panda is climbing.",
    "A man plays a guitar.",
    "A woman is slicing a meat.",
    "A woman is taking a picture.",
    " ".join(["The quick brown fox jumps over the lazy dog while the band plays on."] * 12),
    "Crème brûlée, naïve café — déjà vu? ✓",
]
QUERIES = ["A man is playing music.", "A woman is making a photo."]


def hits(results):
    return [[sentence, float(score)] for sentence, score in results]


def main():
    os.makedirs(OUT, exist_ok=True)
    arrays, searches = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        model = os.path.join(scratch, "all-MiniLM-L6-v2")
        shutil.copytree(MODEL, model)
        for pooler in ("cls", "cls_before_pooler"):
            tool = SimCSE(model, device="cpu", pooler=pooler)
            arrays[f"{pooler}.encode"] = tool.encode(SENTENCES, return_numpy=True)
            arrays[f"{pooler}.encode_raw"] = tool.encode(SENTENCES, normalize_to_unit=False, return_numpy=True)
            arrays[f"{pooler}.encode_one"] = tool.encode(QUERIES[0], return_numpy=True)
            arrays[f"{pooler}.encode_keepdim"] = tool.encode(QUERIES[0], keepdim=True, return_numpy=True)
            arrays[f"{pooler}.encode_short"] = tool.encode(SENTENCES, max_length=8, batch_size=3, return_numpy=True)
            arrays[f"{pooler}.similarity"] = tool.similarity(QUERIES, SENTENCES)
            arrays[f"{pooler}.similarity_one"] = tool.similarity(QUERIES[0], SENTENCES)
            pair = tool.similarity(QUERIES[0], SENTENCES[0])
            assert isinstance(pair, float)
            arrays[f"{pooler}.similarity_pair"] = np.array(pair)
            keys = tool.encode(SENTENCES[:4], return_numpy=True)
            arrays[f"{pooler}.similarity_keys"] = tool.similarity(QUERIES, keys)
            tool.build_index(SENTENCES, use_faiss=False)
            searches[pooler] = {
                "queries": [hits(r) for r in tool.search(QUERIES)],
                "one": hits(tool.search(QUERIES[0])),
                "threshold_0.3_top_3": hits(tool.search(QUERIES[1], threshold=0.3, top_k=3)),
            }
    np.savez(os.path.join(OUT, "simcse04.npz"), **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    with open(os.path.join(OUT, "simcse04.json"), "w") as f:
        json.dump({"sentences": SENTENCES, "queries": QUERIES, "search": searches}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}/simcse04.npz and simcse04.json", file=sys.stderr)


if __name__ == "__main__":
    main()
