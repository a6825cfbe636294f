"""simcse-rs in Python: SimCSE's tool API on an ONNX Runtime or tract runtime, without PyTorch.

    from simcse_rs import SimCSE
    model = SimCSE("path/to/model_dir")
    embeddings = model.encode("A woman is reading.")

ONNX Runtime's library is taken, in order, from ``ORT_DYLIB_PATH``, from the installed
``onnxruntime`` package (``pip install simcse-rs[ort]``), or not at all: then models run on tract
(pure Rust, CPU), and ``default_backend()`` says so.
"""

import glob
import importlib.util
import os

from . import _args, _native
from ._native import POOLERS, Index, __version__

__all__ = ["SimCSE", "Encoder", "Index", "POOLERS", "default_backend", "onnxruntime_library", "__version__"]


def _find_onnxruntime():
    """The shared library inside the installed ``onnxruntime`` package, without importing it."""
    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):  # ValueError: sys.modules["onnxruntime"] is None
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for pattern in ("libonnxruntime.so.*", "libonnxruntime.*.dylib", "onnxruntime.dll"):
            found = sorted(glob.glob(os.path.join(location, "capi", pattern)))
            if found:
                return found[-1]
    return None


_ONNXRUNTIME = os.environ.get("ORT_DYLIB_PATH") or _find_onnxruntime()
if _ONNXRUNTIME and "ORT_DYLIB_PATH" not in os.environ:
    _native.prefer_onnxruntime(_ONNXRUNTIME)


def default_backend():
    """``"ort"`` where ONNX Runtime's library was found, else ``"tract"``."""
    return "ort" if _ONNXRUNTIME else "tract"


def onnxruntime_library():
    """The path and build of the ONNX Runtime library this process uses (loading it), or
    ``None`` where none was found."""
    if not _ONNXRUNTIME:
        return None
    return _native.onnxruntime_library()


class Encoder(_native.Encoder):
    """An exported encoder: ``Encoder(model_dir).encode(sentences)`` is a float32 numpy array,
    one row per sentence, computed with the GIL released.

    Keyword arguments: ``device`` ("cpu", "cuda", "cuda:N"), ``backend`` ("ort" or "tract";
    default ``default_backend()``), ``pooler`` (one of ``POOLERS``; default the graph's),
    ``batch_size``, ``max_length`` (default the model's), ``threads``. A model directory
    without ``model.onnx`` is exported on load (into a temporary directory for another pooler).
    """

    def __new__(cls, model_dir, *, device="cpu", backend=None, pooler=None, batch_size=64, max_length=None, threads=None):
        return super().__new__(
            cls,
            os.fspath(model_dir),
            device=device,
            backend=backend or default_backend(),
            pooler=pooler,
            batch_size=_args.batch_size(batch_size),
            max_length=_args.max_length(max_length),
            threads=_args.threads(threads),
        )

    def encode(self, sentences, *, batch_size=None, max_length=None):
        """Embeddings of a list of sentences, ``[len(sentences), dim]`` float32; ``batch_size``
        and ``max_length`` change the encoder's from this call on."""
        sentences, single = _args.sentences_of(sentences, "sentences")
        if single:
            raise ValueError("sentences must be a list of str (for one sentence: [sentence])")
        return super().encode(
            sentences,
            batch_size=None if batch_size is None else _args.batch_size(batch_size),
            max_length=_args.max_length(max_length),
        )


from .tool import SimCSE  # noqa: E402  (it needs Encoder)
