//! `simcse train`: SimCSE's train.py, its flags in kebab case, so that a SimCSE script
//! translates line by line (`--model_name_or_path` -> `--model-name-or-path`, ...).

use clap::{Args, ValueEnum};
use simcse::train::device::DeviceArg;
use simcse::train::trainer::{train, PrecisionArg, TrainConfig, STATE_DIR};
use simcse_converters::Pooler;
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
    /// Written: best/ (the best model on STS-B dev), final/, state/ (to resume), metrics.jsonl
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
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: PrecisionArg,
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
    #[arg(long, default_value_t = 10)]
    pub logging_steps: i64,
    #[arg(long, default_value_t = 500)]
    pub save_steps: i64,
    /// Continue a run from its state directory (OUTPUT_DIR/state), with its configuration
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Pause after this many steps, as Ctrl-C does: the state is saved for --resume
    #[arg(long)]
    pub stop_after: Option<i64>,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
    /// Accepted for SimCSE's scripts: the best model on STS-B dev is always kept (best/)
    #[arg(long, hide = true)]
    pub metric_for_best_model: Option<String>,
    #[arg(long, hide = true)]
    pub load_best_model_at_end: bool,
    #[arg(long, hide = true)]
    pub overwrite_output_dir: bool,
    #[arg(long, hide = true)]
    pub do_train: bool,
    #[arg(long, hide = true)]
    pub do_eval: bool,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.logging_steps > 0 && args.save_steps > 0 && args.eval_steps > 0, "the step intervals must be positive");
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
        precision: if args.fp16 { PrecisionArg::Fp16 } else { args.precision },
        eval_steps: (args.evaluation_strategy == EvaluationStrategy::Steps).then_some(args.eval_steps),
        senteval_dir: args.senteval_dir,
        logging_steps: args.logging_steps,
        save_steps: args.save_steps,
        device: Some(args.device),
        quiet: args.quiet,
        stop_after: args.stop_after,
    };
    let report = train(config, args.resume.as_deref())?;
    let state = report.output_dir.join(STATE_DIR);
    if report.interrupted {
        anyhow::bail!("stopped at step {}; the state is saved: continue with --resume {}", report.steps, state.display());
    }
    println!("trained {} steps in {:.1} s", report.steps, report.seconds);
    if let Some(initial) = report.initial_dev {
        println!("  STS-B dev Spearman at the start {initial:.2}");
    }
    if let (Some((best, step)), Some(dir)) = (report.best, &report.best_dir) {
        println!("  best STS-B dev Spearman {best:.2} at step {step}: {}", dir.display());
    }
    if let Some(dir) = &report.final_dir {
        println!("  last model: {}", dir.display());
    }
    println!("  resume state: {}", state.display());
    Ok(())
}
