//! `simcse_rs._native`: the runtime's encoder and search index for Python. The SimCSE tool API
//! (`simcse_rs.SimCSE`) is written in Python over these two classes, in `simcse_rs/tool.py`.
//!
//! Work runs with the GIL released; long encodes are cut into chunks so that Ctrl-C (a pending
//! KeyboardInterrupt) is seen between them.

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use simcse_core::{Embeddings, Pooler};
use simcse_runtime::search::{HnswParams, SearchIndex};
use simcse_runtime::{BackendKind, Device, EncoderOptions, RuntimeError};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// Sentences encoded between two looks for a pending KeyboardInterrupt.
const SENTENCES_PER_CHUNK: usize = 2048;

/// The Python exception for a runtime error: what the user got wrong is a ValueError, a file
/// or model that is missing or broken an OSError, the backend failing a RuntimeError.
fn to_py(error: RuntimeError) -> PyErr {
    let message = error.to_string();
    match &error {
        RuntimeError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        RuntimeError::Io { .. } | RuntimeError::BadModel { .. } | RuntimeError::Tokenizer { .. } | RuntimeError::ModelDir(_) => {
            PyOSError::new_err(message)
        }
        RuntimeError::Input(_) => PyValueError::new_err(message),
        _ => PyRuntimeError::new_err(message),
    }
}

fn locked<T>(mutex: &Mutex<T>) -> PyResult<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| PyRuntimeError::new_err("an earlier call on this object panicked; create it again"))
}

fn parse<T: std::str::FromStr<Err = String>>(what: &str, text: &str) -> PyResult<T> {
    text.parse().map_err(|why: String| PyValueError::new_err(format!("{what}: {why}")))
}

/// A float32 array of `rows` x `dim` that owns its (writable) memory.
fn to_numpy<'py>(py: Python<'py>, values: &[f32], rows: usize, dim: usize) -> PyResult<Bound<'py, PyAny>> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let buffer = PyByteArray::new(py, &bytes);
    py.import("numpy")?.getattr("frombuffer")?.call1((buffer, "float32"))?.call_method1("reshape", ((rows, dim),))
}

/// Row-major float32 bytes (numpy's `tobytes()`) as embeddings of `dim` dimensions.
fn embeddings_from(bytes: &[u8], dim: usize) -> PyResult<Embeddings> {
    if dim == 0 || bytes.len() % (4 * dim) != 0 {
        return Err(PyValueError::new_err(format!("{} bytes are not rows of {dim} float32 values", bytes.len())));
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Embeddings { rows: values.len() / dim, dim, values })
}

/// An exported encoder: `Encoder(model_dir).encode(["a sentence", ...])` is a float32 array of
/// one row per sentence, as `simcse encode` writes them (not normalized unless the graph is).
#[pyclass(module = "simcse_rs._native", frozen, subclass)]
struct Encoder {
    inner: Mutex<simcse_runtime::Encoder>,
    #[pyo3(get)]
    dim: usize,
    #[pyo3(get)]
    pooler: String,
    /// Whether the graph itself normalizes its embeddings to unit length.
    #[pyo3(get)]
    normalizes: bool,
    #[pyo3(get)]
    backend: String,
    #[pyo3(get)]
    device: String,
    /// The ONNX file that runs.
    #[pyo3(get)]
    onnx: PathBuf,
    /// What opening did that the user may want to know (a graph exported on load, ...).
    #[pyo3(get)]
    notes: Vec<String>,
}

#[pymethods]
impl Encoder {
    #[new]
    #[pyo3(signature = (model_dir, *, device = "cpu", backend = "ort", pooler = None, batch_size = 64, max_length = None, threads = None))]
    fn new(
        py: Python<'_>,
        model_dir: PathBuf,
        device: &str,
        backend: &str,
        pooler: Option<&str>,
        batch_size: usize,
        max_length: Option<usize>,
        threads: Option<usize>,
    ) -> PyResult<Encoder> {
        let options = EncoderOptions {
            backend: parse::<BackendKind>("backend", backend)?,
            device: parse::<Device>("device", device)?,
            batch_size,
            max_length,
            onnx: None,
            threads,
            pooler: pooler.map(|p| parse::<Pooler>("pooler", p)).transpose()?,
            prefix: None,
        };
        let encoder = py.detach(|| simcse_runtime::Encoder::open(&model_dir, &options)).map_err(to_py)?;
        Ok(Encoder {
            dim: encoder.info.hidden_size,
            pooler: encoder.info.pooler.to_string(),
            normalizes: encoder.info.normalize,
            backend: backend.to_string(),
            device: options.device.to_string(),
            onnx: encoder.onnx.clone(),
            notes: encoder.notes.clone(),
            inner: Mutex::new(encoder),
        })
    }

    /// The tokens a sentence is truncated to.
    #[getter]
    fn max_length(&self) -> PyResult<usize> {
        Ok(locked(&self.inner)?.tokenizer.max_length)
    }

    #[getter]
    fn batch_size(&self) -> PyResult<usize> {
        Ok(locked(&self.inner)?.batch_size())
    }

    /// Embeddings of `sentences`, `[len(sentences), dim]` float32, in their order. `batch_size`
    /// and `max_length` change the encoder's from this call on.
    #[pyo3(signature = (sentences, *, batch_size = None, max_length = None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        sentences: Vec<String>,
        batch_size: Option<usize>,
        max_length: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        {
            let mut encoder = locked(&self.inner)?;
            if let Some(batch_size) = batch_size {
                encoder.set_batch_size(batch_size).map_err(to_py)?;
            }
            if let Some(max_length) = max_length {
                encoder.set_max_length(max_length).map_err(to_py)?;
            }
        }
        let mut values = Vec::with_capacity(sentences.len() * self.dim);
        for chunk in sentences.chunks(SENTENCES_PER_CHUNK) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let embeddings = py.detach(|| -> PyResult<Embeddings> { locked(&self.inner)?.encode(&refs).map_err(to_py) })?;
            values.extend(embeddings.values);
            py.check_signals()?;
        }
        to_numpy(py, &values, sentences.len(), self.dim)
    }

    fn __repr__(&self) -> String {
        format!("Encoder(onnx={:?}, pooler={:?}, dim={}, backend={:?}, device={:?})", self.onnx, self.pooler, self.dim, self.backend, self.device)
    }
}

/// Unit-normalized embeddings and their exact (or HNSW) top-k search, as `simcse search` has it.
#[pyclass(module = "simcse_rs._native", frozen)]
struct Index {
    inner: Mutex<SearchIndex>,
    #[pyo3(get)]
    dim: usize,
}

#[pymethods]
impl Index {
    #[new]
    fn new(dim: usize) -> PyResult<Index> {
        if dim == 0 {
            return Err(PyValueError::new_err("an index of 0 dimensions"));
        }
        Ok(Index { inner: Mutex::new(SearchIndex::new(dim)), dim })
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(locked(&self.inner)?.len())
    }

    /// Adds `sentences` with their embeddings (`tobytes()` of a float32 array, one row each).
    fn add(&self, py: Python<'_>, sentences: Vec<String>, embeddings: &[u8]) -> PyResult<()> {
        let embeddings = embeddings_from(embeddings, self.dim)?;
        py.detach(|| locked(&self.inner)?.add(sentences, &embeddings).map_err(to_py))
    }

    /// Adds an HNSW graph over what the index holds (and what is added later); search uses it.
    #[pyo3(signature = (*, max_connections = 32, ef_construction = 200, ef_search = 128))]
    fn build_approximate(&self, py: Python<'_>, max_connections: usize, ef_construction: usize, ef_search: usize) -> PyResult<()> {
        if max_connections == 0 || ef_construction == 0 || ef_search == 0 {
            return Err(PyValueError::new_err("max_connections, ef_construction and ef_search must be at least 1"));
        }
        let params = HnswParams { max_connections, ef_construction, ef_search };
        py.detach(|| {
            locked(&self.inner)?.build_approximate(params);
            Ok(())
        })
    }

    #[getter]
    fn approximate(&self) -> PyResult<bool> {
        Ok(locked(&self.inner)?.is_approximate())
    }

    /// For each query row, up to `top_k` `(row, score)` of score >= `threshold`, best first.
    fn search(&self, py: Python<'_>, queries: &[u8], top_k: usize, threshold: f32) -> PyResult<Vec<Vec<(usize, f32)>>> {
        let queries = embeddings_from(queries, self.dim)?;
        let hits = py.detach(|| locked(&self.inner)?.search(&queries, top_k, threshold).map_err(to_py))?;
        Ok(hits.into_iter().map(|hits| hits.into_iter().map(|hit| (hit.index, hit.score)).collect()).collect())
    }
}

/// Tries ONNX Runtime's library at `path` before the others (`ORT_DYLIB_PATH` still comes
/// first). False where ONNX Runtime was loaded already.
#[pyfunction]
fn prefer_onnxruntime(path: PathBuf) -> bool {
    simcse_runtime::onnxruntime::prefer_library(path)
}

/// The ONNX Runtime library this process loads (loading it): its path and build, or an
/// OSError that says where it looked.
#[pyfunction]
fn onnxruntime_library(py: Python<'_>) -> PyResult<(PathBuf, String)> {
    let runtime = py.detach(simcse_runtime::onnxruntime::load).map_err(|e| PyOSError::new_err(e.to_string()))?;
    Ok((runtime.path.clone(), runtime.build_info.clone()))
}

/// Whether the loaded ONNX Runtime has the CUDA execution provider.
#[pyfunction]
fn onnxruntime_has_cuda(py: Python<'_>) -> PyResult<bool> {
    let runtime = py.detach(simcse_runtime::onnxruntime::load).map_err(|e| PyOSError::new_err(e.to_string()))?;
    Ok(runtime.cuda_available())
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Encoder>()?;
    module.add_class::<Index>()?;
    module.add_function(wrap_pyfunction!(prefer_onnxruntime, module)?)?;
    module.add_function(wrap_pyfunction!(onnxruntime_library, module)?)?;
    module.add_function(wrap_pyfunction!(onnxruntime_has_cuda, module)?)?;
    module.add("POOLERS", Pooler::ALL.iter().map(|p| p.name()).collect::<Vec<_>>())?;
    module.add("MAX_BATCH_SIZE", simcse_runtime::encoder::MAX_BATCH_SIZE)?;
    module.add("MAX_THREADS", simcse_runtime::encoder::MAX_THREADS)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
