//! `simcse-bench convert CHECKPOINT`: our converter and PyTorch's (torch.load +
//! safetensors.torch.save_file) on the same checkpoint, alternating, each in its own process.

use super::process::{Measured, baseline_script, machine, measure, median, write_figures};
use anyhow::{ensure, Context};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Args)]
pub struct ConvertBenchArgs {
    /// A model directory with pytorch_model.bin (make a bert-base-sized one with
    /// `.venv/bin/python tests/fixtures/gen_checkpoints.py --bench-checkpoint DIR`)
    pub checkpoint: PathBuf,
    /// A Python with torch and safetensors (scripts/setup.sh --reference)
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// Measured runs of each (after one warm-up run each, which fills the page cache)
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where the outputs of the runs go
    #[arg(long, default_value = "target/bench/scratch")]
    pub scratch: PathBuf,
    /// The figures as JSON
    #[arg(long, default_value = "target/bench/convert.json")]
    pub output: PathBuf,
}

/// The Python baseline, under bench/python/.
const BASELINE_SCRIPT: &str = "convert_torch.py";

struct PythonRun {
    process: Measured,
    import_s: f64,
    convert_s: f64,
}

pub fn run(args: ConvertBenchArgs) -> anyhow::Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    let weights = args.checkpoint.join("pytorch_model.bin");
    let size = std::fs::metadata(&weights).with_context(|| format!("reading {}", weights.display()))?.len();
    simcse_core::atomic::create_dir(&args.scratch)?;
    let ours_dst = args.scratch.join("simcse");
    let python_dst = args.scratch.join("python.safetensors");
    let exe = super::process::simcse_binary()?;

    let run_ours = || -> anyhow::Result<Measured> {
        let _ = std::fs::remove_dir_all(&ours_dst);
        measure(Command::new(&exe).arg("convert").arg("--quiet").arg(&args.checkpoint).arg(&ours_dst))
    };
    let run_python = || -> anyhow::Result<PythonRun> {
        let _ = std::fs::remove_file(&python_dst);
        let process = measure(Command::new(&args.python).arg(baseline_script(BASELINE_SCRIPT)).arg(&args.checkpoint).arg(&python_dst))
            .context("running the Python baseline (is the reference stack installed? scripts/setup.sh --reference)")?;
        let report: serde_json::Value = serde_json::from_str(process.stdout.trim())
            .with_context(|| format!("the baseline printed {:?}", process.stdout))?;
        let field = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
        Ok(PythonRun { import_s: field("import_s"), convert_s: field("convert_s"), process })
    };

    errln!("warming up (one run each)");
    run_ours()?;
    run_python()?;
    let (mut ours, mut python) = (Vec::new(), Vec::new());
    for run in 1..=args.runs {
        errln!("run {run}/{}", args.runs);
        ours.push(run_ours()?);
        python.push(run_python()?);
    }
    check_same_tensors(&ours_dst.join("model.safetensors"), &python_dst)?;

    let ours_wall = median(&ours.iter().map(|m| m.wall_s).collect::<Vec<_>>());
    let ours_rss = ours.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0);
    let py_wall = median(&python.iter().map(|p| p.process.wall_s).collect::<Vec<_>>());
    let py_convert = median(&python.iter().map(|p| p.convert_s).collect::<Vec<_>>());
    let py_import = median(&python.iter().map(|p| p.import_s).collect::<Vec<_>>());
    let py_rss = python.iter().map(|p| p.process.peak_rss_bytes).max().unwrap_or(0);
    let figures = json!({
        "benchmark": "convert",
        "machine": machine(),
        "checkpoint": { "path": weights, "bytes": size },
        "runs": args.runs,
        "simcse": { "wall_s_median": ours_wall, "wall_s": ours.iter().map(|m| m.wall_s).collect::<Vec<_>>(), "peak_rss_bytes": ours_rss },
        "python": {
            "wall_s_median": py_wall,
            "wall_s": python.iter().map(|p| p.process.wall_s).collect::<Vec<_>>(),
            "convert_s_median": py_convert,
            "import_torch_s_median": py_import,
            "peak_rss_bytes": py_rss,
        },
        "speedup_whole_process": py_wall / ours_wall,
        "speedup_excluding_python_import": py_convert / ours_wall,
        "simcse_peak_rss_over_checkpoint": ours_rss as f64 / size as f64,
    });
    write_figures(&args.output, &figures)?;

    let mb = |b: u64| b as f64 / 1e6;
    outln!("convert {} ({:.0} MB), median of {} runs", weights.display(), mb(size), args.runs);
    outln!("{:<48} {:>9} {:>12}", "", "seconds", "peak RSS MB");
    outln!("{:<48} {:>9.3} {:>12.0}", "simcse convert (whole process)", ours_wall, mb(ours_rss));
    outln!("{:<48} {:>9.3} {:>12.0}", "python torch.load + save_file (whole process)", py_wall, mb(py_rss));
    outln!("{:<48} {:>9.3}", "python, the conversion alone (after import)", py_convert);
    outln!(
        "speedup {:.1}x whole process, {:.1}x against the conversion alone; simcse peak RSS {:.2}x the checkpoint",
        py_wall / ours_wall,
        py_convert / ours_wall,
        ours_rss as f64 / size as f64
    );
    outln!("figures written to {}", args.output.display());
    Ok(())
}

/// Both outputs must hold the same tensors byte for byte, or the comparison means nothing.
fn check_same_tensors(ours: &Path, python: &Path) -> anyhow::Result<()> {
    let (a, b) = (std::fs::read(ours)?, std::fs::read(python)?);
    let (a, b) = (safetensors::SafeTensors::deserialize(&a)?, safetensors::SafeTensors::deserialize(&b)?);
    ensure!(a.len() == b.len(), "simcse wrote {} tensors, Python {}", a.len(), b.len());
    for (name, view) in b.tensors() {
        let ours = a.tensor(&name).with_context(|| format!("simcse's output lacks `{name}`"))?;
        ensure!(ours.data() == view.data() && ours.shape() == view.shape(), "`{name}` differs from Python's");
    }
    Ok(())
}
