//! `simcse train`: SimCSE's train.py, its flags in kebab case, so that a SimCSE script
//! translates line by line (`--model_name_or_path` -> `--model-name-or-path`, ...).

use clap::{Args, ValueEnum};
use clap::parser::ValueSource;
use clap::ArgMatches;
use simcse_core::signals;
use simcse_core::Precision;
use simcse_train::trainer::{train, Stop, TrainConfig};
use std::process::ExitCode;
use simcse_core::Pooler;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitArg {
    /// The weights of --model-name-or-path
    Pretrained,
    /// Random weights in the architecture of --config (the tokenizer of --model-name-or-path)
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvaluationStrategy {
    /// STS-B dev every --eval-steps
    Steps,
    No,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A model directory (see `simcse convert`): the weights to start from and the tokenizer
    #[arg(long, required_unless_present = "resume")]
    pub model_name_or_path: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "pretrained")]
    pub init: InitArg,
    /// With --init random: bert-base, bert-large, roberta-base, gpt2 or bert-tiny
    #[arg(long, required_if_eq("init", "random"))]
    pub config: Option<String>,
    /// .txt (a sentence a line: unsupervised) or .csv (header row; 1, 2 or 3 columns: sentences,
    /// pairs, pairs with a hard negative)
    #[arg(long, required_unless_present = "resume")]
    pub train_file: Option<PathBuf>,
    /// Becomes the model directory (the best model on STS-B dev when evaluating, else the last),
    /// with checkpoint-STEP/ (to resume), metrics.jsonl and training_run.json beside it
    #[arg(long, required_unless_present = "resume")]
    pub output_dir: Option<PathBuf>,
    #[arg(long, default_value = "cls")]
    pub pooler_type: Pooler,
    /// Use SimCSE's MLP over [CLS] in training only (SimCSE's unsupervised setting)
    #[arg(long)]
    pub mlp_only_train: bool,
    #[arg(long, default_value_t = 0.05)]
    pub temp: f64,
    /// Added to each example's own hard-negative logit (csv with 3 columns)
    #[arg(long, default_value_t = 0.0)]
    pub hard_negative_weight: f64,
    /// Add the masked-language-model objective
    #[arg(long)]
    pub do_mlm: bool,
    #[arg(long, default_value_t = 0.1)]
    pub mlm_weight: f64,
    #[arg(long, default_value_t = 0.15)]
    pub mlm_probability: f64,
    #[arg(long, default_value_t = 32)]
    pub max_seq_length: usize,
    #[arg(long, default_value_t = 3e-5)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: i64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value_t = 1.0)]
    pub num_train_epochs: f64,
    /// Stop after this many steps (overrides --num-train-epochs)
    #[arg(long)]
    pub max_steps: Option<i64>,
    #[arg(long, default_value_t = 64)]
    pub per_device_train_batch_size: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value = "fp32", value_parser = crate::cli::precision_parser(&Precision::NAMES))]
    pub precision: Precision,
    /// The same as --precision fp16 (SimCSE's scripts pass --fp16)
    #[arg(long)]
    pub fp16: bool,
    #[arg(long, value_enum, default_value = "steps")]
    pub evaluation_strategy: EvaluationStrategy,
    #[arg(long, default_value_t = 125)]
    pub eval_steps: i64,
    /// SentEval's data directory: STS-B dev is read from downstream/STS/STSBenchmark
    #[arg(long)]
    pub senteval_dir: Option<PathBuf>,
    /// Select on the Chinese STS-B instead: its valid split, STS-B/STS-B.valid.data in this
    /// directory (for a model trained on Chinese sentences)
    #[arg(long)]
    pub zh_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    pub logging_steps: i64,
    #[arg(long, default_value_t = 500)]
    pub save_steps: i64,
    /// Keep at most this many checkpoint-STEP directories, removing the oldest [default: all]
    #[arg(long)]
    pub save_total_limit: Option<usize>,
    /// Continue a run: its output directory (from its latest checkpoint) or one of its
    /// checkpoint-STEP directories; the run keeps its configuration
    #[arg(long, visible_alias = "resume-from-checkpoint")]
    pub resume: Option<PathBuf>,
    /// Pause after this many steps, as Ctrl-C does: the state is saved for --resume
    #[arg(long)]
    pub stop_after: Option<i64>,
    /// auto (CUDA where there is one, else the CPU, saying so), cpu, cuda or cuda:N
    #[arg(long, default_value = "auto")]
    pub device: simcse_core::DeviceChoice,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
    /// Replace an earlier run in --output-dir (removing only what it wrote), or write beside
    /// other files there (none of which is removed or replaced)
    #[arg(long)]
    pub overwrite_output_dir: bool,
    /// Accepted for SimCSE's scripts: the best model on STS-B dev is always what --output-dir holds
    #[arg(long, hide = true)]
    pub metric_for_best_model: Option<String>,
    #[arg(long, hide = true)]
    pub load_best_model_at_end: bool,
    #[arg(long, hide = true)]
    pub do_train: bool,
    #[arg(long, hide = true)]
    pub do_eval: bool,
}

/// `--stop-after` paused the run (sysexits' EX_TEMPFAIL: try again later, with --resume).
pub const PAUSED_EXIT_CODE: u8 = 75;

/// The options a resumed run takes from its saved configuration: each given now must agree.
/// (clap's argument id, the flag, the value in a configuration)
type Field = (&'static str, &'static str, fn(&TrainConfig) -> String);
const RESUMED_FIELDS: &[Field] = &[
    ("model_name_or_path", "--model-name-or-path", |c| c.model_dir.display().to_string()),
    ("train_file", "--train-file", |c| c.train_file.display().to_string()),
    ("config", "--config", |c| format!("{:?}", c.random_config)),
    ("init", "--init", |c| if c.random_config.is_some() { "random" } else { "pretrained" }.into()),
    ("pooler_type", "--pooler-type", |c| c.pooler.to_string()),
    ("mlp_only_train", "--mlp-only-train", |c| c.mlp_only_train.to_string()),
    ("temp", "--temp", |c| c.temp.to_string()),
    ("hard_negative_weight", "--hard-negative-weight", |c| c.hard_negative_weight.to_string()),
    ("do_mlm", "--do-mlm", |c| c.do_mlm.to_string()),
    ("mlm_weight", "--mlm-weight", |c| c.mlm_weight.to_string()),
    ("mlm_probability", "--mlm-probability", |c| c.mlm_probability.to_string()),
    ("max_seq_length", "--max-seq-length", |c| c.max_seq_length.to_string()),
    ("learning_rate", "--learning-rate", |c| c.learning_rate.to_string()),
    ("weight_decay", "--weight-decay", |c| c.weight_decay.to_string()),
    ("warmup_steps", "--warmup-steps", |c| c.warmup_steps.to_string()),
    ("max_grad_norm", "--max-grad-norm", |c| c.max_grad_norm.to_string()),
    ("num_train_epochs", "--num-train-epochs", |c| c.num_train_epochs.to_string()),
    ("max_steps", "--max-steps", |c| format!("{:?}", c.max_steps)),
    ("per_device_train_batch_size", "--per-device-train-batch-size", |c| c.batch_size.to_string()),
    ("seed", "--seed", |c| c.seed.to_string()),
    ("precision", "--precision", |c| c.precision.to_string()),
    ("fp16", "--fp16", |c| c.precision.to_string()),
    ("evaluation_strategy", "--evaluation-strategy", |c| if c.eval_steps.is_some() { "steps" } else { "no" }.into()),
    ("eval_steps", "--eval-steps", |c| format!("{:?}", c.eval_steps)),
    ("senteval_dir", "--senteval-dir", |c| format!("{:?}", c.senteval_dir)),
    ("zh_dir", "--zh-dir", |c| format!("{:?}", c.zh_dir)),
    ("logging_steps", "--logging-steps", |c| c.logging_steps.to_string()),
    ("save_steps", "--save-steps", |c| c.save_steps.to_string()),
];

/// Every option given on the command line whose value differs from the resumed run's.
fn disagreements(given: &ArgMatches, now: &TrainConfig, saved: &TrainConfig) -> Vec<String> {
    RESUMED_FIELDS
        .iter()
        .filter(|(id, _, _)| given.value_source(id) == Some(ValueSource::CommandLine))
        .filter_map(|(_, flag, value)| {
            let (now, saved) = (value(now), value(saved));
            (now != saved).then(|| format!("{flag} is {now} now, {saved} in the run being resumed"))
        })
        .collect()
}

pub fn run(args: TrainArgs, given: &ArgMatches) -> anyhow::Result<ExitCode> {
    if let Some(metric) = &args.metric_for_best_model {
        anyhow::ensure!(metric == "stsb_spearman", "--metric-for-best-model: only stsb_spearman (STS-B dev Spearman) is supported");
    }
    let config = TrainConfig {
        model_dir: args.model_name_or_path.unwrap_or_default(),
        random_config: (args.init == InitArg::Random).then(|| args.config.clone().unwrap_or_default()),
        train_file: args.train_file.unwrap_or_default(),
        output_dir: args.output_dir.clone().unwrap_or_default(),
        pooler: args.pooler_type,
        mlp_only_train: args.mlp_only_train,
        temp: args.temp,
        hard_negative_weight: args.hard_negative_weight,
        do_mlm: args.do_mlm,
        mlm_weight: args.mlm_weight,
        mlm_probability: args.mlm_probability,
        max_seq_length: args.max_seq_length,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        warmup_steps: args.warmup_steps,
        max_grad_norm: args.max_grad_norm,
        num_train_epochs: args.num_train_epochs,
        max_steps: args.max_steps,
        batch_size: args.per_device_train_batch_size,
        seed: args.seed,
        precision: if args.fp16 { Precision::F16 } else { args.precision },
        eval_steps: (args.evaluation_strategy == EvaluationStrategy::Steps).then_some(args.eval_steps),
        senteval_dir: args.senteval_dir,
        zh_dir: args.zh_dir,
        logging_steps: args.logging_steps,
        save_steps: args.save_steps,
        device: Some(args.device),
        quiet: args.quiet,
        stop_after: args.stop_after,
        save_total_limit: args.save_total_limit,
        overwrite_output_dir: args.overwrite_output_dir,
    };
    if args.resume.is_none() {
        simcse_train::trainer::validate(&config)?;
    }
    let check_resumed = |saved: &TrainConfig| -> anyhow::Result<()> {
        let differences = disagreements(given, &config, saved);
        anyhow::ensure!(
            differences.is_empty(),
            "a resumed run keeps its configuration, and options given now disagree with it: {}",
            differences.join("; ")
        );
        Ok(())
    };
    let report = train(config.clone(), args.resume.as_deref(), &check_resumed)?;
    let dev_set = report.dev_set;
    let out = report.output_dir.display();
    let resume_hint = || match &report.checkpoint {
        Some(c) => format!("state saved in {}; `simcse train --resume {out}` continues", c.display()),
        None => "nothing to save yet".into(),
    };
    match report.stop {
        Stop::Interrupted(signal) => {
            errln!("interrupted at step {}: {}", report.steps, resume_hint());
            return Ok(ExitCode::from(signals::exit_code(signal)));
        }
        Stop::Paused => {
            errln!("paused at step {} as --stop-after asked: {}", report.steps, resume_hint());
            return Ok(ExitCode::from(PAUSED_EXIT_CODE));
        }
        Stop::StdoutClosed => {
            errln!("stdout was closed: stopped at step {}; {}", report.steps, resume_hint());
            return Ok(ExitCode::SUCCESS);
        }
        Stop::Finished => {}
    }
    outln!("trained {} steps in {:.1} s", report.steps, report.seconds);
    if let Some(initial) = report.initial_dev {
        outln!("  {dev_set} Spearman at the start {initial:.2}");
    }
    match (report.best, &report.model_dir) {
        (Some((best, step)), Some(dir)) => outln!("  model: {} (the best on {dev_set}, {best:.2} at step {step})", dir.display()),
        (None, Some(dir)) => outln!("  model: {} (the last)", dir.display()),
        _ => {}
    }
    if let Some(checkpoint) = &report.checkpoint {
        outln!("  resumable state: {}", checkpoint.display());
    }
    Ok(ExitCode::SUCCESS)
}
