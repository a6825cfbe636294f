//! Sentence encoding at deployment: tokenization, length-sorted batching, inference backends
//! (ONNX Runtime, tract) behind one trait, and writing embeddings. Depends on neither
//! libtorch nor the trainer.

pub mod backend;
pub mod batch;
pub mod encoder;
mod error;
#[cfg(feature = "ort")]
pub mod onnxruntime;
pub mod output;
pub mod search;
pub mod similarity;
pub mod sts;
pub mod tool;
pub mod tokenize;

pub use backend::{Backend, Device};
pub use encoder::{BackendKind, Embeddings, Encoder, EncoderOptions};
pub use error::RuntimeError;
/// What an exported encoder says about itself (its ONNX metadata).
pub use simcse_core::EncoderMetadata as ModelInfo;
