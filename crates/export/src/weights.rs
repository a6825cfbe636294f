//! The model directory's `model.safetensors`, read as f32 whatever it is stored in, under
//! Hugging Face's names (with or without the architecture prefix a checkpoint may carry).

use crate::ExportError;
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

pub struct Weights {
    path: PathBuf,
    map: memmap2::Mmap,
    /// Prefixes tried after the bare name: `bert.`, `roberta.`, `transformer.` (GPT2LMHeadModel).
    prefixes: &'static [&'static str],
}

/// A tensor converted to f32, row-major.
pub struct Array {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

impl Array {
    /// The transpose of a matrix: Hugging Face's Linear stores [out, in], MatMul wants [in, out].
    pub fn transposed(&self) -> Array {
        let (rows, cols) = (self.dims[0], self.dims[1]);
        let mut values = vec![0.0; self.values.len()];
        for r in 0..rows {
            for c in 0..cols {
                values[c * rows + r] = self.values[r * cols + c];
            }
        }
        Array { dims: vec![cols, rows], values }
    }

    /// Row `index` of a matrix, as a vector.
    pub fn row(&self, index: usize) -> Array {
        let cols = self.dims[1];
        Array { dims: vec![cols], values: self.values[index * cols..(index + 1) * cols].to_vec() }
    }
}

impl Weights {
    pub fn open(path: &Path, prefixes: &'static [&'static str]) -> Result<Weights, ExportError> {
        let file = std::fs::File::open(path).map_err(|source| ExportError::Io { path: path.into(), error: source })?;
        // SAFETY: read-only map; the model directory is not modified while we export it.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ExportError::Io { path: path.into(), error: source })?;
        SafeTensors::deserialize(&map).map_err(|e| ExportError::BadModel { path: path.into(), why: e.to_string() })?;
        Ok(Weights { path: path.into(), map, prefixes })
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.map).expect("validated when opened")
    }

    pub fn has(&self, name: &str) -> bool {
        let tensors = self.tensors();
        std::iter::once("").chain(self.prefixes.iter().copied()).any(|p| tensors.tensor(&format!("{p}{name}")).is_ok())
    }

    /// The tensor `name`, checked to have `dims`.
    pub fn get(&self, name: &str, dims: &[usize]) -> Result<Array, ExportError> {
        let tensors = self.tensors();
        let view = std::iter::once("")
            .chain(self.prefixes.iter().copied())
            .find_map(|p| tensors.tensor(&format!("{p}{name}")).ok())
            .ok_or_else(|| ExportError::BadModel {
                path: self.path.clone(),
                why: format!("no tensor `{name}` (looked with the prefixes {:?} too)", self.prefixes),
            })?;
        if view.shape() != dims {
            return Err(ExportError::BadModel {
                path: self.path.clone(),
                why: format!("tensor `{name}` has shape {:?}, but the config implies {dims:?}", view.shape()),
            });
        }
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
            other => {
                return Err(ExportError::BadModel {
                    path: self.path.clone(),
                    why: format!("tensor `{name}` has dtype {other:?}, not a floating-point type"),
                })
            }
        };
        Ok(Array { dims: dims.to_vec(), values })
    }
}
