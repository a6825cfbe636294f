//! The training loop of SimCSE's train.py under the Hugging Face Trainer: shuffled batches,
//! the contrastive (and MLM) loss, AdamW with a linear schedule and gradient clipping, fp16
//! loss scaling, STS-B dev evaluation every `eval_steps` with the best model kept, logging,
//! and a training state saved every `save_steps` (and on Ctrl-C) that `--resume` continues
//! from to the same result.
// `a = a + b` rather than `a += b`: on tch tensors `+=` is in place, which autograd may not allow.
#![allow(clippy::assign_op_pattern)]

use super::checkpoint::{read_safetensors, save_model_dir, write_dir_atomically, write_safetensors};
use super::data::{epoch_order, TrainData};
use super::device::{gpu_memory_bytes, peak_rss_bytes, select, DeviceArg};
use super::half_linear::Half;
use super::loss::{contrastive_loss, mlm_loss};
use super::mlm::mask_tokens;
use super::model::Precision;
use super::optim::{clip_grad_norm, linear_schedule, AdamW, LossScaler};
use super::simcse_model::{Inputs, SimcseModel};
use crate::progress::{self, Progress};
use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};
use serde_json::json;
use simcse_converters::architecture::Architecture;
use simcse_converters::{ModelConfig, ModelDir, Pooler, SimcseConfig};
use simcse_runtime::batch::Batch;
use simcse_runtime::encoder::embed_in_length_order;
use simcse_runtime::sts::{self, DataDirs, Mode, Task};
use simcse_runtime::tokenize::SentenceTokenizer;
use simcse_runtime::{Embeddings, RuntimeError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionArg {
    Fp32,
    /// The hand-written fp16 linear with dynamic loss scaling
    Fp16,
    /// The same linear in bf16 (no loss scaling needed)
    Bf16,
}

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
    pub precision: PrecisionArg,
    /// None: no evaluation during training.
    pub eval_steps: Option<i64>,
    pub senteval_dir: Option<PathBuf>,
    pub logging_steps: i64,
    pub save_steps: i64,
    #[serde(skip)]
    pub device: Option<DeviceArg>,
    #[serde(skip)]
    pub quiet: bool,
    /// Stop after this many steps as Ctrl-C would, the state saved (a time-limited job's pause).
    #[serde(skip)]
    pub stop_after: Option<i64>,
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
    pub config: TrainConfig,
}

/// What a run ends with.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub steps: i64,
    pub initial_dev: Option<f64>,
    pub best: Option<(f64, i64)>,
    pub best_dir: Option<PathBuf>,
    /// The last model (not written when the run stopped early).
    pub final_dir: Option<PathBuf>,
    pub seconds: f64,
    pub interrupted: bool,
    pub output_dir: PathBuf,
}

pub const STATE_DIR: &str = "state";
pub const BEST_DIR: &str = "best";
pub const FINAL_DIR: &str = "final";
pub const METRICS_FILE: &str = "metrics.jsonl";

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
    metrics: std::fs::File,
}

pub fn half_of(precision: PrecisionArg) -> Precision {
    match precision {
        PrecisionArg::Fp32 => Precision::F32,
        PrecisionArg::Fp16 => Precision::Half(Half::F16),
        PrecisionArg::Bf16 => Precision::Half(Half::BF16),
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
        let _ = clip_grad_norm(&grads, settings.max_grad_norm);
        optimizer.step(lr);
    }
    optimizer.zero_grad();
    scaler.update(finite);
    loss.detach()
}

/// Trains from scratch, or from `resume` (a run's `state` directory).
pub fn train(cfg: TrainConfig, resume: Option<&Path>) -> anyhow::Result<TrainReport> {
    let mut run = Run::prepare(cfg, resume)?;
    run.execute()
}

impl Run {
    fn prepare(cfg: TrainConfig, resume: Option<&Path>) -> anyhow::Result<Run> {
        let saved: Option<RunState> = match resume {
            Some(dir) => {
                let path = dir.join("state.json");
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}: is it a run's state directory?", path.display()))?;
                Some(serde_json::from_str(&text).with_context(|| format!("{}: not a training state", path.display()))?)
            }
            None => None,
        };
        // A resumed run keeps its configuration; the device and the terminal may differ.
        let cfg = match &saved {
            Some(s) => {
                let pairs = [
                    ("model", &cfg.model_dir, &s.config.model_dir),
                    ("training file", &cfg.train_file, &s.config.train_file),
                    ("output directory", &cfg.output_dir, &s.config.output_dir),
                ];
                for (what, given, saved) in pairs {
                    ensure!(
                        given.as_os_str().is_empty() || given == saved,
                        "the run being resumed used the {what} {}, not {}; a resumed run keeps its configuration",
                        saved.display(),
                        given.display()
                    );
                }
                TrainConfig { device: cfg.device, quiet: cfg.quiet, stop_after: cfg.stop_after, ..s.config.clone() }
            }
            None => cfg,
        };
        ensure!(cfg.batch_size > 0, "--per-device-train-batch-size must be at least 1");
        ensure!(cfg.temp > 0.0, "--temp must be positive");
        ensure!((0.0..1.0).contains(&cfg.mlm_probability), "--mlm-probability must be in [0, 1)");
        let device = select(cfg.device.unwrap_or(DeviceArg::Auto))?;
        tch::manual_seed(cfg.seed as i64);

        let source = ModelDir::new(&cfg.model_dir);
        let source_simcse = source.simcse()?;
        let probe: ModelConfig = source.config()?;
        let tokenizer = SentenceTokenizer::load(&cfg.model_dir, &probe, cfg.max_seq_length)?;
        let config_json: serde_json::Value = match &cfg.random_config {
            Some(name) => super::presets::config(name, tokenizer.vocab_size())?,
            None => simcse_converters::model_dir::read_json(&cfg.model_dir.join("config.json"), "a Hugging Face config")?,
        };
        let config: ModelConfig = serde_json::from_value(config_json.clone()).context("the model's config.json")?;
        let arch = Architecture::from_config(&config, &cfg.model_dir.join("config.json"))?;
        let data = TrainData::load(&cfg.train_file, &tokenizer)?;
        if let Some(s) = &saved {
            ensure!(
                s.examples == data.len(),
                "{} now holds {} examples, but the run started with {}: it changed since",
                cfg.train_file.display(),
                data.len(),
                s.examples
            );
        }

        let mut model = SimcseModel::new(device, &arch, cfg.pooler, cfg.mlp_only_train, cfg.do_mlm)?;
        if cfg.random_config.is_some() {
            model.init_random();
        } else {
            model.load(&source.weights())?;
        }
        model.set_precision(half_of(cfg.precision));
        let optimizer = AdamW::new(model.named_variables(), cfg.weight_decay);

        let steps_per_epoch = data.len().div_ceil(cfg.batch_size) as i64;
        let total_steps = cfg.max_steps.unwrap_or_else(|| (steps_per_epoch as f64 * cfg.num_train_epochs).ceil() as i64).max(1);
        let evaluation = match (cfg.eval_steps, &cfg.senteval_dir) {
            (Some(_), Some(dir)) => {
                let dirs = DataDirs { senteval: Some(dir.clone()), ..Default::default() };
                let task = sts::data::spec("STSBenchmark").expect("a known task").load(&dirs, Mode::Dev)?;
                // SentEval's batcher does not truncate: the model's full length.
                let max = config.max_position_embeddings.unwrap_or(512).saturating_sub(if matches!(&arch, Architecture::Bert(s) if s.roberta) { 2 } else { 0 });
                Some((task, SentenceTokenizer::load(&cfg.model_dir, &probe, max.min(512))?))
            }
            (Some(_), None) => bail!("evaluation during training needs --senteval-dir (STS-B dev); pass --evaluation-strategy no to train without it"),
            (None, _) => None,
        };
        std::fs::create_dir_all(&cfg.output_dir).with_context(|| format!("creating {}", cfg.output_dir.display()))?;
        let metrics_path = cfg.output_dir.join(METRICS_FILE);
        let metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(saved.is_some())
            .write(true)
            .truncate(saved.is_none())
            .open(&metrics_path)
            .with_context(|| format!("opening {}", metrics_path.display()))?;
        let state = saved.unwrap_or(RunState {
            step: 0,
            total_steps,
            epoch: 0,
            batch_in_epoch: 0,
            optimizer_steps: 0,
            scaler: LossScaler::new(cfg.precision == PrecisionArg::Fp16),
            best: None,
            examples: data.len(),
            config: cfg.clone(),
        });
        let mut run = Run { cfg, device, model, optimizer, state, data, tokenizer, config_json, source_simcse, evaluation, metrics };
        if let Some(dir) = resume {
            run.load_state(dir)?;
        }
        Ok(run)
    }

    fn load_state(&mut self, dir: &Path) -> anyhow::Result<()> {
        let params = read_safetensors(&dir.join("params.safetensors"))?;
        tch::no_grad(|| -> anyhow::Result<()> {
            for (name, mut var) in self.model.vs.variables() {
                let saved = params.get(&name).with_context(|| format!("the saved state lacks {name}"))?;
                var.copy_(&saved.to_device(self.device));
            }
            Ok(())
        })?;
        let moments = read_safetensors(&dir.join("optimizer.safetensors"))?;
        self.optimizer.load_state(&moments, self.state.optimizer_steps)
    }

    fn save_state(&self) -> anyhow::Result<()> {
        let state = RunState { optimizer_steps: self.optimizer.steps, ..self.state.clone() };
        write_dir_atomically(&self.cfg.output_dir.join(STATE_DIR), |dir| {
            write_safetensors(&dir.join("params.safetensors"), self.optimizer.params())?;
            write_safetensors(&dir.join("optimizer.safetensors"), &self.optimizer.state())?;
            std::fs::write(dir.join("state.json"), serde_json::to_vec_pretty(&state)?)?;
            Ok(())
        })
    }

    fn inputs(&self, batch: &Batch) -> Inputs {
        let shape = [batch.size as i64, batch.seq as i64];
        let tensor = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(self.device);
        Inputs { ids: tensor(&batch.input_ids), mask: tensor(&batch.attention_mask), token_types: tensor(&batch.token_type_ids) }
    }

    /// One optimization step on the examples `indices`; returns the (unscaled) loss, on device.
    fn step(&mut self, indices: &[usize]) -> anyhow::Result<Tensor> {
        let tokens = self.data.batch_tokens(indices);
        let batch = Batch::pad(&tokens, self.tokenizer.pad_id);
        let inputs = self.inputs(&batch);
        let mlm = if self.cfg.do_mlm { Some(self.mlm_loss(&inputs)?) } else { None };
        let lr = linear_schedule(self.cfg.learning_rate, self.state.step, self.state.total_steps, self.cfg.warmup_steps);
        let settings = StepSettings { temp: self.cfg.temp, hard_negative_weight: self.cfg.hard_negative_weight, max_grad_norm: self.cfg.max_grad_norm };
        Ok(optimization_step(&self.model, &mut self.optimizer, &mut self.state.scaler, &inputs, self.data.views(), mlm, lr, &settings))
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
    fn evaluate(&self) -> anyhow::Result<Option<f64>> {
        let Some((task, tokenizer)) = &self.evaluation else { return Ok(None) };
        let dim = self.model.arch.hidden();
        let mut embed_batch = |batch: &Batch| -> Result<Vec<f32>, RuntimeError> {
            let z = tch::no_grad(|| self.model.embed(&self.inputs(batch), false)).to_device(Device::Cpu);
            Vec::<f32>::try_from(z.flatten(0, -1)).map_err(|e| RuntimeError::Input(e.to_string()))
        };
        let mut embed = |sentences: &[&str]| -> Result<Embeddings, RuntimeError> {
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
            max_seq_length: self.source_simcse.as_ref().map_or(simcse_converters::model_dir::DEFAULT_MAX_SEQ_LENGTH, |s| s.max_seq_length),
            normalize: self.source_simcse.as_ref().is_some_and(|s| s.normalize),
            provenance,
        }
    }

    fn save_model(&self, name: &str, dev: Option<f64>) -> anyhow::Result<PathBuf> {
        let dir = self.cfg.output_dir.join(name);
        save_model_dir(&dir, &self.model.model_tensors(), &self.config_json, &self.cfg.model_dir, &self.simcse_config(dev))?;
        Ok(dir)
    }

    fn log(&mut self, record: serde_json::Value) -> anyhow::Result<()> {
        writeln!(self.metrics, "{record}").context("writing metrics.jsonl")
    }

    fn execute(&mut self) -> anyhow::Result<TrainReport> {
        let started = Instant::now();
        let total = self.state.total_steps;
        progress::catch_interrupt();
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
            bar.println(&format!("step 0: STS-B dev Spearman {dev:.2}"));
            self.log(json!({ "step": 0, "eval_stsb_spearman": dev }))?;
        }
        let (mut window_loss, mut window_steps, mut window_start) = (Tensor::from(0.0f32).to_device(self.device), 0i64, Instant::now());
        let mut peak_gpu = 0u64;
        let steps_per_epoch = self.data.len().div_ceil(self.cfg.batch_size);
        let mut interrupted = false;
        while self.state.step < total && !interrupted {
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
                            self.save_model(BEST_DIR, Some(dev))?;
                        }
                        bar.println(&format!("step {step}: STS-B dev Spearman {dev:.2}{}", if better { " (best so far, saved)" } else { "" }));
                        self.log(json!({ "step": step, "eval_stsb_spearman": dev, "best": better }))?;
                    }
                }
                if step % self.cfg.save_steps == 0 || step == total {
                    self.save_state()?;
                }
                if step % self.cfg.logging_steps == 0 {
                    // Evaluation and saving are not training: leave them out of the next it/s.
                    window_start = Instant::now();
                }
                if progress::interrupted() || self.cfg.stop_after == Some(step) {
                    interrupted = true;
                    break;
                }
            }
            if self.state.batch_in_epoch >= batches.len() {
                self.state.epoch += 1;
                self.state.batch_in_epoch = 0;
            }
        }
        bar.finish();
        self.save_state()?;
        let final_dir = if interrupted { None } else { Some(self.save_model(FINAL_DIR, None)?) };
        Ok(TrainReport {
            steps: self.state.step,
            initial_dev,
            best: self.state.best,
            best_dir: self.state.best.map(|_| self.cfg.output_dir.join(BEST_DIR)),
            final_dir,
            seconds: started.elapsed().as_secs_f64(),
            interrupted,
            output_dir: self.cfg.output_dir.clone(),
        })
    }
}
