//! Finding the weights in what the user points at (a model directory or a file) and reading
//! them, sniffing the format from the first bytes rather than trusting the file name.

use crate::checkpoint::Checkpoint;
use crate::{safetensors_file, torch, zip, ConvertError};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The weight files a model directory may hold, in the order we prefer them: this tool exists
/// to convert PyTorch pickles, so those win over an existing safetensors file.
pub const WEIGHT_FILES: &[&str] = &[
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "model.safetensors",
];

#[derive(Debug, Clone)]
pub struct Source {
    /// The file the user named, or the one we picked in their directory.
    pub weights: PathBuf,
    /// Where config and tokenizer files are looked for.
    pub dir: PathBuf,
}

impl Source {
    pub fn locate(src: &Path) -> Result<Source, ConvertError> {
        let meta = std::fs::metadata(src).map_err(|source| ConvertError::Io { path: src.into(), error: source })?;
        if meta.is_file() {
            let dir = src.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
            return Ok(Source { weights: src.into(), dir });
        }
        WEIGHT_FILES
            .iter()
            .map(|name| src.join(name))
            .find(|path| path.is_file())
            .map(|weights| Source { weights, dir: src.into() })
            .ok_or_else(|| ConvertError::NotACheckpoint {
                path: src.into(),
                why: format!("a directory without weights; expected one of {}", WEIGHT_FILES.join(", ")),
            })
    }

    pub fn is_index(&self) -> bool {
        self.weights.extension().is_some_and(|e| e == "json")
    }

    /// Reads the checkpoint's structure (names, dtypes, shapes, where the bytes are); no data.
    pub fn read(&self) -> Result<Checkpoint, ConvertError> {
        if self.is_index() {
            read_sharded(&self.weights)
        } else {
            read_file(&self.weights)
        }
    }
}

/// Reads one weight file of any supported format.
pub fn read_file(path: &Path) -> Result<Checkpoint, ConvertError> {
    let file = File::open(path).map_err(|source| ConvertError::Io { path: path.into(), error: source })?;
    let mut head = Vec::with_capacity(512);
    // The readers below start from the beginning of the file.
    (&file).take(512).read_to_end(&mut head).map_err(|source| ConvertError::Io { path: path.into(), error: source })?;
    (&file).seek(SeekFrom::Start(0)).map_err(|source| ConvertError::Io { path: path.into(), error: source })?;
    if zip::looks_like_zip(&head) {
        torch::read_zip(path, &file)
    } else if torch::looks_like_legacy(&head) {
        torch::read_legacy(path, &file)
    } else if safetensors_file::looks_like_safetensors(&head) {
        safetensors_file::read(path, &file)
    } else {
        let why = if head.is_empty() {
            "the file is empty".to_string()
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            "a tar archive: the format of PyTorch < 0.4, which is not supported; load and re-save it \
             with a newer PyTorch"
                .to_string()
        } else {
            let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!(
                "neither a PyTorch zip archive, a legacy PyTorch pickle nor safetensors (it starts with {})",
                shown.join(" ")
            )
        };
        Err(ConvertError::NotACheckpoint { path: path.into(), why })
    }
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: std::collections::BTreeMap<String, String>,
}

/// `*.index.json`: `weight_map` names the shard of each tensor; we read every shard once.
fn read_sharded(index_path: &Path) -> Result<Checkpoint, ConvertError> {
    let index: ShardIndex = simcse_core::model_dir::read_json(index_path, "a shard index").map_err(ConvertError::from)?;
    let dir = index_path.parent().unwrap_or(Path::new("."));
    let shards: BTreeSet<&String> = index.weight_map.values().collect();
    let mut merged: Option<Checkpoint> = None;
    for shard in shards {
        if shard.contains('/') || shard.contains("..") {
            return Err(ConvertError::BadIndex { path: index_path.into(), why: format!("shard name `{shard}` is not a file name") });
        }
        let checkpoint = read_file(&dir.join(shard))?;
        match merged.as_mut() {
            None => merged = Some(checkpoint),
            Some(all) => all.merge(checkpoint),
        }
    }
    let merged = merged.ok_or_else(|| ConvertError::BadIndex { path: index_path.into(), why: "an empty weight_map".into() })?;
    let present: BTreeSet<&str> = merged.tensors.iter().map(|t| t.name.as_str()).collect();
    if let Some((name, shard)) = index.weight_map.iter().find(|(name, _)| !present.contains(name.as_str())) {
        return Err(ConvertError::BadIndex {
            path: index_path.into(),
            why: format!("tensor `{name}` is mapped to {shard}, which does not hold it"),
        });
    }
    Ok(merged)
}
