"""simcse_rs.SimCSE against SimCSE 0.4's own tool on the bundled all-MiniLM-L6-v2: encode,
similarity, build_index + search, the argument variants, and the errors of bad arguments."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import simcse_rs
from simcse_rs import SimCSE

from conftest import FIXTURES, ROOT, copy_model, read_safetensors

POOLERS = ("cls", "cls_before_pooler")


def assert_close(ours, theirs, tolerance=1e-5):
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert ours.dtype == np.float32, ours.dtype
    difference = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    assert difference <= tolerance, f"max abs difference {difference} > {tolerance}"


def assert_same_hits(ours, theirs):
    assert [sentence for sentence, _ in ours] == [sentence for sentence, _ in theirs]
    for (_, score), (_, expected) in zip(ours, theirs):
        assert type(score) is float
        assert abs(score - expected) <= 1e-5, (score, expected)


@pytest.mark.parametrize("pooler", POOLERS)
def test_encode_equals_simcse(tools, reference, pooler):
    arrays, data = reference
    tool, sentences, queries = tools[pooler], data["sentences"], data["queries"]
    assert_close(tool.encode(sentences), arrays[f"{pooler}.encode"])
    assert_close(tool.encode(sentences, normalize_to_unit=False), arrays[f"{pooler}.encode_raw"])
    assert_close(tool.encode(queries[0]), arrays[f"{pooler}.encode_one"])
    assert_close(tool.encode(queries[0], keepdim=True), arrays[f"{pooler}.encode_keepdim"])
    assert_close(tool.encode(sentences, max_length=8, batch_size=3), arrays[f"{pooler}.encode_short"])
    # return_numpy is SimCSE's switch between a tensor and an array: an array either way.
    assert_close(tool.encode(sentences, return_numpy=True), arrays[f"{pooler}.encode"])
    assert_close(tool.encode(tuple(sentences)), arrays[f"{pooler}.encode"])


@pytest.mark.parametrize("pooler", POOLERS)
def test_similarity_equals_simcse(tools, reference, pooler):
    arrays, data = reference
    tool, sentences, queries = tools[pooler], data["sentences"], data["queries"]
    assert_close(tool.similarity(queries, sentences), arrays[f"{pooler}.similarity"])
    assert_close(tool.similarity(queries[0], sentences), arrays[f"{pooler}.similarity_one"])
    pair = tool.similarity(queries[0], sentences[0])
    assert type(pair) is float
    assert abs(pair - float(arrays[f"{pooler}.similarity_pair"])) <= 1e-5
    keys = tool.encode(sentences[:4])
    assert_close(tool.similarity(queries, keys), arrays[f"{pooler}.similarity_keys"])


@pytest.mark.parametrize("pooler", POOLERS)
@pytest.mark.parametrize("faiss_fast", [False, True])
def test_search_equals_simcse(tools, reference, pooler, faiss_fast):
    _, data = reference
    tool, expected = tools[pooler], data["search"][pooler]
    tool.build_index(data["sentences"], use_faiss=False, faiss_fast=faiss_fast)
    assert tool.index["index"].approximate == faiss_fast
    results = tool.search(data["queries"])
    assert len(results) == len(expected["queries"])
    for ours, theirs in zip(results, expected["queries"]):
        assert_same_hits(ours, theirs)
    assert_same_hits(tool.search(data["queries"][0]), expected["one"])
    assert_same_hits(tool.search(data["queries"][1], threshold=0.3, top_k=3), expected["threshold_0.3_top_3"])


def test_index_from_a_file_and_added_to(tools, reference, tmp_path):
    _, data = reference
    tool, sentences = tools["cls"], data["sentences"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"{s}  \n" for s in sentences[:6]))  # trailing spaces: rstrip()
    tool.build_index(str(corpus))
    assert tool.index["sentences"] == sentences[:6]
    tool.add_to_index(sentences[6:])
    assert len(tool.index["index"]) == len(sentences) == len(tool.index["sentences"])
    for ours, theirs in zip(tool.search(data["queries"]), data["search"]["cls"]["queries"]):
        assert_same_hits(ours, theirs)
    # Thresholds and top_k hold for a list of queries too.
    for hits in tool.search(data["queries"], threshold=0.75, top_k=1):
        assert len(hits) <= 1 and all(score >= 0.75 for _, score in hits)


def test_poolers_by_default(model_dir, tmp_path, tools):
    # No simcse.json: SimCSE's rule, on the path.
    assert tools["cls"].pooler == "cls"
    assert SimCSE(model_dir).pooler == "cls"
    unsup = copy_model(tmp_path / "unsup-minilm")
    assert SimCSE(unsup).pooler == "cls_before_pooler"
    # A graph of another pooler went to a temporary directory: the model directory has none.
    assert not os.path.exists(os.path.join(model_dir, "model.onnx"))


def test_the_directory_pooler_equals_transformers(tmp_path):
    """simcse.json's pooler wins over SimCSE's rule: avg, against transformers' mean pooling."""
    model = copy_model(tmp_path / "minilm", {"pooler": "avg", "max_seq_length": 128, "normalize": False})
    tool = SimCSE(model)
    assert tool.pooler == "avg"
    with open(os.path.join(ROOT, "tests", "fixtures", "encoders", "sentences.txt")) as f:
        sentences = [line.rstrip("\n") for line in f]
    expected = read_safetensors(os.path.join(ROOT, "tests", "fixtures", "encoders", "minilm_expected.safetensors"))
    assert_close(tool.encode(sentences, normalize_to_unit=False), expected["pooled.avg"], tolerance=1e-4)
    # No pooler asked for: the graph is the directory's own model.onnx, as `simcse export` writes it.
    assert os.path.isfile(os.path.join(model, "model.onnx"))


def test_a_normalizing_graph_refuses_raw_embeddings(tmp_path):
    model = copy_model(tmp_path / "minilm", {"pooler": "avg", "max_seq_length": 128, "normalize": True})
    tool = SimCSE(model)
    norms = np.linalg.norm(tool.encode(["A man plays a guitar.", "Hello!"]), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="normalizes its embeddings"):
        tool.encode("Hello!", normalize_to_unit=False)


def test_encoder_equals_simcse_raw_and_releases_the_gil(model_dir, reference):
    arrays, data = reference
    encoder = simcse_rs.Encoder(model_dir, pooler="cls", max_length=128)
    assert (encoder.dim, encoder.pooler, encoder.max_length) == (384, "cls", 128)
    assert_close(encoder.encode(data["sentences"]), arrays["cls.encode_raw"])
    embeddings = encoder.encode(data["sentences"])
    embeddings[0, 0] = 1.0  # a writable array of its own

    # Encoding on a thread, the main thread goes on running Python all along.
    sentences = data["sentences"][:10] * 100
    done, ticks = threading.Event(), 0
    worker = threading.Thread(target=lambda: (encoder.encode(sentences), done.set()))
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    assert ticks >= 50, f"the main thread ran {ticks} times while 1000 sentences were encoded"


def test_tract_equals_onnxruntime(model_dir, reference):
    arrays, data = reference
    ort = simcse_rs.Encoder(model_dir, pooler="cls", backend="ort", max_length=128)
    tract = simcse_rs.Encoder(model_dir, pooler="cls", backend="tract", max_length=128)
    assert (ort.backend, tract.backend) == ("ort", "tract")
    assert_close(tract.encode(data["sentences"]), arrays["cls.encode_raw"], tolerance=1e-4)
    assert_close(tract.encode(data["sentences"]), ort.encode(data["sentences"]), tolerance=1e-4)


def test_onnxruntime_comes_from_the_installed_package():
    import importlib.util

    location = importlib.util.find_spec("onnxruntime").submodule_search_locations[0]
    path, build = simcse_rs.onnxruntime_library()
    assert os.path.realpath(path).startswith(os.path.realpath(location)), (path, location)
    assert os.path.basename(path).startswith("libonnxruntime") and "ORT Build Info" in build, (path, build)
    assert simcse_rs.default_backend() == "ort"
    # The package under test is the installed wheel, not python/simcse_rs.
    assert os.path.realpath(simcse_rs.__file__).startswith(os.path.realpath(sys.prefix)), simcse_rs.__file__


def test_without_onnxruntime_the_default_is_tract(model_dir):
    script = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "import simcse_rs\n"
        "tool = simcse_rs.SimCSE(sys.argv[1])\n"
        "print(simcse_rs.default_backend(), tool.backend, tool.device, tool.encode('Hello!').shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"}
    done = subprocess.run([sys.executable, "-c", script, model_dir], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tract", "tract", "cpu", "(384,)"]
    with_ort = subprocess.run(
        [sys.executable, "-c", script.replace("sys.modules['onnxruntime'] = None", "pass"), model_dir], capture_output=True, text=True, timeout=300, env=env
    )
    assert with_ort.stdout.split() == ["ort", "ort", "cpu", "(384,)"], with_ort.stderr


def test_empty_input(tools):
    tool = tools["cls"]
    empty = tool.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    assert tool.similarity([], ["Hello!"]).shape == (0, 1)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda t: t.encode(123), ValueError, "must be a str or a list of str, not int"),
        (lambda t: t.encode(["a", 1]), ValueError, r"sentence\[1\] is a int"),
        (lambda t: t.encode("a", batch_size=0), ValueError, "batch_size must be an int of at least 1"),
        (lambda t: t.encode("a", batch_size=2.5), ValueError, "batch_size must be an int"),
        (lambda t: t.encode("a", max_length=1), ValueError, "max_length must be an int of at least 2"),
        (lambda t: t.encode("a", max_length=100_000), ValueError, "past the model's position table"),
        (lambda t: t.encode("a", max_length=10**20), ValueError, "max_length 100000000000000000000 is out of range"),
        (lambda t: t.encode("a", batch_size=10**6), ValueError, "batch_size 1000000 is out of range: 1 to 16384"),
        (lambda t: t.encode("a", device="tpu"), ValueError, "is not cpu, cuda or cuda:N"),
        (lambda t: t.encode("a", device="cuda"), RuntimeError, "CUDA"),
        (lambda t: t.similarity("a", np.zeros(7, dtype=np.float32)), ValueError, "Incompatible dimension"),
        (lambda t: t.similarity("a", np.zeros((1, 1, 384))), ValueError, "1-D or 2-D"),
        (lambda t: t.build_index([]), ValueError, "no sentences to index"),
        (lambda t: t.build_index("/nonexistent/corpus.txt"), FileNotFoundError, "corpus.txt"),
        (lambda t: t.build_index(42), ValueError, "sentences_or_file_path must be a str or a list of str"),
    ],
)
def test_bad_arguments(tools, call, error, message):
    tool = tools["cls"]
    with pytest.raises(error, match=message):
        call(tool)
    # The interpreter and the model are fine afterwards.
    assert tool.encode("Hello!").shape == (384,)


def test_bad_search_arguments(model_dir):
    tool = SimCSE(model_dir)
    with pytest.raises(RuntimeError, match="call build_index first"):
        tool.search("a")
    with pytest.raises(RuntimeError, match="call build_index first"):
        tool.add_to_index(["a"])
    tool.build_index(["A man plays a guitar.", "A woman is reading."])
    with pytest.raises(ValueError, match="top_k must be an int of at least 1"):
        tool.search("a", top_k=0)
    with pytest.raises(ValueError, match="not a cosine similarity"):
        tool.search("a", threshold=2)
    with pytest.raises(ValueError, match="threshold must be a number"):
        tool.search("a", threshold="high")
    assert tool.search("A man plays a guitar.", threshold=0.99)[0][0] == "A man plays a guitar."
    assert len(tool.search("A man plays a guitar.", threshold=-1, top_k=10**30)) == 2


def test_bad_encoder_arguments(model_dir):
    encoder = simcse_rs.Encoder(model_dir, pooler="cls")
    with pytest.raises(ValueError, match=r"sentences must be a list of str \(for one sentence"):
        encoder.encode("A man plays a guitar.")
    with pytest.raises(ValueError, match=r"sentences\[0\] is a int"):
        encoder.encode([1])
    with pytest.raises(ValueError, match="threads must be an int of at least 1, not 0"):
        simcse_rs.Encoder(model_dir, threads=0)
    with pytest.raises(TypeError):
        simcse_rs.Encoder(model_dir, "cpu")  # keyword arguments only, as documented


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        (("/nonexistent/model",), {}, OSError, "no such model directory"),
        ((FIXTURES,), {}, OSError, "config.json"),
        ((None,), {}, ValueError, "must be a path to a model directory"),
        (("MODEL",), {"pooler": "max"}, NotImplementedError, "pooler 'max' is not one of cls"),
        (("MODEL",), {"backend": "torch"}, ValueError, "is not ort or tract"),
        (("MODEL",), {"device": "cuda:x"}, ValueError, "is not cpu, cuda or cuda:N"),
        (("MODEL",), {"num_cells": 0}, ValueError, "num_cells must be an int of at least 1"),
        (("MODEL",), {"threads": 100_000}, ValueError, "out of range"),
    ],
)
def test_bad_construction(model_dir, args, kwargs, error, message):
    args = tuple(model_dir if a == "MODEL" else a for a in args)
    with pytest.raises(error, match=message):
        SimCSE(*args, **kwargs)


def test_ctrl_c_interrupts_a_long_encode(model_dir):
    script = (
        "import sys, simcse_rs\n"
        "encoder = simcse_rs.Encoder(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "encoder.encode(['A man is playing a guitar on the stage tonight.'] * 200_000)\n"
        "print('finished', flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, model_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert "KeyboardInterrupt" in stderr, stderr
    assert process.returncode != 0
    assert time.monotonic() - started < 60
