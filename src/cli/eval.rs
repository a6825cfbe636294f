//! `simcse eval MODEL_DIR`: STS in SentEval's protocol, printed as SimCSE's `evaluation.py`
//! prints it (Spearman x 100), every subset's figures in `--output results.json`.

use crate::cli::encode::EncoderArgs;
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use simcse_core::progress::Progress;
use simcse_core::Pooler;
use simcse_export::{export, ExportOptions};
use simcse_runtime::sts::{self, DataDirs, Mode, TaskSpec};
use simcse_runtime::{Encoder, ModelInfo};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskSet {
    /// STS12-16, STS Benchmark, and SICK-R where its files are given (SimCSE's table)
    Sts,
    /// Chinese STS-B, and LCQMC and PAWS-X where their files are given
    Zh,
    /// Exactly the tasks of --tasks
    Na,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// SimCSE's test table: STS12-16 over all subsets, STS-B and SICK-R test splits
    Test,
    /// Model selection: STS-B dev, SICK-R trial (valid splits for the pair sets)
    Dev,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A model directory (exported to model.onnx first if it has none)
    pub model_dir: PathBuf,
    #[arg(long, value_enum, default_value = "sts")]
    pub task_set: TaskSet,
    /// With --task-set na: STS12 STS13 STS14 STS15 STS16 STSBenchmark SICKRelatedness STSB-raw STS-B-zh LCQMC PAWSX
    #[arg(long, num_args = 1..)]
    pub tasks: Vec<String>,
    #[arg(long, value_enum, default_value = "test")]
    pub mode: ModeArg,
    /// SentEval's data directory (holding downstream/STS/..., and downstream/SICK if you have it)
    #[arg(long)]
    pub senteval_dir: Option<PathBuf>,
    /// The Chinese pair sets' directory (STS-B/STS-B.{valid,test}.data, LCQMC/..., PAWSX/...)
    #[arg(long)]
    pub zh_dir: Option<PathBuf>,
    /// The raw (untokenized) STS-B csv files, for the task STSB-raw
    #[arg(long, default_value = "assets/stsb")]
    pub stsb_raw_dir: PathBuf,
    /// Evaluate with this pooler (the graph is re-exported with it if it differs)
    #[arg(long)]
    pub pooler: Option<Pooler>,
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Every task's and subset's n, Pearson and Spearman, as JSON
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long, short)]
    pub quiet: bool,
}

/// The tasks to run, each with whether its absence is an error (SICK-R, LCQMC and PAWS-X are
/// brought by the user, so a task set includes them only where their files are given).
fn select(args: &EvalArgs, mode: Mode) -> anyhow::Result<Vec<(&'static TaskSpec, bool)>> {
    if args.task_set != TaskSet::Na && !args.tasks.is_empty() {
        bail!("--tasks chooses the tasks only with --task-set na");
    }
    let named = |name: &str| sts::data::spec(name).expect("a known task");
    let chosen: Vec<(&TaskSpec, bool)> = match args.task_set {
        TaskSet::Sts => sts::STS_TABLE.iter().map(|n| (named(n), *n != "SICKRelatedness")).collect(),
        TaskSet::Zh => sts::ZH_TABLE.iter().map(|n| (named(n), *n == "STS-B-zh")).collect(),
        TaskSet::Na => {
            if args.tasks.is_empty() {
                bail!("--task-set na needs --tasks");
            }
            args.tasks
                .iter()
                .map(|name| {
                    let known: Vec<&str> = sts::TASKS.iter().map(|t| t.name).collect();
                    sts::data::spec(name)
                        .map(|spec| (spec, true))
                        .with_context(|| format!("unknown task `{name}`; known tasks: {}", known.join(", ")))
                })
                .collect::<anyhow::Result<_>>()?
        }
    };
    Ok(chosen.into_iter().filter(|(spec, _)| spec.has_mode(mode)).collect())
}

/// The graph to evaluate: the model's, or one re-exported with the requested pooler.
fn graph_for(args: &EvalArgs, scratch: &Path) -> anyhow::Result<Option<PathBuf>> {
    let Some(pooler) = args.pooler else { return Ok(args.encoder.onnx.clone()) };
    let onnx = args.encoder.onnx.clone().unwrap_or_else(|| args.model_dir.join("model.onnx"));
    if onnx.is_file() && ModelInfo::read(&onnx)?.pooler == pooler {
        // The encoder opens it (and exports it again where it is stale).
        return Ok(args.encoder.onnx.clone());
    }
    let path = scratch.join(format!("model-{pooler}.onnx"));
    export(&args.model_dir, &ExportOptions { pooler: Some(pooler), output: Some(path.clone()), ..Default::default() })?;
    errln!("note: exported a graph with pooler {pooler} for this evaluation");
    Ok(Some(path))
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let mode = match args.mode {
        ModeArg::Test => Mode::Test,
        ModeArg::Dev => Mode::Dev,
    };
    simcse_core::ModelDir::open(&args.model_dir, simcse_core::Needs::Config)?;
    if let Some(path) = &args.output {
        crate::cli::check_writable(path)?;
    }
    simcse_runtime::encoder::check_options(&args.encoder.options())?;
    let dirs = DataDirs { senteval: args.senteval_dir.clone(), zh: args.zh_dir.clone(), raw_stsb: Some(args.stsb_raw_dir.clone()) };
    let mut tasks = Vec::new();
    for (spec, required) in select(&args, mode)? {
        if !required && !spec.available(&dirs, mode) {
            let folder = spec.folder(&dirs).map(|f| f.display().to_string()).unwrap_or_else(|e| e.to_string());
            errln!("note: {} skipped: {folder} does not hold {}", spec.name, spec.expected_files(mode).join(", "));
            continue;
        }
        tasks.push(spec.load(&dirs, mode)?);
    }
    if tasks.is_empty() {
        bail!("no task to evaluate in {:?} mode", args.mode);
    }

    let scratch = tempfile::tempdir()?;
    let mut options = args.encoder.options();
    options.onnx = graph_for(&args, scratch.path())?;
    let mut encoder = Encoder::open(&args.model_dir, &options).with_context(|| format!("opening {}", args.model_dir.display()))?;
    crate::cli::print_notes(&encoder);
    let started = Instant::now();
    let pairs: usize = tasks.iter().flat_map(|t| &t.subsets).map(|s| s.pairs.len()).sum();
    let mut progress = Progress::items("encoding", 0, args.quiet);
    let scores = sts::evaluate(&tasks, &mut |sentences| {
        encoder.encode_with_progress(sentences, &mut |done, total| progress.set(done as u64, total as u64))
    })?;
    progress.finish();

    let title = if mode == Mode::Test { "test" } else { "dev" };
    let columns: Vec<&str> = match (args.task_set, mode) {
        (TaskSet::Sts, Mode::Test) => sts::STS_TABLE.to_vec(),
        (TaskSet::Sts, Mode::Dev) => sts::DEV_TABLE.to_vec(),
        (TaskSet::Zh, _) => sts::ZH_TABLE.to_vec(),
        (TaskSet::Na, _) => tasks.iter().map(|t| t.name.as_str()).collect(),
    };
    outln!("{}", sts::simcse_table(title, &columns, &scores));
    errln!(
        "{} tasks, {pairs} pairs, pooler {}, {} in {:.1} s",
        scores.len(),
        encoder.info.pooler,
        encoder.describe(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.output {
        let results = serde_json::json!({
            "model_dir": args.model_dir,
            "onnx": encoder.onnx,
            "pooler": encoder.info.pooler,
            "normalize": encoder.info.normalize,
            "mode": title,
            "backend": encoder.describe(),
            "tasks": scores,
        });
        crate::cli::write_atomically(path, &serde_json::to_vec_pretty(&results)?)?;
        errln!("results written to {}", path.display());
    }
    Ok(())
}
