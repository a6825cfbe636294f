//! `simcse-bench latency MODEL_DIR`: per-batch latency (p50/p90/p99 ms) and throughput of an
//! exported encoder on ONNX Runtime, CPU or CUDA, at fixed batch x sequence shapes with
//! synthetic tokens (the tokenizer is not what is measured). Optionally beside PyTorch eager
//! (transformers, `--python`) in the same run.

use super::process::{baseline_script, machine, measure, write_figures};
use anyhow::{ensure, Context};
use clap::Args;
use serde_json::json;
use simcse_core::ModelDir;
use simcse_runtime::backend::onnxruntime::OrtBackend;
use simcse_runtime::batch::Batch;
use simcse_runtime::{Backend, Device, ModelInfo};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct LatencyBenchArgs {
    /// The model directory (its config gives the vocabulary size)
    pub model_dir: PathBuf,
    /// The exported graph [default: MODEL_DIR/model.onnx]
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// batch x tokens shapes, comma-separated
    #[arg(long, default_value = "1x32,128x32,512x32")]
    pub shapes: String,
    #[arg(long, default_value_t = 100)]
    pub iters: usize,
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Also run PyTorch eager (bench/python/latency_torch.py) with this Python, in this dtype
    #[arg(long)]
    pub python: Option<PathBuf>,
    #[arg(long, default_value = "fp16")]
    pub python_dtype: String,
    #[arg(long, default_value = "target/bench/latency.json")]
    pub output: PathBuf,
}

fn parse_shapes(text: &str) -> Result<Vec<(usize, usize)>, String> {
    text.split(',')
        .map(|shape| {
            let (b, s) = shape.split_once('x').ok_or_else(|| format!("`{shape}` is not BATCHxTOKENS"))?;
            Ok((b.trim().parse().map_err(|_| format!("bad batch in `{shape}`"))?, s.trim().parse().map_err(|_| format!("bad length in `{shape}`"))?))
        })
        .collect()
}

/// The Python baseline, under bench/python/.
const BASELINE_SCRIPT: &str = "latency_torch.py";

/// Milliseconds at the given percentile (nearest rank).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Deterministic token ids in [1000, vocab) (clear of special tokens), [CLS]-free: latency only.
fn synthetic_batch(batch: usize, seq: usize, vocab: usize) -> Batch {
    let mut next = simcse_core::rng::xorshift64(0x2545_f491_4f6c_dd1d);
    let ids = (0..batch * seq).map(|_| 1000 + (next() % (vocab.saturating_sub(1000).max(1)) as u64) as i64).collect();
    Batch { size: batch, seq, input_ids: ids, attention_mask: vec![1; batch * seq], token_type_ids: vec![0; batch * seq] }
}

pub fn run(args: LatencyBenchArgs) -> anyhow::Result<()> {
    ensure!(args.iters > 0, "--iters must be at least 1");
    let shapes = parse_shapes(&args.shapes).map_err(anyhow::Error::msg)?;
    let onnx = args.onnx.clone().unwrap_or_else(|| args.model_dir.join("model.onnx"));
    let info = ModelInfo::read(&onnx)?;
    let vocab = ModelDir::new(&args.model_dir).config()?.vocab_size.context("config.json lacks vocab_size")?;
    let mut backend = OrtBackend::new(&onnx, info.token_type_ids, args.device, None)?;
    outln!("latency of {} ({}, {}) on {}", onnx.display(), info.precision, info.optimize, backend.describe());
    outln!("{:<12} {:>9} {:>9} {:>9} {:>14}", "batch x seq", "p50 ms", "p90 ms", "p99 ms", "sentences/s");
    let mut rows = Vec::new();
    for &(b, s) in &shapes {
        let batch = synthetic_batch(b, s, vocab);
        for _ in 0..args.warmup {
            backend.embed(&batch)?;
        }
        let mut ms: Vec<f64> = (0..args.iters)
            .map(|_| {
                let started = Instant::now();
                backend.embed(&batch).map(|_| started.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        ms.sort_by(f64::total_cmp);
        let (p50, p90, p99) = (percentile(&ms, 50.0), percentile(&ms, 90.0), percentile(&ms, 99.0));
        outln!("{:<12} {p50:>9.3} {p90:>9.3} {p99:>9.3} {:>14.0}", format!("{b}x{s}"), b as f64 * 1e3 / mean);
        rows.push(json!({ "batch": b, "seq": s, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": mean, "sentences_per_s": b as f64 * 1e3 / mean }));
    }
    let mut figures = json!({
        "benchmark": "latency",
        "machine": machine(),
        "onnx": onnx,
        "precision": info.precision.to_string(),
        "optimize": info.optimize.to_string(),
        "device": args.device.to_string(),
        "iters": args.iters,
        "simcse": rows,
    });
    if let Some(python) = &args.python {
        let shapes: Vec<String> = shapes.iter().map(|(b, s)| format!("{b}x{s}")).collect();
        let device = if matches!(args.device, Device::Cpu) { "cpu" } else { "cuda" };
        let measured = measure(
            Command::new(python)
                .arg(baseline_script(BASELINE_SCRIPT))
                .arg(&args.model_dir)
                .args([&args.python_dtype, device, &shapes.join(","), &args.iters.to_string(), &args.warmup.to_string()]),
        )?;
        let report: serde_json::Value = serde_json::from_str(measured.stdout.lines().last().unwrap_or(""))?;
        outln!("PyTorch eager {} ({device}):", args.python_dtype);
        for row in report["shapes"].as_array().into_iter().flatten() {
            outln!(
                "{:<12} {:>9.3} {:>9.3} {:>9.3} {:>14.0}",
                format!("{}x{}", row["batch"], row["seq"]),
                row["p50_ms"].as_f64().unwrap_or(f64::NAN),
                row["p90_ms"].as_f64().unwrap_or(f64::NAN),
                row["p99_ms"].as_f64().unwrap_or(f64::NAN),
                row["sentences_per_s"].as_f64().unwrap_or(f64::NAN)
            );
        }
        figures["pytorch"] = report;
    }
    write_figures(&args.output, &figures)?;
    outln!("figures written to {}", args.output.display());
    Ok(())
}
