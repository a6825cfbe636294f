#!/usr/bin/env python3
"""The Python baseline of `simcse-bench export`: torch.onnx.export of transformers' BertModel
with dynamic batch and sequence axes, as the usual recipe does.

usage: export_torch.py MODEL_DIR OUT_ONNX
Prints the timings (import, load, export) as JSON.
"""
import json
import sys
import time

started = time.perf_counter()
import warnings  # noqa: E402

import torch  # noqa: E402
from transformers import AutoModel  # noqa: E402

imported = time.perf_counter()
model_dir, out = sys.argv[1], sys.argv[2]


class Encoder(torch.nn.Module):
    """Named inputs, last_hidden_state out: transformers 5's forward takes more positionals."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


model = Encoder(AutoModel.from_pretrained(model_dir).eval())
loaded = time.perf_counter()
ids = torch.ones(2, 16, dtype=torch.long)
axes = {0: "batch", 1: "sequence"}
torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), out,
                  input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
                  dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes}, opset_version=17,
                  dynamo=False)
exported = time.perf_counter()
warnings.filterwarnings("ignore")
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported, "export_s": exported - loaded,
                  "torch": torch.__version__}))
