//! Reading a `.safetensors` file as a conversion source (re-key or cast only).

use crate::checkpoint::{Checkpoint, SourceFormat, SourceTensor, Storage};
use crate::dtype::DType;
use crate::ConvertError;
use std::fs::File;
use std::path::Path;

/// Header length field plus the JSON header; tensor data follows.
const LEN_BYTES: u64 = 8;

/// True when the first bytes are a plausible safetensors header: a little-endian length, then `{`.
pub fn looks_like_safetensors(head: &[u8]) -> bool {
    head.len() >= 9 && head[8] == b'{' && u64::from_le_bytes(head[..8].try_into().unwrap()) < 100_000_000
}

pub fn read(path: &Path, file: &File) -> Result<Checkpoint, ConvertError> {
    let bad = |why: String| ConvertError::BadSafetensors { path: path.into(), why };
    // SAFETY: the map is read-only and only the header is read through it; a concurrent writer
    // truncating the file is the usual mmap caveat, and the data itself is read with pread.
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(|source| ConvertError::Io { path: path.into(), error: source })?;
    let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| bad(e.to_string()))?;
    let data_start = LEN_BYTES + header_len as u64;

    let mut names: Vec<_> = metadata.tensors().into_iter().collect();
    names.sort_by_key(|(_, info)| info.data_offsets.0);
    let (mut storages, mut tensors) = (Vec::new(), Vec::new());
    for (name, info) in names {
        let dtype = DType::from_safetensors(info.dtype)
            .ok_or_else(|| bad(format!("tensor `{name}` has dtype {:?}, which this converter does not handle", info.dtype)))?;
        let (begin, end) = info.data_offsets;
        let mut strides = vec![1usize; info.shape.len()];
        for i in (0..info.shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * info.shape[i + 1];
        }
        tensors.push(SourceTensor { name, dtype, shape: info.shape.clone(), strides, storage: storages.len(), offset: 0 });
        storages.push(Storage { file: 0, offset: data_start + begin as u64, len: (end - begin) as u64, dtype });
    }
    // safetensors.torch.save_model records tensors it dropped as shared: `removed -> kept`.
    let known: std::collections::HashSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    let aliases = metadata
        .metadata()
        .iter()
        .flatten()
        .filter(|(removed, kept)| known.contains(kept.as_str()) && !known.contains(removed.as_str()))
        .map(|(removed, kept)| (removed.clone(), kept.clone()))
        .collect();
    Ok(Checkpoint { format: SourceFormat::Safetensors, files: vec![path.into()], storages, tensors, aliases, skipped: vec![] })
}
