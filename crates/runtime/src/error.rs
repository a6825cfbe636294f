use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: {why}", path.display())]
    BadModel { path: PathBuf, why: String },
    #[error("tokenizer of {}: {why}", path.display())]
    Tokenizer { path: PathBuf, why: String },
    #[cfg(feature = "ort")]
    #[error(transparent)]
    OrtLoad(#[from] crate::onnxruntime::OrtLoadError),
    #[error("{what} is not in this build (built without the `{feature}` feature)")]
    NotInThisBuild { what: &'static str, feature: &'static str },
    #[error("ONNX Runtime: {0}")]
    Ort(String),
    #[error("tract: {0}")]
    Tract(String),
    #[error("{0}")]
    Device(String),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    ModelDir(#[from] simcse_core::ModelDirError),
    #[error(transparent)]
    Write(#[from] simcse_core::atomic::WriteError),
    #[error(transparent)]
    Export(#[from] simcse_export::ExportError),
}

#[cfg(feature = "ort")]
impl From<ort::Error> for RuntimeError {
    fn from(e: ort::Error) -> Self {
        RuntimeError::Ort(e.to_string())
    }
}

impl From<simcse_core::onnx_metadata::MetadataError> for RuntimeError {
    fn from(error: simcse_core::onnx_metadata::MetadataError) -> Self {
        use simcse_core::onnx_metadata::MetadataError;
        match error {
            MetadataError::Io { path, error } => RuntimeError::Io { path, error },
            MetadataError::Bad { path, why } => RuntimeError::BadModel { path, why },
        }
    }
}

impl From<simcse_core::InputError> for RuntimeError {
    fn from(error: simcse_core::InputError) -> Self {
        use simcse_core::InputError;
        match error {
            InputError::Io { path, error } => RuntimeError::Io { path, error },
            InputError::Tokenizer { path, why } => RuntimeError::Tokenizer { path, why },
            InputError::Invalid(why) => RuntimeError::Input(why),
        }
    }
}
