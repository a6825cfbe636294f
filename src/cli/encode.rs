//! `simcse encode MODEL_DIR --input sentences.txt --output emb.npy`: sentence embeddings
//! from an exported model, on ONNX Runtime (CPU or CUDA) or tract.

use crate::cli::read_lines;
use anyhow::Context;
use clap::{Args, ValueEnum};
use simcse_core::progress::Progress;
use simcse_runtime::{output, BackendKind, Device, Encoder, EncoderOptions};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    /// ONNX Runtime (CPU, or CUDA with --device cuda)
    Ort,
    /// tract, pure Rust, CPU
    Tract,
}

impl From<BackendArg> for BackendKind {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Ort => BackendKind::Ort,
            BackendArg::Tract => BackendKind::Tract,
        }
    }
}

/// How the runtime is chosen, shared by every command that encodes.
#[derive(Debug, Args)]
pub struct EncoderArgs {
    #[arg(long, value_enum, default_value = "ort")]
    pub backend: BackendArg,
    /// cpu, cuda or cuda:N (ONNX Runtime only)
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Truncate sentences to this many tokens [default: the exported model's max_length, from simcse.json]
    #[arg(long)]
    pub max_length: Option<usize>,
    /// The ONNX file [default: MODEL_DIR/model.onnx]
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// CPU threads for ONNX Runtime [default: one per core]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Put before every sentence, e.g. multilingual-e5's "query: " [default: simcse.json's
    /// prefix; "" for none]
    #[arg(long)]
    pub prefix: Option<String>,
}

impl EncoderArgs {
    pub fn options(&self) -> EncoderOptions {
        EncoderOptions {
            backend: self.backend.into(),
            device: self.device,
            batch_size: self.batch_size,
            max_length: self.max_length,
            onnx: self.onnx.clone(),
            threads: self.threads,
            pooler: None,
            prefix: self.prefix.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// A model directory (exported to model.onnx first if it has none)
    pub model_dir: PathBuf,
    /// Sentences, one a line
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write: .npy, .safetensors (tensor `embeddings`) or .jsonl (sentence and embedding a line)
    #[arg(long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: EncodeArgs) -> anyhow::Result<()> {
    simcse_core::ModelDir::open(&args.model_dir, simcse_core::Needs::Config)?;
    output::format_of(&args.output)?;
    crate::cli::check_writable(&args.output)?;
    simcse_runtime::encoder::check_options(&args.encoder.options())?;
    let lines = read_lines(&args.input)?;
    let sentences: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut encoder = Encoder::open(&args.model_dir, &args.encoder.options())
        .with_context(|| format!("opening {}", args.model_dir.display()))?;
    crate::cli::print_notes(&encoder);
    let started = Instant::now();
    let mut progress = Progress::items("encoding", sentences.len() as u64, args.quiet);
    let embeddings = encoder.encode_with_progress(&sentences, &mut |done, total| progress.set(done as u64, total as u64))?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    output::write(&args.output, &embeddings, &sentences)?;
    outln!(
        "encoded {} sentences ({} dims, pooler {}{}) with {} in {:.2} s ({:.0} sentences/s) -> {}",
        embeddings.rows,
        embeddings.dim,
        encoder.info.pooler,
        if encoder.info.normalize { ", normalized" } else { "" },
        encoder.describe(),
        seconds,
        embeddings.rows as f64 / seconds,
        args.output.display()
    );
    Ok(())
}
