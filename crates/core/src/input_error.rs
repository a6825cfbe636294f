/// What reading and preparing inputs can fail with: tokenizers, STS files, embeddings out of
/// an encoder. Each engine's error takes it in (`From`), keeping its message.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: {error}", path.display())]
    Io { path: std::path::PathBuf, error: std::io::Error },
    #[error("tokenizer of {}: {why}", path.display())]
    Tokenizer { path: std::path::PathBuf, why: String },
    #[error("{0}")]
    Invalid(String),
}
