//! `simcse export`: a model directory becomes one ONNX file that encodes sentences, pooler
//! and normalization included, for BERT, RoBERTa and GPT-2; in fp32 or fp16, with standard ops
//! any runtime runs or with ONNX Runtime's fused contrib ops. No Python involved.

mod encoder;
mod fused;
pub mod net;
pub mod onnx;
mod weights;
mod write;

use net::Net;
use simcse_core::architecture::Architecture;
use simcse_core::{EncoderMetadata, ModelDir, Needs, Pooler};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use write::ONNX_FILE;
pub use simcse_core::model_dir::SOURCE_FINGERPRINT_KEY;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: {why}", path.display())]
    BadModel { path: PathBuf, why: String },
    #[error(transparent)]
    ModelDir(#[from] simcse_core::ModelDirError),
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    Write(#[from] simcse_core::atomic::WriteError),
}

pub use simcse_core::{Optimize, Precision};

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The pooler to bake in [default: simcse.json's].
    pub pooler: Option<Pooler>,
    /// L2-normalize the sentence embedding [default: simcse.json's].
    pub normalize: Option<bool>,
    pub precision: Precision,
    pub optimize: Optimize,
    /// Also output `last_hidden_state` [batch, seq, hidden].
    pub last_hidden_state: bool,
    /// Where to write [default: MODEL_DIR/model.onnx].
    pub output: Option<PathBuf>,
    /// Weights in `<output>.data` beside the graph even when the model is under 2 GB.
    pub external_data: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            pooler: None,
            normalize: None,
            precision: Precision::F32,
            optimize: Optimize::None,
            last_hidden_state: false,
            output: None,
            external_data: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExportReport {
    pub path: PathBuf,
    pub external_data: Option<PathBuf>,
    pub model_type: String,
    pub pooler: Pooler,
    pub normalize: bool,
    pub nodes: usize,
    pub initializers: usize,
    pub bytes: u64,
    pub seconds: f64,
}

pub fn export(model_dir: &Path, options: &ExportOptions) -> Result<ExportReport, ExportError> {
    let started = Instant::now();
    if options.precision == Precision::Bf16 {
        return Err(ExportError::Options(
            "bf16 graphs are not exported (ONNX Runtime's CPU and tract kernels do not run them): use --dtype fp16 or fp32".into(),
        ));
    }
    let dir = ModelDir::open(model_dir, Needs::Config)?;
    let config = dir.config()?;
    let simcse = dir.simcse()?;
    let arch = Architecture::from_config(&config, &model_dir.join("config.json"))
        .map_err(|e| ExportError::BadModel { path: e.path, why: e.why })?;
    let pooler = options
        .pooler
        .or(simcse.as_ref().map(|s| s.pooler))
        .unwrap_or(if arch.is_decoder() { Pooler::Avg } else { Pooler::ClsBeforePooler });
    arch.check_pooler(pooler).map_err(ExportError::Options)?;
    // The architecture is known: now the weights must be there.
    let dir = ModelDir::open(model_dir, Needs::Weights)?;
    let weights = weights::Weights::open(&dir.weights(), arch.weight_prefixes())?;
    if pooler == Pooler::Cls && !weights.has(&simcse_models::pooler_dense(arch.hidden()).weight()) {
        return Err(ExportError::Options(
            "pooler `cls` runs [CLS] through the pooler layer (pooler.dense.weight), which this checkpoint \
             does not have; use cls_before_pooler, or convert a SimCSE checkpoint with --simcse-to-hf"
                .into(),
        ));
    }
    let normalize = options.normalize.or(simcse.as_ref().map(|s| s.normalize)).unwrap_or(false);
    let max_length = simcse.as_ref().map(|s| s.max_seq_length).unwrap_or(simcse_core::model_dir::DEFAULT_MAX_SEQ_LENGTH);

    let mut net = Net::new(&weights, options.precision, options.optimize == Optimize::Ort);
    encoder::build(&mut net, &arch, pooler, options, normalize)?;

    let metadata = EncoderMetadata {
        model_type: config.model_type.clone(),
        pooler,
        normalize,
        max_length,
        hidden_size: arch.hidden(),
        token_type_ids: arch.uses_token_types(),
        precision: options.precision,
        optimize: options.optimize,
        last_hidden_state: options.last_hidden_state,
        // What the graph was made from, so that a runtime can tell when the directory's
        // weights changed since (training writes a new best model over the old one).
        source_fingerprint: Some(dir.weights_fingerprint()?),
    };
    let path = options.output.clone().unwrap_or_else(|| model_dir.join(ONNX_FILE));
    let (nodes, initializers) = (net.g.nodes.len(), net.g.initializers.len());
    let written = write::write_model(net.g, metadata.to_props(), &path, options.external_data)?;
    Ok(ExportReport {
        path,
        external_data: written.external_data,
        model_type: config.model_type,
        pooler,
        normalize,
        nodes,
        initializers,
        bytes: written.bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
