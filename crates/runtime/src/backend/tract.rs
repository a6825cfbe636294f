//! The tract backend: pure Rust on the CPU, no native library, and an independent second
//! reader of every exported graph.

use super::Backend;
use crate::batch::Batch;
use crate::RuntimeError;
use std::path::Path;
use tract_onnx::prelude::*;

pub struct TractBackend {
    plan: std::sync::Arc<TypedRunnableModel>,
    token_type_ids: bool,
}

fn tract_error(e: TractError) -> RuntimeError {
    RuntimeError::Tract(format!("{e:#}"))
}

impl TractBackend {
    pub fn new(model: &Path, token_type_ids: bool) -> Result<TractBackend, RuntimeError> {
        let bad = |why: String| RuntimeError::BadModel { path: model.into(), why: format!("tract cannot load it: {why}") };
        let load = || -> TractResult<std::sync::Arc<TypedRunnableModel>> {
            tract_onnx::onnx().model_for_path(model)?.into_optimized()?.into_runnable()
        };
        // tract is a dependency: a bug in it must be an error here, not a crash.
        let plan = catching_panics(load)
            .map_err(|panic| bad(format!("tract panicked: {panic}")))?
            .map_err(|e| bad(format!("{e:#}")))?;
        Ok(TractBackend { plan, token_type_ids })
    }
}

impl Backend for TractBackend {
    fn describe(&self) -> String {
        "tract (cpu)".to_string()
    }

    fn embed(&mut self, batch: &Batch) -> Result<Vec<f32>, RuntimeError> {
        let shape = [batch.size, batch.seq];
        let tensor = |values: &[i64]| Tensor::from_shape(&shape, values).map_err(tract_error);
        let mut inputs: TVec<TValue> = tvec![tensor(&batch.input_ids)?.into(), tensor(&batch.attention_mask)?.into()];
        if self.token_type_ids {
            inputs.push(tensor(&batch.token_type_ids)?.into());
        }
        let outputs = catching_panics(|| self.plan.run(inputs))
            .map_err(|panic| RuntimeError::Tract(format!("tract panicked: {panic}")))?
            .map_err(tract_error)?;
        let embeddings = outputs[0].to_plain_array_view::<f32>().map_err(tract_error)?;
        Ok(embeddings.iter().copied().collect())
    }
}

/// Runs `f`, turning a panic into its message. The default hook is muted meanwhile so that
/// the user sees our error, not a backtrace from inside a dependency.
fn catching_panics<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}
