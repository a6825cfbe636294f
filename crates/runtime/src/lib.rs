//! Sentence encoding at deployment: inference backends (ONNX Runtime, tract) behind one
//! trait, the encoder over them, search, and writing embeddings. Depends on neither libtorch
//! nor the trainer.

pub mod backend;
pub mod encoder;
mod error;
#[cfg(feature = "ort")]
pub mod onnxruntime;
pub mod output;
pub mod search;
pub mod similarity;
pub mod tool;

pub use backend::{Backend, Device};
/// Tokenization, batching and STS scoring live in the core crate (the trainer shares them).
pub use simcse_core::{batch, sts, tokenize, Embeddings};
pub use encoder::{BackendKind, Encoder, EncoderOptions};
pub use error::RuntimeError;
/// What an exported encoder says about itself (its ONNX metadata).
pub use simcse_core::EncoderMetadata as ModelInfo;
