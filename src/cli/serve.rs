//! `simcse serve MODEL_DIR`: the model directory's encoder behind HTTP, with the routes and
//! shapes of text-embeddings-inference and OpenAI (crates/serve). In the slim build too.

use crate::cli::encode::BackendArg;
use crate::cli::{print_notes, read_sentences};
use anyhow::Context;
use clap::{Args, ValueEnum};
use simcse_runtime::tool::SimCse;
use simcse_runtime::{Device, Encoder, EncoderOptions};
use simcse_serve::ServeOptions;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogLevel {
    /// Start, stop, and failures of the model
    Info,
    /// Also a line per request
    Debug,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A model directory (exported to model.onnx first if it has none)
    pub model_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// 0 for any free port (the log says which)
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    #[arg(long, value_enum, default_value = "ort")]
    pub backend: BackendArg,
    /// cpu, cuda or cuda:N (ONNX Runtime only)
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// The ONNX file [default: MODEL_DIR/model.onnx]
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// CPU threads for ONNX Runtime [default: one per core]
    #[arg(long)]
    pub threads: Option<usize>,
    /// What /info and OpenAI's `model` call it [default: the model directory's name]
    #[arg(long)]
    pub model_id: Option<String>,
    /// Longest input in tokens; longer ones get 422 unless truncated [default: the model's]
    #[arg(long)]
    pub max_input_length: Option<usize>,
    /// Tokens one forward pass may hold, padding included
    #[arg(long, default_value_t = 16_384)]
    pub max_batch_tokens: usize,
    /// Inputs one forward pass may hold [default: as many as the tokens allow]
    #[arg(long)]
    pub max_batch_requests: Option<usize>,
    /// Inputs one request may carry (422 past it)
    #[arg(long, default_value_t = 32)]
    pub max_client_batch_size: usize,
    /// Truncate too-long inputs instead of refusing them (a request's `truncate` overrides it)
    #[arg(long)]
    pub auto_truncate: bool,
    /// Inputs in flight past which requests get 429 with Retry-After
    #[arg(long, default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Largest request body in bytes (413 past it)
    #[arg(long, default_value_t = 2_000_000)]
    pub payload_limit: usize,
    /// Require `Authorization: Bearer KEY` (not on /health and /metrics)
    #[arg(long)]
    pub api_key: Option<String>,
    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// Threads that tokenize while the model runs [default: one per core]
    #[arg(long)]
    pub tokenization_workers: Option<usize>,
    /// Put before every input, e.g. multilingual-e5's "query: " [default: simcse.json's prefix; "" for none]
    #[arg(long)]
    pub prefix: Option<String>,
    /// Sentences to search with POST /search, one a line
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// An index directory for the corpus: loaded if it matches, else written after encoding
    #[arg(long, requires = "corpus")]
    pub index: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "info")]
    pub log_level: LogLevel,
}

impl ServeArgs {
    fn options(&self) -> ServeOptions {
        let defaults = ServeOptions::default();
        let model_id = self.model_id.clone().unwrap_or_else(|| {
            let dir = self.model_dir.canonicalize().unwrap_or_else(|_| self.model_dir.clone());
            dir.file_name().map_or_else(|| "simcse".into(), |name| name.to_string_lossy().into_owned())
        });
        ServeOptions {
            host: self.host.clone(),
            port: self.port,
            model_id,
            max_batch_tokens: self.max_batch_tokens,
            max_batch_requests: self.max_batch_requests,
            max_client_batch_size: self.max_client_batch_size,
            auto_truncate: self.auto_truncate,
            max_concurrent_requests: self.max_concurrent_requests,
            payload_limit: self.payload_limit,
            api_key: self.api_key.clone(),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            tokenization_workers: self.tokenization_workers.unwrap_or(defaults.tokenization_workers),
            log_requests: matches!(self.log_level, LogLevel::Debug),
        }
    }

    fn encoder_options(&self) -> EncoderOptions {
        EncoderOptions {
            backend: self.backend.into(),
            device: self.device,
            max_length: self.max_input_length,
            onnx: self.onnx.clone(),
            threads: self.threads,
            prefix: self.prefix.clone(),
            ..Default::default()
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    simcse_core::ModelDir::open(&args.model_dir, simcse_core::Needs::Config)?;
    anyhow::ensure!(args.shutdown_timeout <= 3600, "--shutdown-timeout {} is out of range: 0 to 3600 seconds", args.shutdown_timeout);
    // What the options alone can refuse is refused before the model loads.
    let options = args.options();
    options.check(args.max_input_length.unwrap_or(1))?;
    simcse_runtime::encoder::check_options(&args.encoder_options())?;
    crate::cli::search::check_index_dir(args.index.as_deref())?;
    let corpus = args.corpus.as_ref().map(|p| read_sentences(p)).transpose()?;
    let encoder = Encoder::open(&args.model_dir, &args.encoder_options()).with_context(|| format!("opening {}", args.model_dir.display()))?;
    print_notes(&encoder);
    options.check(encoder.tokenizer.max_length)?;
    let (encoder, index) = match corpus {
        Some(corpus) => {
            let mut tool = SimCse::new(encoder);
            crate::cli::search::open_index(&mut tool, Some(corpus), args.index.as_deref())?;
            (tool.encoder, tool.index)
        }
        None => (encoder, None),
    };
    simcse_serve::serve(encoder, index, options)?;
    Ok(())
}
