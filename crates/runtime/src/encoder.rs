//! Sentences in, embeddings out: tokenize, sort by length, batch, run the backend, and put
//! every embedding back at its sentence's index.

use crate::backend::{Backend, Device};
use crate::batch::{embed_in_length_order, Batch};
use crate::ModelInfo;
use crate::tokenize::SentenceTokenizer;
use crate::Embeddings;
use crate::RuntimeError;
use simcse_core::architecture::Architecture;
use simcse_core::{ModelDir, Needs, Pooler};
use simcse_core::Optimize;
use simcse_export::{export, ExportOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Whether `onnx` was exported from weights other than the model directory's (`false` where
/// either side cannot tell: a graph without a fingerprint, a directory without weights).
fn is_stale(info: &ModelInfo, dir: &ModelDir) -> Result<bool, RuntimeError> {
    let Some(recorded) = &info.source_fingerprint else { return Ok(false) };
    if !dir.weights().is_file() {
        return Ok(false);
    }
    Ok(dir.weights_fingerprint()? != *recorded)
}

/// The options a graph was exported with, to export it again alike.
fn export_options_of(info: &ModelInfo) -> ExportOptions {
    ExportOptions {
        pooler: Some(info.pooler),
        normalize: Some(info.normalize),
        precision: info.precision,
        optimize: info.optimize,
        last_hidden_state: info.last_hidden_state,
        ..Default::default()
    }
}

/// The graph to run: `--onnx`, else the directory's `model.onnx`, exported (again) where it is
/// missing or stale. A directory that cannot be written gets its graph in a temporary one.
fn graph_of(dir: &ModelDir, options: &EncoderOptions, notes: &mut Vec<String>) -> Result<(PathBuf, Option<tempfile::TempDir>), RuntimeError> {
    if let Some(onnx) = &options.onnx {
        if !onnx.is_file() {
            return Err(RuntimeError::BadModel { path: onnx.clone(), why: "no such file".into() });
        }
        let info = ModelInfo::read(onnx)?;
        if let Some(pooler) = options.pooler.filter(|&pooler| pooler != info.pooler) {
            return Err(RuntimeError::Input(format!(
                "{} pools with {}, not {pooler}: leave out the ONNX file to have a graph exported with {pooler}",
                onnx.display(),
                info.pooler
            )));
        }
        if is_stale(&info, dir)? {
            notes.push(format!(
                "warning: {} was exported from other weights than {} holds now; run `simcse export` again to match them",
                onnx.display(),
                dir.path.display()
            ));
        }
        return Ok((onnx.clone(), None));
    }
    let default = dir.path.join(simcse_export::ONNX_FILE);
    let (mut export_options, why) = if default.is_file() {
        let info = ModelInfo::read(&default)?;
        let stale = is_stale(&info, dir)?;
        match options.pooler.filter(|&pooler| pooler != info.pooler) {
            None if !stale => return Ok((default, None)),
            None => (export_options_of(&info), "was exported from other weights than the directory holds now (trained further since?)"),
            Some(pooler) => {
                let why = format!("pools with {}, not {pooler}", info.pooler);
                return export_to_scratch(dir, ExportOptions { pooler: Some(pooler), ..export_options_of(&info) }, &why, notes);
            }
        }
    } else if let Some(pooler) = options.pooler {
        // The directory's model.onnx is left to its own pooler.
        return export_to_scratch(dir, ExportOptions { pooler: Some(pooler), ..Default::default() }, "did not exist", notes);
    } else {
        if !dir.weights().is_file() {
            return Err(RuntimeError::BadModel {
                path: default,
                why: format!("no such file, and no {} to export it from", simcse_core::model_dir::WEIGHTS_FILE),
            });
        }
        (ExportOptions::default(), "did not exist")
    };
    let started = Instant::now();
    export_options.output = Some(default.clone());
    let (path, scratch) = match export(&dir.path, &export_options) {
        Ok(_) => (default.clone(), None),
        Err(simcse_export::ExportError::Write(e)) => {
            notes.push(format!("note: cannot write {} ({}); the graph goes in a temporary directory", default.display(), e.why));
            let (path, scratch) = export_into_tempdir(dir, &mut export_options)?;
            (path, Some(scratch))
        }
        Err(e) => return Err(RuntimeError::Input(format!("exporting {}: {e}", dir.path.display()))),
    };
    notes.push(format!(
        "note: {} {why}: exported it in {:.1} s, as `simcse export` would",
        default.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok((path, scratch))
}

/// Exports the directory's graph into a new temporary directory, which lives as long as the
/// returned handle.
fn export_into_tempdir(dir: &ModelDir, export_options: &mut ExportOptions) -> Result<(PathBuf, tempfile::TempDir), RuntimeError> {
    let scratch = tempfile::tempdir().map_err(|error| RuntimeError::Io { path: std::env::temp_dir(), error })?;
    let path = scratch.path().join(simcse_export::ONNX_FILE);
    export_options.output = Some(path.clone());
    export(&dir.path, export_options)?;
    Ok((path, scratch))
}

/// A graph with other options than the directory's own, exported into a temporary directory
/// so that `model.onnx` stays as `simcse export` wrote it.
fn export_to_scratch(
    dir: &ModelDir,
    mut export_options: ExportOptions,
    why: &str,
    notes: &mut Vec<String>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), RuntimeError> {
    let started = Instant::now();
    let (path, scratch) = export_into_tempdir(dir, &mut export_options).map_err(|error| match error {
        RuntimeError::Export(e) => RuntimeError::Input(format!("exporting {}: {e}", dir.path.display())),
        other => other,
    })?;
    let pooler = export_options.pooler.map_or_else(String::new, |p| format!(" with pooler {p}"));
    notes.push(format!(
        "note: {} {why}: exported a graph{pooler} into a temporary directory in {:.1} s",
        dir.path.join(simcse_export::ONNX_FILE).display(),
        started.elapsed().as_secs_f64()
    ));
    Ok((path, Some(scratch)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Ort,
    Tract,
}

/// `ort` or `tract`, as the commands take it.
impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "ort" => Ok(BackendKind::Ort),
            "tract" => Ok(BackendKind::Tract),
            _ => Err(format!("`{text}` is not ort or tract")),
        }
    }
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
    /// A pooler other than the graph's: a graph pooling so is exported into a temporary
    /// directory (the model directory's `model.onnx` is left as it is).
    pub pooler: Option<Pooler>,
    /// Put before every sentence instead of `simcse.json`'s prefix (`""` for none).
    pub prefix: Option<String>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            backend: BackendKind::Ort,
            device: Device::Cpu,
            batch_size: 64,
            max_length: None,
            onnx: None,
            threads: None,
            pooler: None,
            prefix: None,
        }
    }
}

/// Larger batches only cost memory: the sentences are sorted by length either way.
pub const MAX_BATCH_SIZE: usize = 16_384;
/// More threads than this is a typo, and ONNX Runtime would try to start them all.
pub const MAX_THREADS: usize = 256;

pub struct Encoder {
    pub tokenizer: SentenceTokenizer,
    arch: Architecture,
    pub info: ModelInfo,
    pub onnx: PathBuf,
    backend: Box<dyn Backend>,
    batch_size: usize,
    /// What opening did that the user should be told (a graph exported on the fly, ...).
    pub notes: Vec<String>,
    /// A graph exported into a temporary directory where the model directory is read-only.
    _scratch: Option<tempfile::TempDir>,
}

/// Checks the encoder options a user gives, naming the limit passed.
pub fn check_options(options: &EncoderOptions) -> Result<(), RuntimeError> {
    if !(1..=MAX_BATCH_SIZE).contains(&options.batch_size) {
        return Err(RuntimeError::Input(format!(
            "--batch-size {} is out of range: 1 to {MAX_BATCH_SIZE} (sentences are sorted by length, so 64 to 512 is plenty)",
            options.batch_size
        )));
    }
    if let Some(threads) = options.threads {
        if !(1..=MAX_THREADS).contains(&threads) {
            return Err(RuntimeError::Input(format!(
                "--threads {threads} is out of range: 1 to {MAX_THREADS} (leave it out for one per core)"
            )));
        }
    }
    Ok(())
}

impl Encoder {
    /// Opens the model directory's encoder. Where it has no `model.onnx`, the graph is exported
    /// first (as `simcse export` would), and where its weights changed since the export, it is
    /// exported again with the same options; `notes` says so.
    pub fn open(model_dir: &Path, options: &EncoderOptions) -> Result<Encoder, RuntimeError> {
        check_options(options)?;
        let dir = ModelDir::open(model_dir, Needs::Config)?;
        let config = dir.config()?;
        let config_path = dir.path.join(simcse_core::model_dir::CONFIG_FILE);
        let arch = Architecture::from_config(&config, &config_path)
            .map_err(|e| RuntimeError::BadModel { path: e.path, why: e.why })?;
        let mut notes = Vec::new();
        let (onnx, scratch) = graph_of(&dir, options, &mut notes)?;
        let info = ModelInfo::read(&onnx)?;
        let max_length = options.max_length.unwrap_or(info.max_length);
        let option = if options.max_length.is_some() { "--max-length" } else { "the model's max_seq_length (simcse.json)" };
        arch.check_length(max_length, option).map_err(RuntimeError::Input)?;
        let mut tokenizer = SentenceTokenizer::for_pooler(model_dir, &config, max_length, info.pooler)?;
        if let Some(prefix) = &options.prefix {
            tokenizer.set_prefix(prefix);
        }
        let backend: Box<dyn Backend> = match options.backend {
            BackendKind::Ort => ort_backend(&onnx, &info, options)?,
            BackendKind::Tract => {
                if options.device != Device::Cpu {
                    return Err(RuntimeError::Device(format!(
                        "tract runs on the CPU only; use --backend ort for {}",
                        options.device
                    )));
                }
                if info.optimize == Optimize::Ort {
                    return Err(RuntimeError::BadModel {
                        path: onnx,
                        why: "this graph uses ONNX Runtime's fused contrib ops (exported with --optimize ort), \
                              which tract does not run; export without --optimize for tract"
                            .into(),
                    });
                }
                tract_backend(&onnx, &info)?
            }
        };
        Ok(Encoder { tokenizer, arch, info, onnx, backend, batch_size: options.batch_size, notes, _scratch: scratch })
    }

    /// A digest of everything that decides the embeddings: the graph's bytes (and its external
    /// data), the tokenizer's file and the truncation length. Two encoders with the same
    /// fingerprint embed every sentence alike, wherever their files live.
    pub fn fingerprint(&self) -> Result<String, RuntimeError> {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let external = PathBuf::from(format!("{}.data", self.onnx.display()));
        for path in [&self.onnx, &external, &self.tokenizer.source] {
            if path == &external && !external.is_file() {
                continue;
            }
            let file = std::fs::File::open(path).map_err(|error| RuntimeError::Io { path: path.clone(), error })?;
            // SAFETY: read-only map, only hashed.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|error| RuntimeError::Io { path: path.clone(), error })?;
            hasher.update((map.len() as u64).to_le_bytes());
            hasher.update(&map[..]);
        }
        hasher.update((self.tokenizer.max_length as u64).to_le_bytes());
        Ok(simcse_core::model_dir::hex(&hasher.finalize()))
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Sentences per forward pass from now on, checked as `--batch-size` is.
    pub fn set_batch_size(&mut self, batch_size: usize) -> Result<(), RuntimeError> {
        check_options(&EncoderOptions { batch_size, ..Default::default() })?;
        self.batch_size = batch_size;
        Ok(())
    }

    /// Truncates sentences to `max_length` tokens from now on (within the position table).
    pub fn set_max_length(&mut self, max_length: usize) -> Result<(), RuntimeError> {
        if max_length == self.tokenizer.max_length {
            return Ok(());
        }
        if max_length < 2 {
            return Err(RuntimeError::Input(format!("max length {max_length} leaves no room for a sentence")));
        }
        self.arch.check_length(max_length, "max_length").map_err(RuntimeError::Input)?;
        self.tokenizer = self.tokenizer.truncating(Some(max_length), crate::tokenize::TruncationDirection::Right)?;
        Ok(())
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
        let (pad_id, batch_size, dim) = (self.tokenizer.pad_id, self.batch_size, self.info.hidden_size);
        embed_in_length_order(&tokens, pad_id, batch_size, dim, &mut |batch| self.embed_batch(batch), progress)
    }

    /// One forward pass: [batch.size, hidden] row-major.
    pub fn embed_batch(&mut self, batch: &Batch) -> Result<Vec<f32>, RuntimeError> {
        let output = self.backend.embed(batch)?;
        let dim = self.info.hidden_size;
        if output.len() != batch.size * dim {
            return Err(RuntimeError::BadModel {
                path: self.onnx.clone(),
                why: format!("returned {} values for {} sentences of {dim} dimensions", output.len(), batch.size),
            });
        }
        Ok(output)
    }
}

#[cfg(feature = "ort")]
fn ort_backend(onnx: &Path, info: &ModelInfo, options: &EncoderOptions) -> Result<Box<dyn Backend>, RuntimeError> {
    Ok(Box::new(crate::backend::onnxruntime::OrtBackend::new(onnx, info.token_type_ids, options.device, options.threads)?))
}

#[cfg(not(feature = "ort"))]
fn ort_backend(_: &Path, _: &ModelInfo, _: &EncoderOptions) -> Result<Box<dyn Backend>, RuntimeError> {
    Err(RuntimeError::NotInThisBuild { what: "--backend ort (ONNX Runtime)", feature: "ort" })
}

#[cfg(feature = "tract")]
fn tract_backend(onnx: &Path, info: &ModelInfo) -> Result<Box<dyn Backend>, RuntimeError> {
    Ok(Box::new(crate::backend::tract::TractBackend::new(onnx, info.token_type_ids)?))
}

#[cfg(not(feature = "tract"))]
fn tract_backend(_: &Path, _: &ModelInfo) -> Result<Box<dyn Backend>, RuntimeError> {
    Err(RuntimeError::NotInThisBuild { what: "--backend tract", feature: "tract" })
}
