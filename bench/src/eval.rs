//! `simcse-bench eval MODEL_DIR`: the whole test-mode STS evaluation (STS12-16, STS-B test),
//! `simcse eval` against SimCSE's protocol on transformers, each in its own process.

use super::process::{Contender, baseline_script, machine, print_versus, python_contender, run_alternating, write_figures};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Args)]
pub struct EvalBenchArgs {
    /// A model directory with model.onnx that transformers can also read (the converted all-MiniLM-L6-v2)
    pub model_dir: PathBuf,
    #[arg(long)]
    pub senteval_dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    #[arg(long, default_value = "target/bench/eval.json")]
    pub output: PathBuf,
}

/// The Python baseline, under bench/python/.
const BASELINE_SCRIPT: &str = "eval_senteval.py";

pub fn run(args: EvalBenchArgs) -> anyhow::Result<()> {
    let exe = super::process::simcse_binary()?;
    let (model, senteval, json_out) = (args.model_dir.clone(), args.senteval_dir.clone(), args.output.with_extension("simcse.json"));
    let ours = Contender {
        name: "simcse eval".into(),
        reports: false,
        command: Box::new(move || {
            let mut c = Command::new(&exe);
            c.arg("eval").arg(&model).arg("--senteval-dir").arg(&senteval).args(["--task-set", "na", "--tasks"]);
            c.args(["STS12", "STS13", "STS14", "STS15", "STS16", "STSBenchmark", "--quiet", "--output"]).arg(&json_out);
            c
        }),
    };
    let reference = python_contender(
        "Python reference",
        &args.python,
        baseline_script(BASELINE_SCRIPT),
        vec![args.model_dir.clone().into(), args.senteval_dir.clone().into()],
    );
    let results = run_alternating(&[ours, reference], args.runs)?;
    let (ours, python) = (&results[0], &results[1]);
    let our_scores: serde_json::Value = serde_json::from_slice(&std::fs::read(args.output.with_extension("simcse.json"))?)?;
    outln!("test-mode STS evaluation (STS12-16, STS-B test) of {}, median of {} runs", args.model_dir.display(), args.runs);
    print_versus(ours, python, ("the evaluation alone", "eval_s"));
    for task in our_scores["tasks"].as_array().into_iter().flatten() {
        let name = task["task"].as_str().unwrap_or("");
        let theirs = python.reports.first().and_then(|r| r["scores"][name].as_f64()).unwrap_or(f64::NAN);
        outln!("  {name:<14} simcse {:.2}  python {:.2}", task["spearman"]["all"].as_f64().unwrap_or(f64::NAN) * 100.0, theirs);
    }
    write_figures(&args.output, &json!({ "benchmark": "eval", "machine": machine(), "runs": args.runs,
        "simcse": ours.to_json(), "python": python.to_json(), "simcse_scores": our_scores["tasks"] }))?;
    outln!("figures written to {}", args.output.display());
    Ok(())
}
