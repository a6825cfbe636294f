use simcse_core::atomic::WriteError;
use simcse_core::model_dir::ModelDirError;
use std::path::PathBuf;

/// Everything that can go wrong converting a checkpoint. Each message names the file and
/// what is wrong with it, so that the user knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: not a checkpoint: {why}", path.display())]
    NotACheckpoint { path: PathBuf, why: String },
    #[error("{}: damaged zip archive: {why}", path.display())]
    BadZip { path: PathBuf, why: String },
    #[error("{}: truncated or damaged: {why}", path.display())]
    Truncated { path: PathBuf, why: String },
    #[error("{}: {why} (at pickle byte {offset})", path.display())]
    BadPickle { path: PathBuf, offset: u64, why: String },
    #[error(
        "{}: refusing to unpickle `{module}.{name}`: a state dict holds only tensors, storages and \
         dicts, and loading any other global can run arbitrary code",
        path.display()
    )]
    RefusedGlobal { path: PathBuf, module: String, name: String },
    #[error("{}: tensor `{name}`: {why}", path.display())]
    BadTensor { path: PathBuf, name: String, why: String },
    #[error("{}: not supported: {why}", path.display())]
    Unsupported { path: PathBuf, why: String },
    #[error("{}: not a valid safetensors file: {why}", path.display())]
    BadSafetensors { path: PathBuf, why: String },
    #[error("{}: bad shard index: {why}", path.display())]
    BadIndex { path: PathBuf, why: String },
    #[error(transparent)]
    ModelDir(#[from] ModelDirError),
    #[error("{why}")]
    KeyCollision { why: String },
    #[error("destination {}: {why}", path.display())]
    Destination { path: PathBuf, why: String },
    #[error("verification of {} failed: tensor `{name}`: {why}", path.display())]
    Verify { path: PathBuf, name: String, why: String },
    #[error("interrupted; nothing was written to {}", path.display())]
    Interrupted { path: PathBuf },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{0}")]
    Options(String),
}

impl ConvertError {
    /// The same error with paths inside the temporary directory `staging` named as they will
    /// be under the destination `dst`: the user never sees our temporary names.
    pub fn named_under(mut self, staging: &std::path::Path, dst: &std::path::Path) -> ConvertError {
        use ConvertError::*;
        let path = match &mut self {
            Io { path, .. } | Truncated { path, .. } | Verify { path, .. } | BadTensor { path, .. } => path,
            Interrupted { path } => {
                *path = dst.to_path_buf();
                return self;
            }
            Write(e) => &mut e.path,
            _ => return self,
        };
        if let Ok(relative) = path.strip_prefix(staging) {
            *path = dst.join(relative);
        }
        self
    }
}
