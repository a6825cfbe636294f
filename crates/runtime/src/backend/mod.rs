//! Inference engines behind one trait: ONNX Runtime (CPU, CUDA) and tract (pure Rust, CPU).

#[cfg(feature = "ort")]
pub mod onnxruntime;
#[cfg(feature = "tract")]
pub mod tract;

use crate::batch::Batch;
use crate::RuntimeError;

/// Runs an exported encoder on a batch and returns its `sentence_embedding`, row-major
/// [batch.size, hidden]. `Send`: a server runs it on its own thread.
pub trait Backend: Send {
    fn describe(&self) -> String;
    fn embed(&mut self, batch: &Batch) -> Result<Vec<f32>, RuntimeError>;
}

pub use simcse_core::Device;
