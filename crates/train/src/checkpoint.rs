//! What training writes: model directories in Hugging Face's layout with `simcse.json` (the
//! run's output directory itself, and each checkpoint), and the training state a checkpoint
//! adds for `--resume`. Every file is written whole (`simcse_core::atomic`); a checkpoint
//! is filled under a temporary name and renamed into place, so a crash never damages one.

use anyhow::Context;
use simcse_core::atomic::{self, StagedDir};
use simcse_core::model_dir::{COMPANION_FILES, CONFIG_FILE, PYTORCH_WEIGHTS_FILE, SIMCSE_FILE, WEIGHTS_FILE};
use simcse_convert::torch_write::{self, TensorRecord};
use simcse_convert::DType;
use simcse_core::SimcseConfig;
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

/// sentence-transformers' files describe a pooling the trained model may no longer use.
const NOT_COPIED: &[&str] = &[CONFIG_FILE, "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json"];

/// Tensors as f32 on the CPU, with their shapes and little-endian bytes.
fn f32_records(tensors: &[(String, Tensor)]) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    tensors
        .iter()
        .map(|(name, t)| {
            let t = t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).contiguous();
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(t.flatten(0, -1)).expect("a float tensor");
            (name.clone(), shape, values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect()
}

/// `tensors` as a safetensors file with `{"format": "pt"}`, which transformers requires.
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> anyhow::Result<Vec<u8>> {
    let records = f32_records(tensors);
    let views = records
        .iter()
        .map(|(name, shape, bytes)| Ok((name.as_str(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    Ok(safetensors::serialize(views, metadata)?)
}

/// `tensors` as `torch.save` writes a state dict (`pytorch_model.bin`), or `None` past what
/// the format without ZIP64 holds.
pub fn pytorch_bytes(tensors: &[(String, Tensor)]) -> anyhow::Result<Option<Vec<u8>>> {
    let records = f32_records(tensors);
    let tensors: Vec<TensorRecord> =
        records.iter().map(|(name, shape, data)| TensorRecord { name, dtype: DType::F32, shape, data }).collect();
    if torch_write::archive_size(&tensors) > torch_write::MAX_ARCHIVE_BYTES {
        return Ok(None);
    }
    Ok(Some(torch_write::write_state_dict(Vec::new(), &tensors)?))
}

pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> anyhow::Result<()> {
    Ok(atomic::write_bytes(path, &safetensors_bytes(tensors)?)?)
}

pub fn read_safetensors(path: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?.into_iter().collect())
}

/// What a saved model is made of.
pub struct SavedModel<'a> {
    pub tensors: &'a [(String, Tensor)],
    pub config: &'a serde_json::Value,
    /// Where the tokenizer files are copied from.
    pub tokenizer_dir: &'a Path,
    pub simcse: &'a SimcseConfig,
}

/// The files of a model directory, name and bytes: the weights (also as `pytorch_model.bin`
/// with `pytorch`, for SimCSE's own scripts), the config, `simcse.json` and the tokenizer.
pub fn model_files(model: &SavedModel, pytorch: bool) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = vec![(WEIGHTS_FILE.to_string(), safetensors_bytes(model.tensors)?)];
    if pytorch {
        match pytorch_bytes(model.tensors)? {
            Some(bytes) => files.push((PYTORCH_WEIGHTS_FILE.to_string(), bytes)),
            None => errln!("note: the model is past 4 GB: {PYTORCH_WEIGHTS_FILE} is not written, {WEIGHTS_FILE} is"),
        }
    }
    files.push((CONFIG_FILE.to_string(), serde_json::to_vec_pretty(model.config)?));
    for name in COMPANION_FILES.iter().filter(|n| !NOT_COPIED.contains(n)) {
        let src = model.tokenizer_dir.join(name);
        if src.is_file() {
            files.push((name.to_string(), std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?));
        }
    }
    // Last: a crash while the files go in leaves simcse.json describing the model before.
    files.push((SIMCSE_FILE.to_string(), serde_json::to_vec_pretty(model.simcse)?));
    Ok(files)
}

/// Writes each file into `dir`, each whole.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    for (name, bytes) in files {
        atomic::write_bytes(&dir.join(name), bytes)?;
    }
    Ok(())
}

/// Writes the directory `dst` whole: `files` in a staged copy that replaces it.
pub fn write_dir(dst: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let staged = StagedDir::create(dst)?;
    for (name, bytes) in files {
        std::fs::write(staged.path().join(name), bytes).with_context(|| format!("writing {}", dst.join(name).display()))?;
    }
    staged.commit(true)?;
    Ok(())
}
