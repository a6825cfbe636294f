//! What training writes: model directories (the best and the last model, in Hugging Face's
//! layout with `simcse.json`, ready for `simcse export`) and the training state a run resumes
//! from. Each is written into a hidden temporary directory and swapped in by rename, so that a
//! crash never leaves a damaged one.

use anyhow::Context;
use simcse_converters::model_dir::{COMPANION_FILES, CONFIG_FILE, SIMCSE_FILE, WEIGHTS_FILE};
use simcse_converters::SimcseConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// sentence-transformers' files describe a pooling the trained model may no longer use.
const NOT_COPIED: &[&str] = &[CONFIG_FILE, "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json"];

/// Writes `tensors` (converted to f32 on the CPU) as safetensors with `{"format": "pt"}`,
/// which transformers requires.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> anyhow::Result<()> {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let t = t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).contiguous();
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(t.flatten(0, -1)).expect("a float tensor");
            (name.clone(), shape, values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).expect("consistent shape");
            (name.as_str(), view)
        })
        .collect();
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, metadata, path).with_context(|| format!("writing {}", path.display()))
}

pub fn read_safetensors(path: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?.into_iter().collect())
}

/// Writes a directory by filling a temporary one and swapping it in.
pub fn write_dir_atomically(dst: &Path, fill: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let name = dst.file_name().context("a directory name")?.to_string_lossy().into_owned();
    let parent = dst.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!(".{name}.partial"));
    let old = parent.join(format!(".{name}.old"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&old);
    if dst.exists() {
        std::fs::rename(dst, &old).with_context(|| format!("moving {} aside", dst.display()))?;
    }
    std::fs::rename(&tmp, dst).with_context(|| format!("renaming {} into place", tmp.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// A model directory: weights, the config, the source's tokenizer files, and `simcse.json`.
pub fn save_model_dir(
    dst: &Path,
    tensors: &[(String, Tensor)],
    config: &serde_json::Value,
    tokenizer_dir: &Path,
    simcse: &SimcseConfig,
) -> anyhow::Result<()> {
    write_dir_atomically(dst, |dir| {
        write_safetensors(&dir.join(WEIGHTS_FILE), tensors)?;
        std::fs::write(dir.join(CONFIG_FILE), serde_json::to_vec_pretty(config)?)?;
        std::fs::write(dir.join(SIMCSE_FILE), serde_json::to_vec_pretty(simcse)?)?;
        for name in COMPANION_FILES.iter().filter(|n| !NOT_COPIED.contains(n)) {
            let src = tokenizer_dir.join(name);
            if src.is_file() {
                std::fs::copy(&src, dir.join(name)).with_context(|| format!("copying {}", src.display()))?;
            }
        }
        Ok(())
    })
}
