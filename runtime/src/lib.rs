//! Sentence encoding at deployment: ONNX Runtime and tract backends, tokenization, batching,
//! similarity and STS evaluation. Depends on neither libtorch nor the trainer.

pub mod onnxruntime;

/// The pure-Rust ONNX engine is linked in; this names it for `simcse env`.
pub fn tract_description() -> String {
    let framework = tract_onnx::onnx();
    let _ = framework; // constructing the framework registers every supported operator
    "tract-onnx 0.23 (pure Rust, linked in)".to_string()
}
