//! Writing `model.safetensors` as a stream: the header is computed from the checkpoint's
//! structure alone, then each tensor's bytes are copied (in the kernel, where no cast or
//! gather is needed) straight from the source files. Memory stays at about one tensor.

use crate::checkpoint::{Checkpoint, SourceFiles, SourceTensor};
use crate::dtype::{cast_into, cast_target, DType};
use crate::ConvertError;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// One tensor of the output file.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    pub name: String,
    /// Index into the checkpoint's tensors.
    pub source: usize,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Byte range within the data section.
    pub begin: u64,
    pub end: u64,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub tensors: Vec<PlannedTensor>,
    /// Tensors that share the bytes of another (tied weights): `(removed, kept)`.
    pub aliases: Vec<(String, String)>,
    pub data_len: u64,
}

/// Decides names, dtypes and layout. `names[i]` is the output name of the checkpoint's tensor i.
/// Tensors that are the same view of one storage are written once; the others are recorded in
/// the metadata as `removed -> kept`, as `safetensors.torch.save_model` does (keeping the name
/// that sorts first).
pub fn plan(checkpoint: &Checkpoint, names: &[String], target: Option<DType>) -> Result<Plan, ConvertError> {
    let mut first_source: HashMap<&str, usize> = HashMap::new();
    for (index, name) in names.iter().enumerate() {
        if let Some(&other) = first_source.get(name.as_str()) {
            return Err(ConvertError::KeyCollision {
                why: format!(
                    "`{}` and `{}` would both be written as `{name}`; adjust --strip-prefix",
                    checkpoint.tensors[other].name, checkpoint.tensors[index].name
                ),
            });
        }
        first_source.insert(name, index);
    }

    // Group identical views; each group keeps the name that sorts first.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of_view: HashMap<ViewKey, usize> = HashMap::new();
    for (index, tensor) in checkpoint.tensors.iter().enumerate() {
        let group = *group_of_view.entry(ViewKey::of(tensor)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(index);
    }
    let mut kept = Vec::new();
    let mut aliases = Vec::new();
    for group in groups {
        let keep = *group.iter().min_by_key(|&&i| &names[i]).unwrap();
        for &other in group.iter().filter(|&&i| i != keep) {
            aliases.push((names[other].clone(), names[keep].clone()));
        }
        kept.push(keep);
    }
    // Aliases the source file itself recorded, under their new names.
    for (removed, kept_name) in &checkpoint.aliases {
        if let Some(&kept_index) = checkpoint.tensors.iter().position(|t| &t.name == kept_name).as_ref() {
            let renamed = names.iter().zip(&checkpoint.tensors).find(|(_, t)| &t.name == removed);
            let removed_name = renamed.map(|(n, _)| n.clone()).unwrap_or_else(|| removed.clone());
            aliases.push((removed_name, names[kept_index].clone()));
        }
    }
    aliases.sort();

    // Largest elements first, then by name: every tensor stays aligned to its element size.
    kept.sort_by(|&a, &b| {
        let (da, db) = (cast_target(checkpoint.tensors[a].dtype, target), cast_target(checkpoint.tensors[b].dtype, target));
        db.size().cmp(&da.size()).then_with(|| names[a].cmp(&names[b]))
    });
    let mut offset = 0u64;
    let tensors = kept
        .into_iter()
        .map(|index| {
            let source = &checkpoint.tensors[index];
            let dtype = cast_target(source.dtype, target);
            let len = (source.numel() * dtype.size()) as u64;
            let planned = PlannedTensor {
                name: names[index].clone(),
                source: index,
                dtype,
                shape: source.shape.clone(),
                begin: offset,
                end: offset + len,
            };
            offset += len;
            planned
        })
        .collect();
    Ok(Plan { tensors, aliases, data_len: offset })
}

#[derive(PartialEq, Eq, Hash)]
struct ViewKey {
    storage: usize,
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
    dtype: DType,
}

impl ViewKey {
    fn of(tensor: &SourceTensor) -> ViewKey {
        ViewKey {
            storage: tensor.storage,
            offset: tensor.offset,
            shape: tensor.shape.clone(),
            // The strides of a tensor of at most one element do not change what it holds.
            strides: if tensor.numel() <= 1 { Vec::new() } else { tensor.strides.clone() },
            dtype: tensor.dtype,
        }
    }
}

/// The header: `__metadata__` (format and aliases) and each tensor's dtype, shape and offsets,
/// padded with spaces to a multiple of 8 bytes as the reference implementation does.
pub fn header(plan: &Plan) -> Vec<u8> {
    use serde_json::{json, Map, Value};
    let mut metadata = Map::new();
    metadata.insert("format".into(), "pt".into());
    for (removed, kept) in &plan.aliases {
        metadata.insert(removed.clone(), kept.clone().into());
    }
    let mut root = Map::new();
    root.insert("__metadata__".into(), Value::Object(metadata));
    for t in &plan.tensors {
        root.insert(
            t.name.clone(),
            json!({ "dtype": t.dtype.safetensors_name(), "shape": t.shape, "data_offsets": [t.begin, t.end] }),
        );
    }
    let mut text = serde_json::to_vec(&Value::Object(root)).expect("a JSON map always serializes");
    text.resize(text.len().div_ceil(8) * 8, b' ');
    text
}

/// Streams the planned tensors into `path`. `progress(done, total)` is called after each
/// tensor; returning false stops the write.
pub fn write(
    path: &Path,
    plan: &Plan,
    checkpoint: &Checkpoint,
    files: &SourceFiles,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<(), ConvertError> {
    let io = |source| ConvertError::Io { path: path.into(), error: source };
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
    let header = header(plan);
    out.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(&header).map_err(io)?;
    let mut converted = Vec::new();
    let mut raw = Vec::new();
    for planned in &plan.tensors {
        let source = &checkpoint.tensors[planned.source];
        let source_path = &checkpoint.files[checkpoint.storages[source.storage].file];
        let read_error = |source| ConvertError::Io { path: source_path.clone(), error: source };
        if source.is_contiguous() && source.dtype == planned.dtype {
            let (file, start, len) = SourceFiles::contiguous_range(checkpoint, source);
            let mut file = files.file(file);
            file.seek(SeekFrom::Start(start)).map_err(read_error)?;
            // File to file: std uses copy_file_range, so the bytes never enter this process.
            let copied = std::io::copy(&mut file.take(len), &mut out).map_err(io)?;
            if copied != len {
                return Err(ConvertError::Truncated {
                    path: source_path.clone(),
                    why: format!("tensor `{}` needs {len} bytes but only {copied} could be read", source.name),
                });
            }
        } else {
            raw.clear();
            files.read_tensor(checkpoint, source, &mut raw).map_err(read_error)?;
            converted.clear();
            cast_into(&raw, source.dtype, planned.dtype, &mut converted);
            out.write_all(&converted).map_err(io)?;
        }
        if !progress(planned.end, plan.data_len) {
            return Err(ConvertError::Interrupted { path: path.into() });
        }
    }
    out.into_inner().map_err(|e| io(e.into_error()))?;
    Ok(())
}

/// Re-reads the written file with the reference `safetensors` crate and checks every tensor,
/// bit for bit, against the source (after the requested cast), and every alias.
pub fn verify(path: &Path, plan: &Plan, checkpoint: &Checkpoint, files: &SourceFiles) -> Result<(), ConvertError> {
    let fail = |name: &str, why: String| ConvertError::Verify { path: path.into(), name: name.into(), why };
    let file = File::open(path).map_err(|source| ConvertError::Io { path: path.into(), error: source })?;
    // SAFETY: read-only map of a file this process just wrote and nobody else knows about yet.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ConvertError::Io { path: path.into(), error: source })?;
    let written = safetensors::SafeTensors::deserialize(&map).map_err(|e| fail("(header)", e.to_string()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| fail("(header)", e.to_string()))?;
    if written.len() != plan.tensors.len() {
        return Err(fail("(all)", format!("{} tensors written, {} planned", written.len(), plan.tensors.len())));
    }
    let (mut raw, mut expected) = (Vec::new(), Vec::new());
    for planned in &plan.tensors {
        let view = written.tensor(&planned.name).map_err(|e| fail(&planned.name, e.to_string()))?;
        if DType::from_safetensors(view.dtype()) != Some(planned.dtype) || view.shape() != planned.shape {
            return Err(fail(&planned.name, format!("written as {:?} {:?}", view.dtype(), view.shape())));
        }
        let source = &checkpoint.tensors[planned.source];
        raw.clear();
        files
            .read_tensor(checkpoint, source, &mut raw)
            .map_err(|source| ConvertError::Io { path: checkpoint.files[0].clone(), error: source })?;
        expected.clear();
        cast_into(&raw, source.dtype, planned.dtype, &mut expected);
        if let Some(at) = view.data().iter().zip(&expected).position(|(a, b)| a != b) {
            return Err(fail(&planned.name, format!("differs from the source at byte {at}")));
        }
        if view.data().len() != expected.len() {
            return Err(fail(&planned.name, format!("{} bytes, expected {}", view.data().len(), expected.len())));
        }
    }
    let metadata: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    for (removed, kept) in &plan.aliases {
        if metadata.get(removed) != Some(kept) {
            return Err(fail(removed, format!("alias of `{kept}` missing from the metadata")));
        }
    }
    Ok(())
}
