//! `simcse-bench encode MODEL_DIR`: sentences per second and peak memory of our ONNX Runtime
//! backend (standard and fused graphs) and our tract backend against sentence-transformers on
//! PyTorch, on every STS-B test sentence, each in its own process, in the same run.

use super::process::{Contender, baseline_script, machine, python_contender, run_alternating, write_figures};
use anyhow::{ensure, Context};
use clap::Args;
use serde_json::json;
use simcse_export::{export, ExportOptions, Optimize};
use simcse_runtime::{BackendKind, Encoder, EncoderOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct EncodeBenchArgs {
    /// A model directory sentence-transformers can also read (e.g. the converted all-MiniLM-L6-v2)
    pub model_dir: PathBuf,
    /// Sentences: a raw STS-B csv (both sentence columns are used) or a text file, one a line
    #[arg(long, default_value = "assets/stsb/sts-test.csv")]
    pub sentences: PathBuf,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// A Python with sentence-transformers (scripts/setup.sh --reference)
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    #[arg(long, default_value = "target/bench/encode-scratch")]
    pub scratch: PathBuf,
    #[arg(long, default_value = "target/bench/encode.json")]
    pub output: PathBuf,
}

/// The measured side of our encoder, run as `simcse-bench encode-worker`: loads, warms up on
/// one batch, encodes, writes the embeddings and prints its timings as JSON.
#[derive(Debug, Args)]
pub struct EncodeWorkerArgs {
    pub model_dir: PathBuf,
    #[arg(long)]
    pub onnx: PathBuf,
    /// ort or tract
    #[arg(long)]
    pub backend: BackendKind,
    #[arg(long)]
    pub sentences: PathBuf,
    #[arg(long)]
    pub batch_size: usize,
    #[arg(long)]
    pub output: PathBuf,
}

/// The Python baseline, under bench/python/.
const BASELINE_SCRIPT: &str = "encode_st.py";

/// Both sentences of every pair of a raw STS-B csv, or the lines of a text file.
fn read_sentences(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let sentences: Vec<String> = if path.extension().is_some_and(|e| e == "csv") {
        text.lines()
            .enumerate()
            .map(|(i, line)| {
                let fields: Vec<&str> = line.split('\t').collect();
                ensure!(fields.len() >= 7, "{}:{}: expected 7 tab-separated fields", path.display(), i + 1);
                Ok([fields[5].to_string(), fields[6].to_string()])
            })
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect()
    } else {
        text.lines().map(String::from).collect()
    };
    ensure!(!sentences.is_empty(), "{}: no sentences", path.display());
    Ok(sentences)
}

pub fn worker(args: EncodeWorkerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let lines = read_sentences(&args.sentences)?;
    let sentences: Vec<&str> = lines.iter().map(String::as_str).collect();
    let options = EncoderOptions {
        backend: args.backend,
        onnx: Some(args.onnx.clone()),
        batch_size: args.batch_size,
        ..Default::default()
    };
    let mut encoder = Encoder::open(&args.model_dir, &options)?;
    encoder.encode(&sentences[..args.batch_size.min(sentences.len())])?;
    let loaded = Instant::now();
    let embeddings = encoder.encode(&sentences)?;
    let encoded = Instant::now();
    simcse_runtime::output::write(&args.output, &embeddings, &sentences)?;
    outln!(
        "{}",
        json!({
            "load_s": (loaded - started).as_secs_f64(),
            "encode_s": (encoded - loaded).as_secs_f64(),
            "sentences": sentences.len(),
            "backend": encoder.describe(),
        })
    );
    Ok(())
}

pub fn run(args: EncodeBenchArgs) -> anyhow::Result<()> {
    simcse_core::atomic::create_dir(&args.scratch)?;
    let sentences = read_sentences(&args.sentences)?;
    let sentences_file = args.scratch.join("sentences.txt");
    std::fs::write(&sentences_file, sentences.join("\n") + "\n")?;
    let standard = args.scratch.join("model.onnx");
    let fused = args.scratch.join("model-ort.onnx");
    export(&args.model_dir, &ExportOptions { output: Some(standard.clone()), ..Default::default() })?;
    export(&args.model_dir, &ExportOptions { output: Some(fused.clone()), optimize: Optimize::Ort, ..Default::default() })?;

    let exe = std::env::current_exe()?; // this binary's hidden encode-worker
    let ours = |name: &str, onnx: &Path, backend: &'static str| {
        let (exe, model, onnx, input) = (exe.clone(), args.model_dir.clone(), onnx.to_path_buf(), sentences_file.clone());
        let output = args.scratch.join(format!("{name}.npy"));
        let batch = args.batch_size.to_string();
        Contender {
            name: name.to_string(),
            reports: true,
            command: Box::new(move || {
                let mut c = Command::new(&exe);
                c.arg("encode-worker").arg(&model).arg("--onnx").arg(&onnx).args(["--backend", backend]);
                c.arg("--sentences").arg(&input).args(["--batch-size", &batch]).arg("--output").arg(&output);
                c
            }),
        }
    };
    let python = python_contender(
        "sentence-transformers",
        &args.python,
        baseline_script(BASELINE_SCRIPT),
        vec![
            args.model_dir.clone().into(),
            sentences_file.clone().into(),
            args.batch_size.to_string().into(),
            args.scratch.join("sentence-transformers.npy").into(),
        ],
    );
    let contenders = vec![
        ours("simcse-ort", &standard, "ort"),
        ours("simcse-ort-fused", &fused, "ort"),
        ours("simcse-tract", &standard, "tract"),
        python,
    ];
    let results = run_alternating(&contenders, args.runs)?;
    let agreement = check_agreement(&args.scratch, &contenders, results[0].reports[0]["sentences"].as_u64().unwrap_or(0))?;

    let baseline = results.last().unwrap().reported("encode_s");
    let n = sentences.len() as f64;
    outln!(
        "encode {} sentences of {} with {}, batch {}, median of {} runs",
        sentences.len(),
        args.sentences.display(),
        args.model_dir.display(),
        args.batch_size,
        args.runs
    );
    outln!("{:<24} {:>12} {:>10} {:>12} {:>10}", "", "sentences/s", "vs ST", "peak RSS MB", "process s");
    for r in &results {
        let encode_s = r.reported("encode_s");
        outln!(
            "{:<24} {:>12.0} {:>9.2}x {:>12.0} {:>10.2}",
            r.name,
            n / encode_s,
            baseline / encode_s,
            r.peak_rss_bytes() as f64 / 1e6,
            r.wall_s()
        );
    }
    outln!("embeddings agree with sentence-transformers: min cosine {agreement:.6}");
    let figures = json!({
        "benchmark": "encode",
        "machine": machine(),
        "model_dir": args.model_dir,
        "sentences": sentences.len(),
        "batch_size": args.batch_size,
        "runs": args.runs,
        "results": results.iter().map(|r| (r.name.clone(), r.to_json())).collect::<serde_json::Map<_, _>>(),
        "sentences_per_s": results.iter().map(|r| (r.name.clone(), json!(n / r.reported("encode_s")))).collect::<serde_json::Map<_, _>>(),
        "min_cosine_vs_sentence_transformers": agreement,
    });
    write_figures(&args.output, &figures)?;
    outln!("figures written to {}", args.output.display());
    Ok(())
}

/// Every contender must have computed the same embeddings, or the speeds mean nothing.
fn check_agreement(scratch: &Path, contenders: &[Contender], rows: u64) -> anyhow::Result<f32> {
    let reference = simcse_runtime::output::read_npy(&scratch.join("sentence-transformers.npy"))?.values;
    let dim = reference.len() / rows.max(1) as usize;
    let mut min_cos = 1.0f32;
    for c in contenders.iter().filter(|c| c.name.starts_with("simcse")) {
        let ours = simcse_runtime::output::read_npy(&scratch.join(format!("{}.npy", c.name)))?.values;
        let (_, cos) = simcse_runtime::similarity::agreement(&ours, &reference, dim);
        ensure!(cos >= 0.9999, "{} disagrees with sentence-transformers: min cosine {cos}", c.name);
        min_cos = min_cos.min(cos);
    }
    Ok(min_cos)
}
