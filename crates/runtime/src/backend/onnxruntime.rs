//! The ONNX Runtime backend: CPU, or the CUDA execution provider (with IO binding) when asked.
//! Asking for CUDA where it cannot be used is an error that says why; nothing falls back.

use super::{Backend, Device};
use crate::batch::Batch;
use crate::RuntimeError;
use ort::ep::{self, ExecutionProvider};
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::Tensor;
use std::path::Path;

pub struct OrtBackend {
    session: Session,
    token_type_ids: bool,
    device: Device,
    description: String,
}

fn ort_error<E: std::fmt::Display>(e: E) -> RuntimeError {
    RuntimeError::Ort(e.to_string())
}

impl OrtBackend {
    /// `threads`: intra-op threads on CPU (`None`: ONNX Runtime's default, one per core).
    pub fn new(model: &Path, token_type_ids: bool, device: Device, threads: Option<usize>) -> Result<OrtBackend, RuntimeError> {
        let runtime = crate::onnxruntime::load()?;
        let mut builder = Session::builder(&runtime.environment).map_err(ort_error)?;
        if let Some(threads) = threads {
            builder = builder.with_intra_threads(threads).map_err(ort_error)?;
        }
        if let Device::Cuda(id) = device {
            if !ep::CUDA::is_available().unwrap_or(false) {
                return Err(RuntimeError::Device(format!(
                    "CUDA was requested, but the ONNX Runtime loaded from {} has no CUDA execution provider \
                     (libonnxruntime_providers_cuda.so must sit beside it; PyPI's `onnxruntime` is CPU only). \
                     Point ORT_DYLIB_PATH at a GPU build, e.g. the bundle of shared/gpu/make-ort-cuda-bundle.sh",
                    runtime.path.display()
                )));
            }
            let cuda = ep::CUDA::default().with_device_id(id).build().error_on_failure();
            builder = builder.with_execution_providers([cuda]).map_err(|e| {
                RuntimeError::Device(format!(
                    "CUDA was requested, but ONNX Runtime could not start its CUDA execution provider on device {id}: {e} \
                     (is a GPU present, and are the CUDA 13 and cuDNN 9 libraries on LD_LIBRARY_PATH?)"
                ))
            })?;
        }
        let session = builder.commit_from_file(model).map_err(|e| RuntimeError::BadModel {
            path: model.into(),
            why: format!("ONNX Runtime cannot load it: {e}"),
        })?;
        let description = format!("onnxruntime ({device}, {})", runtime.path.display());
        Ok(OrtBackend { session, token_type_ids, device, description })
    }

    fn inputs(&self, batch: &Batch) -> Result<Vec<(&'static str, Tensor<i64>)>, RuntimeError> {
        let shape = [batch.size, batch.seq];
        let mut inputs = vec![
            ("input_ids", Tensor::from_array((shape, batch.input_ids.clone())).map_err(ort_error)?),
            ("attention_mask", Tensor::from_array((shape, batch.attention_mask.clone())).map_err(ort_error)?),
        ];
        if self.token_type_ids {
            inputs.push(("token_type_ids", Tensor::from_array((shape, batch.token_type_ids.clone())).map_err(ort_error)?));
        }
        Ok(inputs)
    }
}

impl Backend for OrtBackend {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn embed(&mut self, batch: &Batch) -> Result<Vec<f32>, RuntimeError> {
        let inputs = self.inputs(batch)?;
        let extract = |outputs: &ort::session::SessionOutputs| -> Result<Vec<f32>, RuntimeError> {
            let (_, values) = outputs["sentence_embedding"].try_extract_tensor::<f32>().map_err(ort_error)?;
            Ok(values.to_vec())
        };
        match self.device {
            Device::Cpu => {
                let named: Vec<(std::borrow::Cow<str>, ort::session::SessionInputValue)> =
                    inputs.into_iter().map(|(n, t)| (std::borrow::Cow::Borrowed(n), t.into())).collect();
                let outputs = self.session.run(named).map_err(ort_error)?;
                extract(&outputs)
            }
            // IO binding: ONNX Runtime copies the inputs to the GPU once and writes the output
            // straight into host memory, without per-run allocations on either side.
            Device::Cuda(_) => {
                let mut binding = self.session.create_binding().map_err(ort_error)?;
                for (name, tensor) in &inputs {
                    binding.bind_input(*name, tensor).map_err(ort_error)?;
                }
                let host = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::CPUOutput)
                    .map_err(ort_error)?;
                binding.bind_output_to_device("sentence_embedding", &host).map_err(ort_error)?;
                let outputs = self.session.run_binding(&binding).map_err(ort_error)?;
                extract(&outputs)
            }
        }
    }
}
