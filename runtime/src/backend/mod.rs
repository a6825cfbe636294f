//! Inference engines behind one trait: ONNX Runtime (CPU, CUDA) and tract (pure Rust, CPU).

pub mod onnxruntime;
pub mod tract;

use crate::batch::Batch;
use crate::RuntimeError;

/// Runs an exported encoder on a batch and returns its `sentence_embedding`, row-major
/// [batch.size, hidden].
pub trait Backend {
    fn describe(&self) -> String;
    fn embed(&mut self, batch: &Batch) -> Result<Vec<f32>, RuntimeError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(i32),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(id) => write!(f, "cuda:{id}"),
        }
    }
}
