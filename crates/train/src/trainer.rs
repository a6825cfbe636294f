//! The training loop of SimCSE's train.py under the Hugging Face Trainer: shuffled batches,
//! the contrastive (and MLM) loss, AdamW with a linear schedule and gradient clipping, fp16
//! loss scaling, STS-B dev evaluation every `eval_steps` with the best model written to the
//! output directory, logging, and a checkpoint saved every `save_steps` (and on an interrupt)
//! that `--resume` continues from to the same result. Every option is checked against the
//! model and the data before the run starts (`validate`); a libtorch failure inside a step
//! (CUDA out of memory) is an error that keeps the last checkpoint.
// `a = a + b` rather than `a += b`: on tch tensors `+=` is in place, which autograd may not allow.
#![allow(clippy::assign_op_pattern)]

use super::checkpoint::{model_files, read_safetensors, safetensors_bytes, write_dir, write_files, SavedModel};
use super::data::{epoch_order, TrainData};
use super::device::{gpu_memory_bytes, peak_rss_bytes, select};
use super::half_linear::Half;
use super::loss::{contrastive_loss, mlm_loss};
use super::mlm::mask_tokens;
use super::model::Compute;
use simcse_core::Precision;
use super::optim::{clip_grad_norm, linear_schedule, AdamW, LossScaler};
use super::simcse_model::{Inputs, SimcseModel};
use super::run_dir::{ModelRecord, RunDir, METRICS_FILE, TRAINER_STATE_FILE};
use simcse_core::progress::Progress;
use simcse_core::signals;
use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};
use serde_json::json;
use simcse_core::architecture::Architecture;
use simcse_core::model_dir::{Needs, RUN_FILE};
use simcse_core::{ModelConfig, ModelDir, Pooler, SimcseConfig};
use simcse_core::batch::{embed_in_length_order, Batch};
use simcse_core::sts::{self, DataDirs, Mode, Task};
use simcse_core::tokenize::SentenceTokenizer;
use simcse_core::{Embeddings, InputError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Everything a run is configured with (SimCSE's train.py arguments).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The model directory to start from (its tokenizer is used in any case).
    pub model_dir: PathBuf,
    /// `--init random --config NAME`: this architecture, random weights.
    pub random_config: Option<String>,
    pub train_file: PathBuf,
    pub output_dir: PathBuf,
    pub pooler: Pooler,
    pub mlp_only_train: bool,
    pub temp: f64,
    pub hard_negative_weight: f64,
    pub do_mlm: bool,
    pub mlm_weight: f64,
    pub mlm_probability: f64,
    pub max_seq_length: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub warmup_steps: i64,
    pub max_grad_norm: f64,
    pub num_train_epochs: f64,
    pub max_steps: Option<i64>,
    pub batch_size: usize,
    pub seed: u64,
    pub precision: Precision,
    /// None: no evaluation during training.
    pub eval_steps: Option<i64>,
    pub senteval_dir: Option<PathBuf>,
    /// Select on the Chinese STS-B's valid split in this directory instead of STS-B dev.
    #[serde(default)]
    pub zh_dir: Option<PathBuf>,
    pub logging_steps: i64,
    pub save_steps: i64,
    #[serde(skip)]
    pub device: Option<simcse_core::DeviceChoice>,
    #[serde(skip)]
    pub quiet: bool,
    /// Stop after this many steps as Ctrl-C would, the state saved (a time-limited job's pause).
    #[serde(skip)]
    pub stop_after: Option<i64>,
    /// Keep at most this many checkpoints, removing the oldest (`--save-total-limit`).
    #[serde(default)]
    pub save_total_limit: Option<usize>,
    /// Replace an earlier run in the output directory, or write beside files that are not a run's.
    #[serde(skip)]
    pub overwrite_output_dir: bool,
}

/// Where a run stands; with the weights and the optimizer's moments, what `--resume` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub step: i64,
    pub total_steps: i64,
    pub epoch: u64,
    /// Batches of the current epoch already trained on.
    pub batch_in_epoch: usize,
    pub optimizer_steps: i64,
    pub scaler: LossScaler,
    pub best: Option<(f64, i64)>,
    /// The training data the run started with: a resumed run must see the same.
    pub examples: usize,
    /// SHA-256 of the training file.
    #[serde(default)]
    pub train_file_sha256: Option<String>,
    pub config: TrainConfig,
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Every step was trained.
    Finished,
    /// SIGINT or SIGTERM (the signal number); the state is saved.
    Interrupted(i32),
    /// `--stop-after`; the state is saved.
    Paused,
    /// stdout's reader went away (`| head`); the state is saved.
    StdoutClosed,
}

/// What a run ends with.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub steps: i64,
    /// What `initial_dev` and `best` were measured on.
    pub dev_set: &'static str,
    pub initial_dev: Option<f64>,
    pub best: Option<(f64, i64)>,
    /// The output directory, where it holds a model (the best, or the last).
    pub model_dir: Option<PathBuf>,
    /// The checkpoint a resume continues from.
    pub checkpoint: Option<PathBuf>,
    pub seconds: f64,
    pub stop: Stop,
    pub output_dir: PathBuf,
}

struct Run {
    cfg: TrainConfig,
    device: Device,
    model: SimcseModel,
    optimizer: AdamW,
    state: RunState,
    data: TrainData,
    tokenizer: SentenceTokenizer,
    config_json: serde_json::Value,
    source_simcse: Option<SimcseConfig>,
    evaluation: Option<(Task, SentenceTokenizer)>,
    run_dir: RunDir,
    metrics: std::fs::File,
    /// The step whose state was saved last.
    saved_step: Option<i64>,
    /// A test hook: fail the step with this number inside libtorch (`SIMCSE_FAIL_AT_STEP`).
    fail_at_step: Option<i64>,
}

/// How the layers' products run in `precision`.
pub fn half_of(precision: Precision) -> Compute {
    match precision {
        Precision::F32 => Compute::F32,
        Precision::F16 => Compute::Half(Half::F16),
        Precision::Bf16 => Compute::Half(Half::BF16),
    }
}

/// The loss settings of a step.
pub struct StepSettings {
    pub temp: f64,
    pub hard_negative_weight: f64,
    pub max_grad_norm: f64,
}

/// One step of SimCSE on a batch whose rows are `views` sentences per example (two dropout
/// views, a pair, or a pair and a hard negative): the contrastive loss (plus `extra`, the MLM
/// loss), backward through the loss scale, unscale, skip on overflow, clip, AdamW at `lr`.
/// Returns the unscaled loss, detached, on the device (no synchronization).
#[allow(clippy::too_many_arguments)]
pub fn optimization_step(
    model: &SimcseModel,
    optimizer: &mut AdamW,
    scaler: &mut LossScaler,
    inputs: &Inputs,
    views: usize,
    extra: Option<Tensor>,
    lr: f64,
    settings: &StepSettings,
) -> Tensor {
    let z = model.embed(inputs, true);
    let examples = z.size()[0] / views as i64;
    let z = z.view([examples, views as i64, -1]);
    let z3 = (views == 3).then(|| z.select(1, 2));
    let (mut loss, _) = contrastive_loss(&z.select(1, 0), &z.select(1, 1), z3.as_ref(), settings.temp, settings.hard_negative_weight);
    if let Some(extra) = extra {
        loss = loss + extra;
    }
    (&loss * scaler.scale).backward();
    let grads = optimizer.grads();
    let finite = scaler.unscale(&grads);
    if finite {
        // The Trainer's convention: a max norm of 0 turns clipping off.
        if settings.max_grad_norm > 0.0 {
            let _ = clip_grad_norm(&grads, settings.max_grad_norm);
        }
        optimizer.step(lr);
    }
    optimizer.zero_grad();
    scaler.update(finite);
    loss.detach()
}


pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const MLM_HEAD_FILE: &str = "mlm_head.safetensors";

/// Trains from scratch, or from `resume` (a run's output directory: its latest checkpoint; or
/// one of its `checkpoint-STEP` directories). `check_resumed(saved)` refuses options given
/// now that disagree with the saved run's.
pub fn train(cfg: TrainConfig, resume: Option<&Path>, check_resumed: &dyn Fn(&TrainConfig) -> anyhow::Result<()>) -> anyhow::Result<TrainReport> {
    let mut run = Run::prepare(cfg, resume, check_resumed)?;
    run.execute()
}

/// The run directory and the checkpoint a `--resume PATH` means.
fn resolve_resume(path: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    simcse_core::atomic::recover_swap(path);
    if path.join(RUN_FILE).is_file() {
        let run = RunDir::open(path)?;
        let checkpoint = run.latest_checkpoint()?.with_context(|| {
            format!("{} has no checkpoint to resume from: the run stopped before its first save", path.display())
        })?;
        return Ok((path.to_path_buf(), checkpoint));
    }
    if path.join(TRAINER_STATE_FILE).is_file() {
        let dir = path.parent().filter(|p| p.join(RUN_FILE).is_file()).with_context(|| {
            format!("{} is a checkpoint, but its parent directory is not a training run's output directory", path.display())
        })?;
        return Ok((dir.to_path_buf(), path.to_path_buf()));
    }
    if path.join("state.json").is_file() {
        bail!("{} is the state of an older `simcse train` (before checkpoint-STEP directories): this version cannot resume it", path.display());
    }
    bail!("--resume {}: neither a training run's output directory nor one of its checkpoint-STEP directories", path.display())
}

fn sha256_of(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(simcse_core::model_dir::hex(&sha2::Sha256::digest(&bytes)))
}

/// Checks the numbers a run is configured with, naming the option and the limit.
impl TrainConfig {
    /// The split models are selected on, for messages.
    pub fn dev_set(&self) -> &'static str {
        if self.zh_dir.is_some() {
            "Chinese STS-B valid"
        } else {
            "STS-B dev"
        }
    }
}

pub fn validate(cfg: &TrainConfig) -> anyhow::Result<()> {
    let positive = [
        ("--learning-rate", cfg.learning_rate),
        ("--temp", cfg.temp),
        ("--num-train-epochs", cfg.num_train_epochs),
    ];
    for (flag, value) in positive {
        ensure!(value.is_finite() && value > 0.0, "{flag} {value} must be a positive number");
    }
    let non_negative = [("--weight-decay", cfg.weight_decay), ("--max-grad-norm", cfg.max_grad_norm), ("--mlm-weight", cfg.mlm_weight)];
    for (flag, value) in non_negative {
        ensure!(value.is_finite() && value >= 0.0, "{flag} {value} must be a number of at least 0");
    }
    ensure!(cfg.hard_negative_weight.is_finite(), "--hard-negative-weight {} must be a number", cfg.hard_negative_weight);
    ensure!(
        !cfg.do_mlm || (cfg.mlm_probability > 0.0 && cfg.mlm_probability < 1.0),
        "--mlm-probability {} must lie strictly between 0 and 1",
        cfg.mlm_probability
    );
    ensure!(cfg.max_steps.is_none_or(|s| s > 0), "--max-steps must be at least 1");
    ensure!(cfg.warmup_steps >= 0, "--warmup-steps must be at least 0");
    ensure!(cfg.batch_size > 0, "--per-device-train-batch-size must be at least 1");
    ensure!(cfg.logging_steps > 0 && cfg.save_steps > 0, "--logging-steps and --save-steps must be at least 1");
    ensure!(cfg.eval_steps.is_none_or(|s| s > 0), "--eval-steps must be at least 1");
    ensure!(cfg.save_total_limit.is_none_or(|n| n > 0), "--save-total-limit must be at least 1 (leave it out to keep every checkpoint)");
    ensure!(cfg.stop_after.is_none_or(|n| n > 0), "--stop-after must be at least 1");
    if cfg.mlp_only_train && cfg.pooler != Pooler::Cls {
        bail!("--mlp-only-train leaves SimCSE's MLP out at evaluation, and only the cls pooler has one (not {})", cfg.pooler);
    }
    Ok(())
}

/// Checks the options against the data: in-batch negatives exist, hard negatives where their
/// weight is given, token ids the model's embedding table holds.
fn validate_data(cfg: &TrainConfig, data: &TrainData, vocab: usize) -> anyhow::Result<()> {
    let file = cfg.train_file.display();
    if data.columns < 3 {
        ensure!(
            cfg.batch_size >= 2,
            "--per-device-train-batch-size 1: without hard negatives, SimCSE's negatives are the other examples of the batch, \
             so with one the loss is 0 and nothing trains; use at least 2"
        );
        ensure!(data.len() >= 2, "{file} holds one example: SimCSE needs at least two (each is the other's negative)");
        if cfg.hard_negative_weight != 0.0 {
            bail!(
                "--hard-negative-weight weighs the hard negatives of a 3-column csv (sent0, sent1, hard_neg), and {file} has {} column{}",
                data.columns,
                if data.columns == 1 { "" } else { "s" }
            );
        }
    }
    if let Some((row, id)) = data.examples.iter().enumerate().find_map(|(i, e)| e.iter().flat_map(|t| &t.ids).find(|&&id| id as usize >= vocab).map(|&id| (i, id))) {
        bail!(
            "{file}: example {} has token id {id}, past the model's vocabulary of {vocab} (vocab_size in config.json): \
             the tokenizer does not belong to this model",
            row + 1
        );
    }
    Ok(())
}

/// Runs `f`, turning a libtorch failure (tch panics with the C++ error) into an error.
fn catch_torch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    use std::sync::{Arc, Mutex};
    let message: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = message.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into());
        *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|_| message.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default())
}

/// The C++ error's own first line out of tch's panic message (`...: Torch("message\nException
/// raised from ... frame #0 ...")`), without the stack of frames.
fn torch_message(panic: &str) -> String {
    let inner = panic.split_once("Torch(\"").map_or(panic, |(_, rest)| rest);
    let first = inner.split("\\n").next().unwrap_or(inner);
    first.split('\n').next().unwrap_or(first).trim_end_matches("\")").replace("\\'", "'").replace("\\\"", "\"")
}

impl Run {
    fn prepare(cfg: TrainConfig, resume: Option<&Path>, check_resumed: &dyn Fn(&TrainConfig) -> anyhow::Result<()>) -> anyhow::Result<Run> {
        let resumed = match resume {
            Some(path) => {
                let (run_path, checkpoint) = resolve_resume(path)?;
                let state_path = checkpoint.join(TRAINER_STATE_FILE);
                let text = std::fs::read_to_string(&state_path).with_context(|| format!("reading {}", state_path.display()))?;
                let state: RunState = serde_json::from_str(&text).with_context(|| format!("{}: not a training state", state_path.display()))?;
                check_resumed(&state.config)?;
                let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
                ensure!(
                    cfg.output_dir.as_os_str().is_empty() || same(&cfg.output_dir, &run_path),
                    "--output-dir {} is not the run being resumed, {}",
                    cfg.output_dir.display(),
                    run_path.display()
                );
                Some((run_path, checkpoint, state))
            }
            None => None,
        };
        // A resumed run keeps its configuration; the device, the terminal and what to keep may differ.
        let cfg = match &resumed {
            Some((run_path, _, s)) => TrainConfig {
                device: cfg.device,
                quiet: cfg.quiet,
                stop_after: cfg.stop_after,
                save_total_limit: cfg.save_total_limit.or(s.config.save_total_limit),
                output_dir: run_path.clone(),
                ..s.config.clone()
            },
            None => cfg,
        };
        validate(&cfg)?;
        let device = select(cfg.device.unwrap_or(simcse_core::DeviceChoice::Auto))?;
        tch::manual_seed(cfg.seed as i64);

        let needs = if cfg.random_config.is_some() { Needs::Config } else { Needs::Weights };
        let source = ModelDir::open(&cfg.model_dir, needs)?;
        let source_simcse = source.simcse()?;
        let probe: ModelConfig = source.config()?;
        let tokenizer = SentenceTokenizer::for_pooler(&cfg.model_dir, &probe, cfg.max_seq_length, cfg.pooler)?;
        let config_json: serde_json::Value = match &cfg.random_config {
            Some(name) => super::presets::config(name, tokenizer.vocab_size())?,
            None => simcse_core::model_dir::read_json(&cfg.model_dir.join("config.json"), "a Hugging Face config")?,
        };
        let config: ModelConfig = serde_json::from_value(config_json.clone()).context("the model's config.json")?;
        let arch = Architecture::from_config(&config, &cfg.model_dir.join("config.json"))?;
        arch.check_pooler(cfg.pooler).map_err(anyhow::Error::msg)?;
        if cfg.do_mlm {
            crate::simcse_model::check_mlm(&arch)?;
        }
        arch.check_length(cfg.max_seq_length, "--max-seq-length").map_err(anyhow::Error::msg)?;

        let train_file_sha256 = Some(sha256_of(&cfg.train_file)?);
        let data = TrainData::load(&cfg.train_file, &tokenizer)?;
        validate_data(&cfg, &data, config.vocab_size.unwrap_or(usize::MAX))?;
        if let Some((_, _, s)) = &resumed {
            ensure!(
                s.examples == data.len() && s.train_file_sha256.as_ref().is_none_or(|h| Some(h) == train_file_sha256.as_ref()),
                "{} changed since the run started ({} examples then, {} now): a resumed run must see the same data",
                cfg.train_file.display(),
                s.examples,
                data.len()
            );
        }
        let steps_per_epoch = data.len().div_ceil(cfg.batch_size) as i64;
        let total_steps = cfg.max_steps.unwrap_or_else(|| (steps_per_epoch as f64 * cfg.num_train_epochs).ceil() as i64).max(1);
        let dev_task = |name: &str, dirs: DataDirs| -> anyhow::Result<_> {
            let task = sts::data::spec(name).expect("a known task").load(&dirs, Mode::Dev)?;
            // SentEval's batcher does not truncate: the model's full length.
            Ok(Some((task, SentenceTokenizer::for_pooler(&cfg.model_dir, &probe, arch.max_tokens().min(512), cfg.pooler)?)))
        };
        let evaluation = match (cfg.eval_steps, &cfg.zh_dir, &cfg.senteval_dir) {
            (Some(_), Some(zh), _) => dev_task("STS-B-zh", DataDirs { zh: Some(zh.clone()), ..Default::default() })?,
            (Some(_), None, Some(dir)) => dev_task("STSBenchmark", DataDirs { senteval: Some(dir.clone()), ..Default::default() })?,
            (Some(_), None, None) => bail!(
                "evaluation during training needs --senteval-dir (STS-B dev) or --zh-dir (Chinese STS-B valid); \
                 pass --evaluation-strategy no to train without it"
            ),
            (None, _, _) => None,
        };

        // Everything is checked: only now is the output directory touched.
        let mut run_dir = match &resumed {
            Some((run_path, checkpoint, s)) => {
                let mut run_dir = RunDir::open(run_path)?;
                run_dir.truncate_metrics(s.step)?;
                run_dir.record.status = "running".into();
                run_dir.save()?;
                errln!("resuming {} from {} (step {})", run_path.display(), checkpoint.display(), s.step);
                run_dir
            }
            None => RunDir::create(&cfg.output_dir, cfg.overwrite_output_dir, total_steps)?,
        };
        run_dir.will_write(METRICS_FILE)?;
        let metrics_path = run_dir.path.join(METRICS_FILE);
        let metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .with_context(|| format!("opening {}", metrics_path.display()))?;

        let mut model = SimcseModel::new(device, &arch, cfg.pooler, cfg.mlp_only_train, cfg.do_mlm)?;
        if cfg.random_config.is_some() {
            model.init_random();
        } else {
            model.load(&source.weights())?;
        }
        model.set_precision(half_of(cfg.precision));
        let optimizer = AdamW::new(model.named_variables(), cfg.weight_decay);
        let checkpoint = resumed.as_ref().map(|(_, c, _)| c.clone());
        let state = match resumed {
            Some((_, _, s)) => s,
            None => RunState {
                step: 0,
                total_steps,
                epoch: 0,
                batch_in_epoch: 0,
                optimizer_steps: 0,
                scaler: LossScaler::new(cfg.precision == Precision::F16),
                best: None,
                examples: data.len(),
                train_file_sha256,
                config: cfg.clone(),
            },
        };
        let fail_at_step = std::env::var("SIMCSE_FAIL_AT_STEP").ok().and_then(|s| s.parse().ok());
        let saved_step = checkpoint.as_ref().map(|_| state.step);
        let mut run = Run {
            cfg, device, model, optimizer, state, data, tokenizer, config_json, source_simcse, evaluation, run_dir, metrics, saved_step, fail_at_step,
        };
        if let Some(dir) = checkpoint {
            run.load_state(&dir)?;
        }
        Ok(run)
    }

    fn load_state(&mut self, dir: &Path) -> anyhow::Result<()> {
        let mut params = read_safetensors(&dir.join(simcse_core::model_dir::WEIGHTS_FILE))?;
        if self.cfg.do_mlm {
            params.extend(read_safetensors(&dir.join(MLM_HEAD_FILE))?);
        }
        tch::no_grad(|| -> anyhow::Result<()> {
            for (name, mut var) in self.model.vs.variables() {
                let saved = params.get(&name).with_context(|| format!("the checkpoint {} lacks {name}", dir.display()))?;
                var.copy_(&saved.to_device(self.device));
            }
            Ok(())
        })?;
        let moments = read_safetensors(&dir.join(OPTIMIZER_FILE))?;
        self.optimizer.load_state(&moments, self.state.optimizer_steps)
    }

    fn saved_model<'a>(&'a self, tensors: &'a [(String, Tensor)], simcse: &'a SimcseConfig) -> SavedModel<'a> {
        SavedModel { tensors, config: &self.config_json, tokenizer_dir: &self.cfg.model_dir, simcse }
    }

    /// `OUT/checkpoint-STEP`: the model, the optimizer's moments, the MLM head, the state.
    fn save_checkpoint(&mut self) -> anyhow::Result<PathBuf> {
        let step = self.state.step;
        let tensors = self.model.model_tensors();
        let simcse = self.simcse_config(None);
        let mut files = model_files(&self.saved_model(&tensors, &simcse), false)?;
        files.push((OPTIMIZER_FILE.into(), safetensors_bytes(&self.optimizer.state())?));
        if self.cfg.do_mlm {
            let head: Vec<(String, Tensor)> = self.model.named_variables().into_iter().filter(|(n, _)| n.starts_with("lm_head.")).collect();
            files.push((MLM_HEAD_FILE.into(), safetensors_bytes(&head)?));
        }
        let state = RunState { optimizer_steps: self.optimizer.steps, ..self.state.clone() };
        files.push((TRAINER_STATE_FILE.into(), serde_json::to_vec_pretty(&state)?));
        let dir = self.run_dir.checkpoint_path(step);
        self.run_dir.will_write(&dir.file_name().unwrap().to_string_lossy())?;
        write_dir(&dir, &files)?;
        self.run_dir.record.step = step;
        self.run_dir.add_checkpoint(step, self.cfg.save_total_limit)?;
        self.saved_step = Some(step);
        Ok(dir)
    }

    /// The model into the output directory itself (`kind`: best or last).
    fn save_model(&mut self, kind: &str, dev: Option<f64>) -> anyhow::Result<()> {
        let tensors = self.model.model_tensors();
        let simcse = self.simcse_config(dev);
        let files = model_files(&self.saved_model(&tensors, &simcse), true)?;
        for (name, _) in &files {
            self.run_dir.will_write(name)?;
        }
        write_files(&self.run_dir.path, &files)?;
        self.run_dir.record.model = Some(ModelRecord { step: self.state.step, kind: kind.into(), stsb_dev_spearman: dev });
        self.run_dir.save()
    }

    fn inputs(&self, batch: &Batch) -> Inputs {
        let shape = [batch.size as i64, batch.seq as i64];
        let tensor = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(self.device);
        Inputs { ids: tensor(&batch.input_ids), mask: tensor(&batch.attention_mask), token_types: tensor(&batch.token_type_ids) }
    }

    /// One optimization step on the examples `indices`; returns the (unscaled) loss, on device.
    /// A libtorch failure is an error naming the batch.
    fn step(&mut self, indices: &[usize]) -> anyhow::Result<Tensor> {
        let tokens = self.data.batch_tokens(indices);
        let batch = Batch::pad(&tokens, self.tokenizer.pad_id);
        let step = self.state.step + 1;
        let result = catch_torch(|| -> anyhow::Result<Tensor> {
            let inputs = self.inputs(&batch);
            if self.fail_at_step == Some(step) {
                // The test hook: a real libtorch error, raised in C++ inside the step.
                let _ = Tensor::zeros([2], (Kind::Float, self.device)).view([3]);
            }
            let mlm = if self.cfg.do_mlm { Some(self.mlm_loss(&inputs)?) } else { None };
            let lr = linear_schedule(self.cfg.learning_rate, self.state.step, self.state.total_steps, self.cfg.warmup_steps);
            let settings = StepSettings { temp: self.cfg.temp, hard_negative_weight: self.cfg.hard_negative_weight, max_grad_norm: self.cfg.max_grad_norm };
            Ok(optimization_step(&self.model, &mut self.optimizer, &mut self.state.scaler, &inputs, self.data.views(), mlm, lr, &settings))
        });
        result.map_err(|why| self.failure(&format!(
            "step {step} failed on a batch of {} examples ({} sentences each, {} tokens at most)",
            indices.len(),
            self.data.views(),
            batch.seq
        ), &why))?
    }

    /// The error a failed step or evaluation ends the run with: what failed, libtorch's
    /// message, and what is kept.
    fn failure(&mut self, what: &str, why: &str) -> anyhow::Error {
        self.run_dir.record.status = "failed".into();
        let _ = self.run_dir.save();
        let kept = match self.saved_step {
            Some(step) => format!(
                "the last checkpoint, {} (step {step}), is intact: `--resume {}` continues from it",
                self.run_dir.checkpoint_path(step).display(),
                self.run_dir.path.display()
            ),
            None => format!("nothing was saved yet (the first checkpoint comes at step {})", self.cfg.save_steps),
        };
        let hint = if why.contains("out of memory") || why.contains("can't allocate") {
            format!("; a smaller --per-device-train-batch-size (this run's is {}) or --max-seq-length needs less memory", self.cfg.batch_size)
        } else {
            String::new()
        };
        anyhow::anyhow!("{what}: {}\n{kept}{hint}", torch_message(why))
    }

    /// SimCSE's auxiliary loss: a separate forward pass over masked inputs, times `mlm_weight`.
    fn mlm_loss(&self, inputs: &Inputs) -> anyhow::Result<Tensor> {
        let special = Tensor::from_slice(&self.tokenizer.special_ids()).to_device(self.device);
        let maskable = inputs.mask.to_kind(Kind::Bool).logical_and(&Tensor::isin(&inputs.ids, &special, false, false).logical_not());
        let mask_id = self.tokenizer.token_id("[MASK]").or_else(|| self.tokenizer.token_id("<mask>")).context("--do-mlm: the tokenizer has no mask token")?;
        let (masked, labels) = mask_tokens(&inputs.ids, &maskable, self.cfg.mlm_probability, mask_id, self.tokenizer.vocab_size() as i64);
        let masked = Inputs { ids: masked, mask: inputs.mask.shallow_clone(), token_types: inputs.token_types.shallow_clone() };
        let logits = self.model.mlm_logits(&masked).context("--do-mlm without an MLM head")?;
        Ok(mlm_loss(&logits, &labels) * self.cfg.mlm_weight)
    }

    /// STS-B dev Spearman x 100 of the model as it is now (dropout off).
    fn evaluate(&mut self) -> anyhow::Result<Option<f64>> {
        let result = catch_torch(|| self.evaluate_inner());
        result.map_err(|why| self.failure(&format!("evaluating on STS-B dev at step {}", self.state.step), &why))?
    }

    fn evaluate_inner(&self) -> anyhow::Result<Option<f64>> {
        let Some((task, tokenizer)) = &self.evaluation else { return Ok(None) };
        let dim = self.model.arch.hidden();
        let mut embed_batch = |batch: &Batch| -> Result<Vec<f32>, InputError> {
            let z = tch::no_grad(|| self.model.embed(&self.inputs(batch), false)).to_device(Device::Cpu);
            Vec::<f32>::try_from(z.flatten(0, -1)).map_err(|e| InputError::Invalid(e.to_string()))
        };
        let mut embed = |sentences: &[&str]| -> Result<Embeddings, InputError> {
            let tokens = tokenizer.tokenize(sentences)?;
            embed_in_length_order(&tokens, tokenizer.pad_id, 128, dim, &mut embed_batch, &mut |_, _| {})
        };
        let score = sts::evaluate(std::slice::from_ref(task), &mut embed)?.remove(0);
        Ok(Some(score.reported()))
    }

    fn simcse_config(&self, dev: Option<f64>) -> SimcseConfig {
        let mut provenance = self.source_simcse.as_ref().map(|s| s.provenance.clone()).unwrap_or_default();
        provenance.push(json!({
            "command": "train",
            "tool": concat!("simcse-rs ", env!("CARGO_PKG_VERSION")),
            "step": self.state.step,
            "stsb_dev_spearman": dev,
            "config": self.cfg,
        }));
        SimcseConfig {
            pooler: self.model.inference_pooler(),
            max_seq_length: self.source_simcse.as_ref().map_or(simcse_core::model_dir::DEFAULT_MAX_SEQ_LENGTH, |s| s.max_seq_length),
            normalize: self.source_simcse.as_ref().is_some_and(|s| s.normalize),
            prefix: self.source_simcse.as_ref().and_then(|s| s.prefix.clone()),
            provenance,
        }
    }

    fn log(&mut self, record: serde_json::Value) -> anyhow::Result<()> {
        writeln!(self.metrics, "{record}").context("writing metrics.jsonl")
    }

    /// Why the run should stop now, if it should.
    fn stop_requested(&self, step: i64) -> Option<Stop> {
        if let Some(signal) = signals::interrupted() {
            Some(Stop::Interrupted(signal))
        } else if simcse_core::stdout::closed() {
            Some(Stop::StdoutClosed)
        } else if self.cfg.stop_after == Some(step) {
            Some(Stop::Paused)
        } else {
            None
        }
    }

    fn execute(&mut self) -> anyhow::Result<TrainReport> {
        let started = Instant::now();
        let total = self.state.total_steps;
        signals::stop_gracefully(
            "saving state; press Ctrl-C again to abandon it",
            "abandoned; the checkpoints saved before are intact",
        );
        let mut bar = Progress::items("training", total as u64, self.cfg.quiet);
        bar.println(&format!(
            "training {} examples ({} sentences each) for {total} steps of {} on {:?}, {:?}",
            self.data.len(),
            self.data.views(),
            self.cfg.batch_size,
            self.device,
            self.cfg.precision
        ));
        let initial_dev = if self.state.step == 0 { self.evaluate()? } else { None };
        if let Some(dev) = initial_dev {
            bar.println(&format!("step 0: {} Spearman {dev:.2}", self.cfg.dev_set()));
            self.log(json!({ "step": 0, "eval_stsb_spearman": dev }))?;
        }
        let (mut window_loss, mut window_steps, mut window_start) = (Tensor::from(0.0f32).to_device(self.device), 0i64, Instant::now());
        let mut peak_gpu = 0u64;
        let steps_per_epoch = self.data.len().div_ceil(self.cfg.batch_size);
        let mut stop = self.stop_requested(self.state.step).filter(|s| *s != Stop::Paused);
        while self.state.step < total && stop.is_none() {
            let order = epoch_order(self.data.len(), self.cfg.seed, self.state.epoch);
            let batches: Vec<&[usize]> = order.chunks(self.cfg.batch_size).collect();
            while self.state.batch_in_epoch < batches.len() && self.state.step < total {
                // Dropout and MLM masking draw from a generator seeded by the step, so that a
                // resumed run draws what the uninterrupted one would have.
                tch::manual_seed(self.cfg.seed as i64 * 1_000_003 + self.state.step);
                let loss = self.step(batches[self.state.batch_in_epoch])?;
                window_loss = window_loss + loss;
                window_steps += 1;
                self.state.step += 1;
                self.state.batch_in_epoch += 1;
                bar.set(self.state.step as u64, total as u64);
                let step = self.state.step;
                if step % self.cfg.logging_steps == 0 || step == total {
                    peak_gpu = peak_gpu.max(gpu_memory_bytes().unwrap_or(0));
                    let loss = window_loss.double_value(&[]) / window_steps as f64;
                    let it_per_s = window_steps as f64 / window_start.elapsed().as_secs_f64();
                    let lr = linear_schedule(self.cfg.learning_rate, step, total, self.cfg.warmup_steps);
                    let epoch = step as f64 / steps_per_epoch as f64;
                    let gib = |b: u64| (b as f64 / (1u64 << 30) as f64 * 1000.0).round() / 1000.0;
                    let record = json!({
                        "step": step, "epoch": epoch, "loss": loss, "learning_rate": lr, "loss_scale": self.state.scaler.scale,
                        "it_per_s": it_per_s, "peak_gpu_memory_gib": (peak_gpu > 0).then(|| gib(peak_gpu)),
                        "peak_rss_gib": peak_rss_bytes().map(gib),
                    });
                    let memory = if peak_gpu > 0 { format!("GPU {:.2} GiB", gib(peak_gpu)) } else { format!("RSS {:.2} GiB", gib(peak_rss_bytes().unwrap_or(0))) };
                    bar.println(&format!(
                        "step {step}/{total}  loss {loss:.4}  lr {lr:.3e}  scale {}  {it_per_s:.2} it/s  {memory}",
                        self.state.scaler.scale
                    ));
                    bar.message(format!("training (loss {loss:.3})"));
                    self.log(record)?;
                    window_loss = Tensor::from(0.0f32).to_device(self.device);
                    window_steps = 0;
                    window_start = Instant::now();
                }
                if self.cfg.eval_steps.is_some_and(|every| step % every == 0 || step == total) {
                    if let Some(dev) = self.evaluate()? {
                        let better = self.state.best.is_none_or(|(best, _)| dev > best);
                        if better {
                            self.state.best = Some((dev, step));
                            self.save_model("best", Some(dev))?;
                        }
                        let saved = if better { " (best so far, saved)" } else { "" };
                        bar.println(&format!("step {step}: {} Spearman {dev:.2}{saved}", self.cfg.dev_set()));
                        self.log(json!({ "step": step, "eval_stsb_spearman": dev, "best": better }))?;
                    }
                }
                if step % self.cfg.save_steps == 0 || step == total {
                    self.save_checkpoint()?;
                }
                if step % self.cfg.logging_steps == 0 {
                    // Evaluation and saving are not training: leave them out of the next it/s.
                    window_start = Instant::now();
                }
                stop = self.stop_requested(step);
                if stop.is_some() {
                    break;
                }
            }
            if self.state.batch_in_epoch >= batches.len() {
                self.state.epoch += 1;
                self.state.batch_in_epoch = 0;
            }
        }
        bar.finish();
        if self.saved_step != Some(self.state.step) {
            self.save_checkpoint()?;
        }
        let stop = stop.unwrap_or(Stop::Finished);
        if stop == Stop::Finished && self.evaluation.is_none() {
            self.save_model("last", None)?;
        }
        self.run_dir.record.status = match stop {
            Stop::Finished => "finished",
            Stop::Interrupted(_) | Stop::StdoutClosed => "interrupted",
            Stop::Paused => "paused",
        }
        .into();
        self.run_dir.record.step = self.state.step;
        self.run_dir.save()?;
        Ok(TrainReport {
            dev_set: self.cfg.dev_set(),
            steps: self.state.step,
            initial_dev,
            best: self.state.best,
            model_dir: self.run_dir.record.model.as_ref().map(|_| self.run_dir.path.clone()),
            checkpoint: self.saved_step.map(|s| self.run_dir.checkpoint_path(s)),
            seconds: started.elapsed().as_secs_f64(),
            stop,
            output_dir: self.run_dir.path.clone(),
        })
    }
}
