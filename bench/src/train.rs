//! `simcse-bench train`: SimCSE training steps per second and memory of a randomly initialized
//! model on synthetic batches (unsupervised: 2 x batch sequences of `seq` tokens, [CLS] + MLP,
//! AdamW, clipping), in each precision asked for, optionally beside PyTorch eager (transformers
//! BertModel + the SimCSE loss, AMP) in the same run.

use super::process::{baseline_script, machine, measure, write_figures};
use anyhow::{ensure, Context};
use clap::Args;
use serde_json::json;
use simcse_train::device::{gpu_memory_bytes, peak_rss_bytes, select};
use simcse_train::optim::{AdamW, LossScaler};
use simcse_train::simcse_model::{Inputs, SimcseModel};
use simcse_core::Precision;
use simcse_train::trainer::{half_of, optimization_step, StepSettings};
use simcse_core::architecture::Architecture;
use simcse_core::{ModelConfig, Pooler};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use tch::{Kind, Tensor};

#[derive(Debug, Args)]
pub struct TrainBenchArgs {
    /// The architecture, randomly initialized: bert-base, bert-large, roberta-base, gpt2, bert-tiny
    #[arg(long, default_value = "bert-base")]
    pub config: String,
    /// Instead of --config: this model directory's architecture and weights
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 30522)]
    pub vocab_size: usize,
    /// Examples a batch (each encoded twice)
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 32)]
    pub seq: usize,
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Precisions to measure, comma-separated
    #[arg(long, default_value = "fp32,fp16")]
    pub precisions: String,
    /// auto, cpu, cuda or cuda:N
    #[arg(long, default_value = "auto")]
    pub device: simcse_core::DeviceChoice,
    /// Also run PyTorch eager (bench/python/train_torch.py) with this Python
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The PyTorch baseline's precisions, comma-separated (fp32, amp-fp16, amp-bf16)
    #[arg(long, default_value = "amp-fp16")]
    pub python_modes: String,
    #[arg(long, default_value = "target/bench/train.json")]
    pub output: PathBuf,
}

/// The Python baseline, under bench/python/.
const BASELINE_SCRIPT: &str = "train_torch.py";

fn parse_precision(name: &str) -> anyhow::Result<Precision> {
    name.trim().parse().map_err(|why: String| anyhow::anyhow!("--precisions: {why}"))
}

pub fn run(args: TrainBenchArgs) -> anyhow::Result<()> {
    ensure!(args.steps > 0 && args.batch_size > 0 && args.seq > 1, "steps, batch size and length must be positive");
    let device = select(args.device)?;
    let config: ModelConfig = match &args.model_dir {
        Some(dir) => simcse_core::ModelDir::new(dir).config()?,
        None => serde_json::from_value(simcse_train::presets::config(&args.config, args.vocab_size)?)?,
    };
    let arch = Architecture::from_config(&config, std::path::Path::new(&args.config))?;
    let vocab_size = config.vocab_size.unwrap_or(args.vocab_size);
    let name = args.model_dir.as_ref().map_or(args.config.clone(), |d| d.display().to_string());
    let pooler = if arch.is_decoder() { Pooler::Avg } else { Pooler::Cls };
    let mut rows = Vec::new();
    outln!("SimCSE steps of {name} ({pooler} pooler), batch {} x 2 x {} tokens, on {device:?}", args.batch_size, args.seq);
    outln!("{:<24} {:>9} {:>16} {:>14}", "", "it/s", "GPU memory GiB", "peak RSS GiB");
    for name in args.precisions.split(',') {
        let precision = parse_precision(name)?;
        tch::manual_seed(0);
        let mut model = SimcseModel::new(device, &arch, pooler, false, false)?;
        match &args.model_dir {
            Some(dir) => {
                model.load(&dir.join("model.safetensors"))?;
            }
            None => model.init_random(),
        }
        model.set_precision(half_of(precision));
        let mut optimizer = AdamW::new(model.named_variables(), 0.0);
        let mut scaler = LossScaler::new(precision == Precision::F16);
        let rows_n = (2 * args.batch_size) as i64;
        let ids = Tensor::randint_low(1000, vocab_size as i64, [rows_n, args.seq as i64], (Kind::Int64, device));
        let inputs = Inputs { ids: ids.shallow_clone(), mask: ids.ones_like(), token_types: ids.zeros_like() };
        let settings = StepSettings { temp: 0.05, hard_negative_weight: 0.0, max_grad_norm: 1.0 };
        let step = |optimizer: &mut AdamW, scaler: &mut LossScaler| optimization_step(&model, optimizer, scaler, &inputs, 2, None, 3e-5, &settings);
        for _ in 0..args.warmup {
            let _ = step(&mut optimizer, &mut scaler);
        }
        let _ = step(&mut optimizer, &mut scaler).double_value(&[]); // synchronize before timing
        let started = Instant::now();
        let mut last = Tensor::from(0.0);
        for _ in 0..args.steps {
            last = step(&mut optimizer, &mut scaler);
        }
        let loss = last.double_value(&[]); // waits for the last step
        let it_per_s = args.steps as f64 / started.elapsed().as_secs_f64();
        // Read after the timed steps, not during them (an NVML query costs milliseconds): the
        // caching allocator keeps what it reserved, so this is the peak plus the CUDA context.
        let peak_gpu = gpu_memory_bytes().unwrap_or(0);
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let label = format!("simcse {name}");
        outln!("{label:<24} {it_per_s:>9.2} {:>16} {:>14.2}", if peak_gpu > 0 { format!("{:.2}", gib(peak_gpu)) } else { "-".into() }, gib(peak_rss_bytes().unwrap_or(0)));
        rows.push(json!({ "name": label, "it_per_s": it_per_s, "gpu_memory_bytes": peak_gpu, "final_loss": loss, "loss_scale": scaler.scale }));
    }
    let mut figures = json!({ "benchmark": "train", "machine": machine(), "model": name, "batch_size": args.batch_size,
        "seq": args.seq, "steps": args.steps, "device": format!("{device:?}"), "simcse": rows });
    if let Some(python) = &args.python {
        let device_name = if device == tch::Device::Cpu { "cpu" } else { "cuda" };
        let measured = measure(Command::new(python).arg(baseline_script(BASELINE_SCRIPT)).args([
            &name, device_name, &args.batch_size.to_string(), &args.seq.to_string(),
            &args.steps.to_string(), &args.warmup.to_string(), &args.python_modes,
        ]))
        .context("running the PyTorch baseline")?;
        let report: serde_json::Value = serde_json::from_str(measured.stdout.lines().last().unwrap_or(""))?;
        for row in report["modes"].as_array().into_iter().flatten() {
            outln!(
                "{:<24} {:>9.2} {:>16.2} {:>14}",
                format!("pytorch {}", row["mode"].as_str().unwrap_or("")),
                row["it_per_s"].as_f64().unwrap_or(f64::NAN),
                row["max_memory_reserved_gib"].as_f64().unwrap_or(f64::NAN),
                "-"
            );
        }
        figures["pytorch"] = report;
    }
    write_figures(&args.output, &figures)?;
    outln!("figures written to {}", args.output.display());
    Ok(())
}
