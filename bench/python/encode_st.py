#!/usr/bin/env python3
"""The Python baseline of `simcse-bench encode`: sentence-transformers on PyTorch (CPU).

usage: encode_st.py MODEL_DIR SENTENCES_TXT BATCH_SIZE OUT_NPY
Loads the model, warms up on one batch, encodes every sentence (sentence-transformers sorts by
length and batches, as simcse does), saves the embeddings and prints the timings as JSON.
"""
import json
import sys
import time

started = time.perf_counter()
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

imported = time.perf_counter()
model_dir, sentences_path, batch_size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
model = SentenceTransformer(model_dir, device="cpu")
with open(sentences_path) as f:
    sentences = [line.rstrip("\n") for line in f]
model.encode(sentences[:batch_size], batch_size=batch_size)
loaded = time.perf_counter()
embeddings = model.encode(sentences, batch_size=batch_size, convert_to_numpy=True)
encoded = time.perf_counter()
np.save(out, embeddings)
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported, "encode_s": encoded - loaded,
                  "sentences": len(sentences), "threads": torch.get_num_threads(), "torch": torch.__version__}))
