//! `simcse export MODEL_DIR`: the model directory's encoder as one ONNX file.

use crate::cli::megabytes;
use clap::{Args, ValueEnum};
use simcse_core::Pooler;
use simcse_core::Precision;
use simcse_export::{export, ExportOptions, Optimize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OptimizeArg {
    /// Standard ONNX ops: runs on ONNX Runtime, tract and any other runtime
    None,
    /// ONNX Runtime's fused contrib ops (Attention, SkipLayerNormalization, BiasGelu/FastGelu, EmbedLayerNormalization)
    Ort,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The model directory (config.json, model.safetensors, simcse.json)
    pub model_dir: PathBuf,
    /// Pooler to bake in [default: simcse.json's]
    #[arg(long)]
    pub pooler: Option<Pooler>,
    /// L2-normalize the sentence embedding [default: simcse.json's]
    #[arg(long)]
    pub normalize: bool,
    /// Weights and compute in fp16 (inputs and outputs stay int64/fp32; LayerNorm and softmax in fp32)
    #[arg(long, default_value = "fp32", value_parser = crate::cli::precision_parser(&["fp32", "fp16"]))]
    pub dtype: Precision,
    #[arg(long, value_enum, default_value = "none")]
    pub optimize: OptimizeArg,
    /// Also output last_hidden_state [batch, sequence, hidden]
    #[arg(long)]
    pub last_hidden_state: bool,
    /// Where to write [default: MODEL_DIR/model.onnx]
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write the weights to OUTPUT.data beside the graph (automatic past protobuf's 2 GB)
    #[arg(long)]
    pub external_data: bool,
    /// Run the exported graph on ONNX Runtime and tract over sample sentences and compare with
    /// the libtorch forward of the same weights
    #[arg(long)]
    pub verify: bool,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    #[cfg(not(feature = "train"))]
    if args.verify {
        return Err(crate::cli::train::not_in_this_build("the libtorch half of `export --verify`"));
    }
    let options = ExportOptions {
        pooler: args.pooler,
        normalize: args.normalize.then_some(true),
        precision: args.dtype,
        optimize: match args.optimize {
            OptimizeArg::None => Optimize::None,
            OptimizeArg::Ort => Optimize::Ort,
        },
        last_hidden_state: args.last_hidden_state,
        output: args.output,
        external_data: args.external_data,
    };
    let report = export(&args.model_dir, &options)?;
    outln!(
        "exported {} ({}, pooler {}{}) -> {}",
        args.model_dir.display(),
        report.model_type,
        report.pooler,
        if report.normalize { ", normalized" } else { "" },
        report.path.display()
    );
    outln!(
        "  graph       {} nodes, {} initializers, {}{}",
        report.nodes,
        report.initializers,
        megabytes(report.bytes),
        report.external_data.as_ref().map(|p| format!(" (weights in {})", p.display())).unwrap_or_default()
    );
    outln!("  seconds     {:.2}", report.seconds);
    #[cfg(feature = "train")]
    if args.verify {
        crate::cli::verify::run(&args.model_dir, &report, &options)?;
    }
    Ok(())
}
