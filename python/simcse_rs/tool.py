"""SimCSE's ``simcse.SimCSE`` (tool.py of SimCSE 0.4) on simcse-rs's runtime: the same methods,
argument names, defaults and return shapes, with numpy arrays where SimCSE returns tensors.

Where it differs, on purpose (README.md, "Python"):
  - ``model_name_or_path`` is a local model directory; nothing is downloaded.
  - ``pooler=None`` takes the pooler the directory records (``simcse.json``); only a directory
    that records none gets SimCSE's rule (``cls_before_pooler`` for "unsup" paths, else ``cls``).
  - ``device=None`` is "cuda" where the ONNX Runtime in use has the CUDA provider, else "cpu".
  - ``use_faiss`` / ``faiss_fast`` never import faiss: the index is simcse-rs's own, exact, or
    an HNSW graph for ``faiss_fast=True`` (``num_cells_in_search`` sets its search breadth).
  - ``search`` of a list of queries applies ``threshold`` and ``top_k`` (SimCSE's brute-force
    path drops them for lists).
"""

import logging
import os
from numbers import Real

import numpy as np

from . import Encoder, Index, POOLERS, _args, _native, default_backend
from ._args import positive_int as _positive_int, sentences_of as _sentences_of

logger = logging.getLogger(__name__)


def _unit_rows(vectors):
    """Rows scaled to unit length; zero rows stay zero (as scikit-learn's ``normalize``)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return vectors / norms


def _read_lines(path):
    with open(path, "r") as f:
        return [line.rstrip() for line in f]


def _has_simcse_json(path):
    return os.path.isfile(os.path.join(path, "simcse.json"))


class SimCSE(object):
    """A class for embedding sentences, calculating similarities, and retrieving sentences by SimCSE."""

    def __init__(self, model_name_or_path, device=None, num_cells=100, num_cells_in_search=10, pooler=None, *, backend=None, threads=None):
        if not isinstance(model_name_or_path, (str, os.PathLike)):
            raise ValueError(f"model_name_or_path must be a path to a model directory, not {type(model_name_or_path).__name__}")
        path = os.fspath(model_name_or_path)
        if not os.path.isdir(path):
            raise OSError(
                f"{path}: no such model directory (simcse_rs reads local directories only: "
                "`simcse convert` a Hugging Face checkpoint into one first)"
            )
        if pooler is not None and pooler not in POOLERS:
            raise NotImplementedError(f"pooler {pooler!r} is not one of {', '.join(POOLERS)}")
        if pooler is None and not _has_simcse_json(path):
            if "unsup" in path:
                logger.info("Use `cls_before_pooler` for unsupervised models. If you want to use other pooling policy, specify `pooler` argument.")
                pooler = "cls_before_pooler"
            else:
                pooler = "cls"
        self.num_cells = _positive_int("num_cells", num_cells)
        self.num_cells_in_search = _positive_int("num_cells_in_search", num_cells_in_search)
        self.model_name_or_path = path
        self.backend = backend or default_backend()
        self.threads = _args.threads(threads)
        self._requested_pooler = pooler
        self._encoders = {}
        if device is None:
            device = "cuda" if self.backend == "ort" and _native.onnxruntime_has_cuda() else "cpu"
        self.device = device
        # Opened now, so that a bad directory, pooler or device is an error here, not later.
        self.pooler = self._encoder(device).pooler

        self.index = None
        self.is_faiss_index = False

    def _encoder(self, device):
        device = self.device if device is None else device
        if not isinstance(device, str):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {device!r}")
        if device not in self._encoders:
            encoder = Encoder(self.model_name_or_path, device=device, backend=self.backend, pooler=self._requested_pooler, threads=self.threads)
            for note in encoder.notes:
                logger.info(note)
            self._encoders[device] = encoder
        return self._encoders[device]

    def encode(self, sentence, device=None, return_numpy=False, normalize_to_unit=True, keepdim=False, batch_size=64, max_length=128):
        """Embeddings of a sentence ``[dim]`` (``[1, dim]`` with ``keepdim``) or of a list
        ``[n, dim]``, float32. ``return_numpy`` is accepted for SimCSE's sake: the result is
        a numpy array either way."""
        sentences, single_sentence = _sentences_of(sentence)
        batch_size = _args.batch_size(batch_size)
        max_length = _args.max_length(max_length)
        encoder = self._encoder(device)
        if not normalize_to_unit and encoder.normalizes:
            raise ValueError(
                f"{encoder.onnx} normalizes its embeddings in the graph (exported with --normalize): "
                "normalize_to_unit=False cannot undo that; export the model without --normalize"
            )
        if not sentences:
            return np.zeros((0, encoder.dim), dtype=np.float32)
        embeddings = encoder.encode(sentences, batch_size=batch_size, max_length=max_length)
        if normalize_to_unit:
            embeddings = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        if single_sentence and not keepdim:
            embeddings = embeddings[0]
        return embeddings

    def similarity(self, queries, keys, device=None):
        """Cosine similarities: a float for one query and one key, ``[M]`` for one query,
        else ``[N, M]``. ``keys`` may be embeddings (a numpy array) instead of sentences."""
        query_vecs = self.encode(queries, device=device, return_numpy=True)
        if isinstance(keys, np.ndarray):
            if keys.ndim not in (1, 2):
                raise ValueError(f"keys as an array must be 1-D or 2-D, not {keys.ndim}-D")
            key_vecs = keys
        else:
            key_vecs = self.encode(keys, device=device, return_numpy=True)

        single_query, single_key = len(query_vecs.shape) == 1, len(key_vecs.shape) == 1
        if single_query:
            query_vecs = query_vecs.reshape(1, -1)
        if single_key:
            key_vecs = key_vecs.reshape(1, -1)
        if key_vecs.shape[1] != query_vecs.shape[1]:
            raise ValueError(f"Incompatible dimension for X and Y matrices: X.shape[1] == {query_vecs.shape[1]} while Y.shape[1] == {key_vecs.shape[1]}")

        similarities = _unit_rows(query_vecs) @ _unit_rows(key_vecs.astype(query_vecs.dtype, copy=False)).T
        if single_query:
            similarities = similarities[0]
            if single_key:
                similarities = float(similarities[0])
        return similarities

    def build_index(self, sentences_or_file_path, use_faiss=None, faiss_fast=False, device=None, batch_size=64):
        """Encodes the sentences (or the lines of a file) into a new index, exact, or with an
        HNSW graph for ``faiss_fast=True``."""
        sentences = self._corpus(sentences_or_file_path)
        if not sentences:
            raise ValueError("no sentences to index")
        embeddings = self.encode(sentences, device=device, batch_size=batch_size, normalize_to_unit=True, return_numpy=True)
        index = Index(embeddings.shape[1])
        index.add(sentences, np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
        if faiss_fast:
            index.build_approximate(ef_search=max(self.num_cells_in_search, 1) * 16)
        self.index = {"sentences": sentences, "index": index}
        self.is_faiss_index = bool(use_faiss is None or use_faiss)

    def add_to_index(self, sentences_or_file_path, device=None, batch_size=64):
        """Adds sentences (or the lines of a file) to the index ``build_index`` made."""
        if self.index is None:
            raise RuntimeError("no index yet: call build_index first")
        sentences = self._corpus(sentences_or_file_path)
        if not sentences:
            return
        embeddings = self.encode(sentences, device=device, batch_size=batch_size, normalize_to_unit=True, return_numpy=True)
        self.index["index"].add(sentences, np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
        self.index["sentences"].extend(sentences)

    def search(self, queries, device=None, threshold=0.6, top_k=5):
        """For one query, its ``[(sentence, score), ...]`` of score >= ``threshold``, best
        first, at most ``top_k``; for a list of queries, one such list each."""
        if self.index is None:
            raise RuntimeError("no index yet: call build_index first")
        if isinstance(threshold, bool) or not isinstance(threshold, Real):
            raise ValueError(f"threshold must be a number, not {threshold!r}")
        top_k = _positive_int("top_k", top_k)
        top_k = min(top_k, max(len(self.index["sentences"]), 1))  # no more hits than sentences
        query_vecs = self.encode(queries, device=device, normalize_to_unit=True, keepdim=True, return_numpy=True)
        hits = self.index["index"].search(np.ascontiguousarray(query_vecs, dtype=np.float32).tobytes(), top_k, float(threshold))
        sentences = self.index["sentences"]
        results = [[(sentences[row], float(score)) for row, score in query_hits] for query_hits in hits]
        return results[0] if isinstance(queries, str) else results

    @staticmethod
    def _corpus(sentences_or_file_path):
        if isinstance(sentences_or_file_path, (str, os.PathLike)):
            return _read_lines(sentences_or_file_path)
        return _sentences_of(sentences_or_file_path, "sentences_or_file_path")[0]

    def __repr__(self):
        return f"SimCSE({self.model_name_or_path!r}, device={self.device!r}, pooler={self.pooler!r}, backend={self.backend!r})"
