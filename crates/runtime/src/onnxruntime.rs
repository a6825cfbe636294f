//! Finding and loading ONNX Runtime's shared library (ort's `load-dynamic`): the binary does
//! not link it, so that the same build runs with the CPU library from PyPI's `onnxruntime`
//! wheel or with a CUDA build, whichever the machine has.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where `scripts/setup.sh` put the library, baked in at build time (`.cargo/config.toml`).
const BUILT_WITH: Option<&str> = option_env!("SIMCSE_ORT_DYLIB");

/// The loaded library and the process's one ONNX Runtime environment.
pub struct OrtRuntime {
    pub path: PathBuf,
    /// ONNX Runtime's own description of its build (version, commit).
    pub build_info: String,
    pub environment: ort::environment::Environment,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum OrtLoadError {
    #[error(
        "ONNX Runtime's shared library was not found; looked at: {}. Run scripts/setup.sh, or set \
         ORT_DYLIB_PATH to a libonnxruntime.so (1.31 or newer)",
        tried.join(", ")
    )]
    NotFound { tried: Vec<String> },
    #[error("loading ONNX Runtime from {}: {why}", path.display())]
    Load { path: PathBuf, why: String },
}

impl OrtRuntime {
    /// Whether this build of ONNX Runtime has the CUDA execution provider.
    pub fn cuda_available(&self) -> bool {
        use ort::ep::ExecutionProvider;
        ort::ep::CUDA::is_available().unwrap_or(false)
    }
}

/// A library the embedding program found (the Python package finds the `onnxruntime` wheel's).
static PREFERRED: OnceLock<PathBuf> = OnceLock::new();

/// Tries `path` before the library beside the executable and the built-in one; it must be
/// called before the first `load()`. `ORT_DYLIB_PATH` still comes first. False if too late.
pub fn prefer_library(path: PathBuf) -> bool {
    PREFERRED.set(path).is_ok() && LOADED.get().is_none()
}

/// The candidates, in order: `ORT_DYLIB_PATH`, the preferred library, the library beside the
/// executable, the one the build was configured with (none where built with it empty).
fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        paths.push(PathBuf::from(path));
    }
    if let Some(path) = PREFERRED.get() {
        paths.push(path.clone());
    }
    if let Some(dir) = std::env::current_exe().ok().as_deref().and_then(Path::parent) {
        paths.push(dir.join("libonnxruntime.so"));
    }
    if let Some(path) = BUILT_WITH.filter(|path| !path.is_empty()) {
        paths.push(PathBuf::from(path));
    }
    paths
}

/// Loads ONNX Runtime once per process; later calls return the same runtime (or error).
static LOADED: OnceLock<Result<OrtRuntime, OrtLoadError>> = OnceLock::new();

pub fn load() -> Result<&'static OrtRuntime, OrtLoadError> {
    LOADED.get_or_init(load_first_found).as_ref().map_err(Clone::clone)
}

fn load_first_found() -> Result<OrtRuntime, OrtLoadError> {
    let candidates = candidates();
    let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| OrtLoadError::NotFound {
        tried: candidates.iter().map(|p| p.display().to_string()).collect(),
    })?;
    let path = path.canonicalize().unwrap_or_else(|_| path.clone());
    let load_error = |why: String| OrtLoadError::Load { path: path.clone(), why };
    let builder = ort::init_from(&path).map_err(|e| load_error(e.to_string()))?;
    let environment = builder.with_name("simcse").build().map_err(|e| load_error(e.to_string()))?;
    Ok(OrtRuntime { build_info: ort::info().to_string(), path, environment })
}
