//! `simcse-bench startup MODEL_DIR`: what a command costs before it does any work, in the default
//! build (libtorch linked) and the slim one (`make slim`) side by side: `simcse --help`, and
//! `simcse encode` of a few sentences. Median wall time and peak RSS over alternating runs.

use super::process::{machine, measure, median, write_figures};
use anyhow::ensure;
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Args)]
pub struct StartupBenchArgs {
    /// A model directory with model.onnx (encode's model)
    pub model_dir: PathBuf,
    /// The default build's binary
    #[arg(long, default_value = "target/release/simcse")]
    pub full: PathBuf,
    /// The slim build's binary (make slim)
    #[arg(long, default_value = "target/slim/simcse")]
    pub slim: PathBuf,
    /// Runs of each command and build (alternating)
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    #[arg(long, default_value = "target/bench/startup-scratch")]
    pub scratch: PathBuf,
    #[arg(long, default_value = "target/bench/startup.json")]
    pub output: PathBuf,
}

/// Four short sentences: what is measured is loading, not encoding.
const SENTENCES: &str = "A man is playing a guitar.\nA woman is slicing an onion.\nTwo dogs run in the snow.\nHi!\n";

pub fn run(args: StartupBenchArgs) -> anyhow::Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    for binary in [&args.full, &args.slim] {
        ensure!(binary.is_file(), "{} not found (cargo build --release; make slim)", binary.display());
    }
    ensure!(args.model_dir.join("model.onnx").is_file(), "{}/model.onnx not found: export it first", args.model_dir.display());
    // Where the figures go must be writable before minutes of measuring.
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
        simcse_core::atomic::existing_parent(parent)?;
    }
    simcse_core::atomic::create_dir(&args.scratch)?;
    let input = args.scratch.join("sentences.txt");
    std::fs::write(&input, SENTENCES)?;

    let builds = [("default", &args.full), ("slim", &args.slim)];
    let mut figures = Vec::new();
    outln!("{:<16} {:<8} {:>10} {:>12}", "command", "build", "median ms", "peak RSS MB");
    for command in ["--help", "encode"] {
        let mut samples: Vec<(Vec<f64>, Vec<u64>)> = vec![(Vec::new(), Vec::new()); builds.len()];
        for _ in 0..args.runs {
            for (i, (name, binary)) in builds.iter().enumerate() {
                let output = args.scratch.join(format!("{name}.npy"));
                let measured = measure(&mut invocation(binary, command, &args.model_dir, &input, &output))?;
                samples[i].0.push(measured.wall_s * 1e3);
                samples[i].1.push(measured.peak_rss_bytes);
            }
        }
        for ((name, binary), (ms, rss)) in builds.iter().zip(&samples) {
            let (ms, rss_mb) = (median(ms), *rss.iter().max().expect("runs > 0") as f64 / 1e6);
            let shown = if command == "encode" { "encode 4 lines" } else { "--help" };
            outln!("{shown:<16} {name:<8} {ms:>10.1} {rss_mb:>12.1}");
            figures.push(json!({ "command": shown, "build": name, "binary": binary, "median_ms": ms, "peak_rss_mb": rss_mb }));
        }
    }
    write_figures(&args.output, &json!({ "machine": machine(), "runs": args.runs, "figures": figures }))?;
    outln!("figures -> {}", args.output.display());
    Ok(())
}

fn invocation(binary: &Path, command: &str, model_dir: &Path, input: &Path, output: &Path) -> Command {
    let mut c = Command::new(binary);
    if command == "encode" {
        c.arg("encode").arg(model_dir).arg("--input").arg(input).arg("--output").arg(output).arg("--quiet");
    } else {
        c.arg(command);
    }
    c
}
