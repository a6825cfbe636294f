//! What a source checkpoint holds, before any byte of tensor data is read: where each storage
//! lies in which file, and how each tensor views its storage. The readers (`torch`,
//! `safetensors_file`) produce a [`Checkpoint`]; the converter plans and streams from it.

use crate::dtype::DType;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// `torch.save` since PyTorch 1.6: a stored ZIP with `data.pkl` and one record per storage.
    TorchZip,
    /// `torch.save(..., _use_new_zipfile_serialization=False)` and PyTorch < 1.6: pickles
    /// followed by the raw storages.
    TorchLegacy,
    Safetensors,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceFormat::TorchZip => "PyTorch zip",
            SourceFormat::TorchLegacy => "PyTorch legacy",
            SourceFormat::Safetensors => "safetensors",
        })
    }
}

/// A run of bytes in one source file holding the elements of one storage.
#[derive(Debug, Clone)]
pub struct Storage {
    /// Index into [`Checkpoint::files`].
    pub file: usize,
    pub offset: u64,
    pub len: u64,
    pub dtype: DType,
}

/// A tensor as a strided view of a storage, as PyTorch describes it.
#[derive(Debug, Clone)]
pub struct SourceTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// In elements.
    pub strides: Vec<usize>,
    /// Index into [`Checkpoint::storages`].
    pub storage: usize,
    /// In elements, from the start of the storage.
    pub offset: usize,
}

impl SourceTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn nbytes(&self) -> u64 {
        (self.numel() * self.dtype.size()) as u64
    }

    /// Row-major contiguous (dimensions of size 1 may have any stride, as in PyTorch).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size != 1 && stride != expected {
                return false;
            }
            expected *= size;
        }
        true
    }

    /// One past the last element this view touches, in elements from the storage start;
    /// `None` on overflow.
    pub fn extent(&self) -> Option<usize> {
        if self.numel() == 0 {
            return Some(self.offset);
        }
        self.shape
            .iter()
            .zip(&self.strides)
            .try_fold(self.offset, |end, (&size, &stride)| end.checked_add((size - 1).checked_mul(stride)?))?
            .checked_add(1)
    }

    /// Same storage, same elements, same order: the tensors are one (tied weights).
    pub fn same_view(&self, other: &SourceTensor) -> bool {
        self.storage == other.storage
            && self.offset == other.offset
            && self.shape == other.shape
            && self.dtype == other.dtype
            && (self.strides == other.strides || self.numel() <= 1)
    }
}

/// Checks that a view fits its storage; the message names what does not fit.
pub fn check_view(tensor: &SourceTensor, storage: &Storage) -> Result<(), String> {
    if tensor.shape.len() != tensor.strides.len() {
        return Err(format!(
            "shape {:?} and strides {:?} have different lengths",
            tensor.shape, tensor.strides
        ));
    }
    if tensor.dtype != storage.dtype {
        return Err(format!("dtype {} does not match its storage's {}", tensor.dtype, storage.dtype));
    }
    let bytes = tensor.shape.iter().try_fold(tensor.dtype.size(), |n, &d| n.checked_mul(d));
    if bytes.is_none_or(|b| b as u64 > u64::MAX / 2) {
        return Err(format!("shape {:?} has more elements than 64 bits can count: the checkpoint is damaged", tensor.shape));
    }
    let storage_numel = storage.len / storage.dtype.size() as u64;
    match tensor.extent() {
        Some(end) if end as u64 <= storage_numel => Ok(()),
        _ => Err(format!(
            "shape {:?} with strides {:?} at offset {} does not fit its storage of {} elements",
            tensor.shape, tensor.strides, tensor.offset, storage_numel
        )),
    }
}

#[derive(Debug)]
pub struct Checkpoint {
    pub format: SourceFormat,
    pub files: Vec<PathBuf>,
    pub storages: Vec<Storage>,
    pub tensors: Vec<SourceTensor>,
    /// Aliases the source recorded itself (safetensors metadata): removed name -> kept name.
    pub aliases: Vec<(String, String)>,
    /// Keys of the pickled object that hold something other than a tensor (an epoch counter, ...).
    pub skipped: Vec<String>,
}

impl Checkpoint {
    /// Appends another shard, renumbering its files and storages.
    pub fn merge(&mut self, other: Checkpoint) {
        let (file_base, storage_base) = (self.files.len(), self.storages.len());
        self.files.extend(other.files);
        self.storages.extend(other.storages.into_iter().map(|s| Storage { file: s.file + file_base, ..s }));
        self.tensors.extend(
            other.tensors.into_iter().map(|t| SourceTensor { storage: t.storage + storage_base, ..t }),
        );
        self.aliases.extend(other.aliases);
        self.skipped.extend(other.skipped);
    }
}

/// Open handles on a checkpoint's files, for reading tensor bytes.
pub struct SourceFiles {
    files: Vec<File>,
}

impl SourceFiles {
    pub fn open(checkpoint: &Checkpoint) -> std::io::Result<SourceFiles> {
        let files = checkpoint.files.iter().map(File::open).collect::<Result<_, _>>()?;
        Ok(SourceFiles { files })
    }

    pub fn file(&self, index: usize) -> &File {
        &self.files[index]
    }

    /// Byte range in its file of a contiguous tensor.
    pub fn contiguous_range(checkpoint: &Checkpoint, tensor: &SourceTensor) -> (usize, u64, u64) {
        let storage = &checkpoint.storages[tensor.storage];
        let start = storage.offset + (tensor.offset * tensor.dtype.size()) as u64;
        (storage.file, start, tensor.nbytes())
    }

    /// Appends the tensor's elements to `out` in row-major order, gathering strided views.
    pub fn read_tensor(&self, checkpoint: &Checkpoint, tensor: &SourceTensor, out: &mut Vec<u8>) -> std::io::Result<()> {
        let storage = &checkpoint.storages[tensor.storage];
        let file = &self.files[storage.file];
        let elem = tensor.dtype.size();
        if tensor.is_contiguous() {
            let (_, start, len) = Self::contiguous_range(checkpoint, tensor);
            let at = out.len();
            out.resize(at + len as usize, 0);
            return file.read_exact_at(&mut out[at..], start);
        }
        // A strided view: read the span it touches once, then gather element by element.
        let first = tensor.offset;
        let end = tensor.extent().expect("views are checked when the checkpoint is read");
        let mut span = vec![0u8; (end - first) * elem];
        file.read_exact_at(&mut span, storage.offset + (first * elem) as u64)?;
        out.reserve(tensor.nbytes() as usize);
        gather(&span, elem, &tensor.shape, &tensor.strides, out);
        Ok(())
    }
}

/// Copies the elements of a strided view (starting at `span[0]`) to `out` in row-major order.
fn gather(span: &[u8], elem: usize, shape: &[usize], strides: &[usize], out: &mut Vec<u8>) {
    if shape.iter().product::<usize>() == 0 {
        return;
    }
    let dims = shape.len();
    if dims == 0 {
        out.extend_from_slice(&span[..elem]);
        return;
    }
    let (inner_size, inner_stride) = (shape[dims - 1], strides[dims - 1]);
    let mut index = vec![0usize; dims - 1];
    loop {
        let base: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum();
        if inner_stride == 1 {
            out.extend_from_slice(&span[base * elem..(base + inner_size) * elem]);
        } else {
            for i in 0..inner_size {
                let at = (base + i * inner_stride) * elem;
                out.extend_from_slice(&span[at..at + elem]);
            }
        }
        // Advance the outer multi-index like an odometer.
        let mut dim = dims - 1;
        loop {
            if dim == 0 {
                return;
            }
            dim -= 1;
            index[dim] += 1;
            if index[dim] < shape[dim] {
                break;
            }
            index[dim] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_transposed_matrix() {
        // storage [0 1 2 3 4 5] as a 2x3 matrix, viewed transposed (3x2, strides [1, 3]).
        let span: Vec<u8> = (0..6u8).collect();
        let mut out = Vec::new();
        gather(&span, 1, &[3, 2], &[1, 3], &mut out);
        assert_eq!(out, vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn extent_and_contiguity() {
        let t = SourceTensor {
            name: "t".into(),
            dtype: DType::F32,
            shape: vec![2, 3],
            strides: vec![3, 1],
            storage: 0,
            offset: 4,
        };
        assert!(t.is_contiguous());
        assert_eq!(t.extent(), Some(10));
        let every_other = SourceTensor { strides: vec![6, 2], ..t.clone() };
        assert!(!every_other.is_contiguous());
        assert_eq!(every_other.extent(), Some(4 + 6 + 4 + 1));
    }
}
