//! Sentences in, embeddings out: tokenize, sort by length, batch, run the backend, and put
//! every embedding back at its sentence's index.

use crate::backend::onnxruntime::OrtBackend;
use crate::backend::tract::TractBackend;
use crate::backend::{Backend, Device};
use crate::batch::{length_sorted_batches, Batch};
use crate::model_info::ModelInfo;
use crate::tokenize::{SentenceTokenizer, Tokens};
use crate::RuntimeError;
use simcse_converters::ModelDir;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Ort,
    Tract,
}

#[derive(Debug, Clone)]
pub struct EncoderOptions {
    pub backend: BackendKind,
    pub device: Device,
    pub batch_size: usize,
    /// Truncate sentences to this many tokens [default: the model's, from its metadata].
    pub max_length: Option<usize>,
    /// The ONNX file [default: MODEL_DIR/model.onnx].
    pub onnx: Option<PathBuf>,
    /// CPU threads for ONNX Runtime [default: one per core].
    pub threads: Option<usize>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions { backend: BackendKind::Ort, device: Device::Cpu, batch_size: 64, max_length: None, onnx: None, threads: None }
    }
}

/// Row-major [rows, dim] f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub rows: usize,
    pub dim: usize,
    pub values: Vec<f32>,
}

impl Embeddings {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

pub struct Encoder {
    pub tokenizer: SentenceTokenizer,
    pub info: ModelInfo,
    pub onnx: PathBuf,
    backend: Box<dyn Backend>,
    batch_size: usize,
}

impl Encoder {
    pub fn open(model_dir: &Path, options: &EncoderOptions) -> Result<Encoder, RuntimeError> {
        if options.batch_size == 0 {
            return Err(RuntimeError::Input("the batch size must be at least 1".into()));
        }
        let onnx = options.onnx.clone().unwrap_or_else(|| model_dir.join("model.onnx"));
        if !onnx.is_file() {
            return Err(RuntimeError::BadModel {
                path: onnx,
                why: "no such file: run `simcse export` on the model directory first".into(),
            });
        }
        let info = ModelInfo::read(&onnx)?;
        let config = ModelDir::new(model_dir).config()?;
        let max_length = options.max_length.unwrap_or(info.max_length);
        let tokenizer = SentenceTokenizer::load(model_dir, &config, max_length)?;
        let backend: Box<dyn Backend> = match options.backend {
            BackendKind::Ort => Box::new(OrtBackend::new(&onnx, info.token_type_ids, options.device, options.threads)?),
            BackendKind::Tract => {
                if options.device != Device::Cpu {
                    return Err(RuntimeError::Device(format!(
                        "tract runs on the CPU only; use --backend ort for {}",
                        options.device
                    )));
                }
                if info.optimize == "ort" {
                    return Err(RuntimeError::BadModel {
                        path: onnx,
                        why: "this graph uses ONNX Runtime's fused contrib ops (exported with --optimize ort), \
                              which tract does not run; export without --optimize for tract"
                            .into(),
                    });
                }
                Box::new(TractBackend::new(&onnx, info.token_type_ids)?)
            }
        };
        Ok(Encoder { tokenizer, info, onnx, backend, batch_size: options.batch_size })
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    pub fn encode(&mut self, sentences: &[&str]) -> Result<Embeddings, RuntimeError> {
        self.encode_with_progress(sentences, &mut |_, _| {})
    }

    /// `progress(done, total)` after each batch.
    pub fn encode_with_progress(
        &mut self,
        sentences: &[&str],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Embeddings, RuntimeError> {
        let tokens = self.tokenizer.tokenize(sentences)?;
        let dim = self.info.hidden_size;
        let (backend, onnx) = (&mut self.backend, &self.onnx);
        let mut embed_batch = |batch: &Batch| -> Result<Vec<f32>, RuntimeError> {
            let output = backend.embed(batch)?;
            if output.len() != batch.size * dim {
                return Err(RuntimeError::BadModel {
                    path: onnx.clone(),
                    why: format!("returned {} values for {} sentences of {dim} dimensions", output.len(), batch.size),
                });
            }
            Ok(output)
        };
        embed_in_length_order(&tokens, self.tokenizer.pad_id, self.batch_size, dim, &mut embed_batch, progress)
    }
}

/// Embeds tokenized sentences in length-sorted batches of `batch_size` (the least padding)
/// through `embed_batch` (a padded batch in, [batch.size, dim] row-major out), and puts every
/// row back at its sentence's index. `progress(done, total)` after each batch.
pub fn embed_in_length_order(
    tokens: &[Tokens],
    pad_id: i64,
    batch_size: usize,
    dim: usize,
    embed_batch: &mut dyn FnMut(&Batch) -> Result<Vec<f32>, RuntimeError>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Embeddings, RuntimeError> {
    let mut values = vec![0f32; tokens.len() * dim];
    let mut done = 0;
    for indices in length_sorted_batches(tokens, batch_size) {
        let members: Vec<_> = indices.iter().map(|&i| &tokens[i]).collect();
        let output = embed_batch(&Batch::pad(&members, pad_id))?;
        if output.len() != indices.len() * dim {
            return Err(RuntimeError::Input(format!("{} values for {} sentences of {dim} dimensions", output.len(), indices.len())));
        }
        for (row, &index) in indices.iter().enumerate() {
            values[index * dim..(index + 1) * dim].copy_from_slice(&output[row * dim..(row + 1) * dim]);
        }
        done += indices.len();
        progress(done, tokens.len());
    }
    Ok(Embeddings { rows: tokens.len(), dim, values })
}
