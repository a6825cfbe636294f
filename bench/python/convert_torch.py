#!/usr/bin/env python3
"""The Python baseline of `simcse-bench convert`: what a user does today to get safetensors
from a pytorch_model.bin (transformers' own conversion does the same two calls).

usage: convert_torch.py SRC_DIR_OR_FILE DST_FILE
Prints {"import_s": ..., "convert_s": ...} as JSON: the time of `import torch` and that of the
conversion itself, so that both the whole-process and the in-process figures can be compared.
"""
import json
import os
import sys
import time

started = time.perf_counter()
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

imported = time.perf_counter()
src, dst = sys.argv[1], sys.argv[2]
if os.path.isdir(src):
    src = os.path.join(src, "pytorch_model.bin")
state_dict = torch.load(src, map_location="cpu", weights_only=True)
save_file({k: v.contiguous() for k, v in state_dict.items()}, dst, metadata={"format": "pt"})
done = time.perf_counter()
print(json.dumps({"import_s": imported - started, "convert_s": done - imported, "torch": torch.__version__}))
