//! `simcse-bench export MODEL_DIR`: our exporter against `torch.onnx.export` of transformers'
//! BertModel, on the same weights, each in its own process, in the same run.

use super::process::{Contender, baseline_script, machine, print_versus, python_contender, run_alternating, write_figures};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Args)]
pub struct ExportBenchArgs {
    /// A BERT model directory (make a bert-base-sized one: `make bench-export`)
    pub model_dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// A Python with torch, transformers and onnx (scripts/setup.sh --reference)
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    #[arg(long, default_value = "target/bench/export-scratch")]
    pub scratch: PathBuf,
    #[arg(long, default_value = "target/bench/export.json")]
    pub output: PathBuf,
}

/// The Python baseline, under bench/python/.
const BASELINE_SCRIPT: &str = "export_torch.py";

pub fn run(args: ExportBenchArgs) -> anyhow::Result<()> {
    simcse_core::atomic::create_dir(&args.scratch)?;
    let exe = super::process::simcse_binary()?;
    let (model, ours_out) = (args.model_dir.clone(), args.scratch.join("simcse.onnx"));
    let ours = Contender {
        name: "simcse export".into(),
        reports: false,
        command: Box::new(move || {
            let mut c = Command::new(&exe);
            c.arg("export").arg(&model).arg("--pooler").arg("cls_before_pooler").arg("-o").arg(&ours_out);
            c
        }),
    };
    let torch = python_contender(
        "torch.onnx.export",
        &args.python,
        baseline_script(BASELINE_SCRIPT),
        vec![args.model_dir.clone().into(), args.scratch.join("torch.onnx").into()],
    );
    let results = run_alternating(&[ours, torch], args.runs)?;
    let (ours, torch) = (&results[0], &results[1]);
    outln!("export {}, median of {} runs", args.model_dir.display(), args.runs);
    print_versus(ours, torch, ("the export call alone", "export_s"));
    let figures = json!({
        "benchmark": "export",
        "machine": machine(),
        "model_dir": args.model_dir,
        "runs": args.runs,
        "simcse": ours.to_json(),
        "torch": torch.to_json(),
    });
    write_figures(&args.output, &figures)?;
    outln!("figures written to {}", args.output.display());
    Ok(())
}
