"""Shared fixtures: copies of the bundled all-MiniLM-L6-v2 (assets/, from scripts/setup.sh) and
what SimCSE 0.4's own tool returned on it (fixtures/, from gen_simcse_fixtures.py)."""
import json
import os
import shutil

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "assets", "all-MiniLM-L6-v2")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def copy_model(destination, simcse_json=None):
    """A copy of the bundled model directory, without any graph; `simcse_json` is written as its
    simcse.json where given."""
    if not os.path.isdir(MODEL):
        pytest.fail(f"{MODEL} not found: run scripts/setup.sh")
    shutil.copytree(MODEL, destination, ignore=shutil.ignore_patterns("model.onnx*"))
    if simcse_json is not None:
        with open(os.path.join(destination, "simcse.json"), "w") as f:
            json.dump(simcse_json, f)
    return str(destination)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A Hugging Face directory without simcse.json: SimCSE's rule gives it pooler `cls`."""
    return copy_model(tmp_path_factory.mktemp("models") / "all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def reference():
    """SimCSE 0.4's results: (arrays by name, the JSON with sentences, queries and hits)."""
    with np.load(os.path.join(FIXTURES, "simcse04.npz")) as arrays:
        arrays = dict(arrays)
    with open(os.path.join(FIXTURES, "simcse04.json")) as f:
        return arrays, json.load(f)


@pytest.fixture(scope="session")
def tools(model_dir):
    """simcse_rs.SimCSE for each pooler SimCSE's tool has, opened once."""
    from simcse_rs import SimCSE

    return {pooler: SimCSE(model_dir, pooler=pooler) for pooler in ("cls", "cls_before_pooler")}


def read_safetensors(path):
    """The tensors of a .safetensors file as numpy arrays (its format: an 8-byte header length,
    a JSON header, the raw little-endian data)."""
    dtypes = {"F32": np.float32, "I64": np.int64}
    with open(path, "rb") as f:
        header_length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_length))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, stop = info["data_offsets"]
        tensors[name] = np.frombuffer(data[start:stop], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return tensors
