//! A training run's output directory, laid out as SimCSE's `train.py` (under the Hugging Face
//! Trainer) leaves it:
//!
//! ```text
//! OUT/                  the model directory: the best model on STS-B dev when evaluating, else
//!                       the last (config.json, model.safetensors, pytorch_model.bin, simcse.json,
//!                       tokenizer files)
//! OUT/checkpoint-STEP/  a resumable state: a model directory, plus optimizer.safetensors,
//!                       mlm_head.safetensors (with --do-mlm) and trainer_state.json
//! OUT/metrics.jsonl     a JSON line per logging step and per evaluation
//! OUT/training_run.json what this run wrote and where it stands (status, step, model, checkpoints)
//! ```
//!
//! Nothing the run did not write is ever removed or replaced: a non-empty directory that is
//! not a run of ours is refused (with `--overwrite-output-dir`, the run writes beside its
//! files as long as no name collides), and replacing an earlier run removes only what that
//! run's `training_run.json` lists, and the graph `simcse export` made of its model.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use simcse_core::atomic;
use simcse_core::model_dir::{model_dir_entries, RUN_FILE};
use std::path::{Path, PathBuf};

pub const CHECKPOINT_PREFIX: &str = "checkpoint-";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";

/// `training_run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub tool: String,
    /// running, finished, interrupted, paused, failed
    pub status: String,
    pub step: i64,
    pub total_steps: i64,
    /// What the model in the directory itself is, once there is one.
    pub model: Option<ModelRecord>,
    /// The checkpoints kept, oldest first.
    pub checkpoints: Vec<String>,
    /// Every name this run created in the directory: what `--overwrite-output-dir` removes.
    pub written: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRecord {
    pub step: i64,
    /// "best" (on STS-B dev) or "last"
    pub kind: String,
    pub stsb_dev_spearman: Option<f64>,
}

pub struct RunDir {
    pub path: PathBuf,
    pub record: RunRecord,
}

/// The names a run may create at the top of its output directory.
fn is_run_entry(name: &str) -> bool {
    name == RUN_FILE || name == METRICS_FILE || checkpoint_step(name).is_some() || model_dir_entries().any(|n| n == name)
}

/// `checkpoint-STEP` -> STEP.
pub fn checkpoint_step(name: &str) -> Option<i64> {
    name.strip_prefix(CHECKPOINT_PREFIX)?.parse().ok()
}

fn entries(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

impl RunDir {
    /// The output directory of a new run: created (only its last level), or an empty one, or
    /// with `overwrite` an earlier run's (whose files are removed first) or one whose names do
    /// not collide with the run's.
    pub fn create(path: &Path, overwrite: bool, total_steps: i64) -> anyhow::Result<RunDir> {
        atomic::create_dir(path)?;
        let existing = entries(path)?;
        if !existing.is_empty() {
            let previous = path.join(RUN_FILE);
            let earlier = if previous.is_file() { Some(read_record(path)?) } else { None };
            match &earlier {
                Some(record) if !overwrite => bail!(
                    "{} holds an earlier training run ({} at step {}): `--resume {}` continues it, \
                     --overwrite-output-dir replaces it (removing only what that run wrote)",
                    path.display(),
                    record.status,
                    record.step,
                    path.display()
                ),
                None if !overwrite => bail!(
                    "{} is not empty ({}) and is not a training run's output directory: give a new or empty directory, \
                     or --overwrite-output-dir to write beside those files (none of them is removed or replaced)",
                    path.display(),
                    preview(&existing)
                ),
                _ => {}
            }
            // Checked before anything is removed: a refused run leaves the earlier one whole.
            let exported = earlier.is_some().then(|| exported_graph(path)).flatten();
            let ours = |name: &String| {
                earlier.as_ref().is_some_and(|r| r.written.contains(name)) || exported.as_ref().is_some_and(|e| e.contains(name))
            };
            let collisions: Vec<&String> = existing.iter().filter(|n| is_run_entry(n) && !ours(n)).collect();
            if !collisions.is_empty() {
                bail!(
                    "{} already holds {}, which this run would replace; --overwrite-output-dir never replaces files \
                     simcse did not write: move them or choose another directory",
                    path.display(),
                    collisions.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
            if let Some(record) = &earlier {
                remove_written(path, record)?;
                remove_plain_files(path, exported.iter().flatten())?;
            }
        }
        let record = RunRecord {
            tool: concat!("simcse-rs ", env!("CARGO_PKG_VERSION")).into(),
            status: "running".into(),
            step: 0,
            total_steps,
            model: None,
            checkpoints: Vec::new(),
            written: vec![RUN_FILE.into()],
        };
        let run = RunDir { path: path.to_path_buf(), record };
        run.save()?;
        Ok(run)
    }

    /// The run directory `dir` of a run being resumed.
    pub fn open(dir: &Path) -> anyhow::Result<RunDir> {
        Ok(RunDir { path: dir.to_path_buf(), record: read_record(dir)? })
    }

    pub fn save(&self) -> anyhow::Result<()> {
        atomic::write_bytes(&self.path.join(RUN_FILE), &serde_json::to_vec_pretty(&self.record)?)?;
        Ok(())
    }

    /// Records that the run creates `name` (before it does).
    pub fn will_write(&mut self, name: &str) -> anyhow::Result<()> {
        if !self.record.written.iter().any(|n| n == name) {
            self.record.written.push(name.to_string());
            self.save()?;
        }
        Ok(())
    }

    pub fn checkpoint_path(&self, step: i64) -> PathBuf {
        self.path.join(format!("{CHECKPOINT_PREFIX}{step}"))
    }

    /// Records a checkpoint written and removes the oldest past `limit` (the Trainer's
    /// `save_total_limit`).
    pub fn add_checkpoint(&mut self, step: i64, limit: Option<usize>) -> anyhow::Result<()> {
        let name = format!("{CHECKPOINT_PREFIX}{step}");
        self.record.checkpoints.retain(|c| c != &name);
        self.record.checkpoints.push(name);
        self.record.checkpoints.sort_by_key(|c| checkpoint_step(c).unwrap_or(0));
        let excess = limit.map_or(0, |limit| self.record.checkpoints.len().saturating_sub(limit.max(1)));
        let removed: Vec<String> = self.record.checkpoints.drain(..excess).collect();
        self.save()?;
        for name in removed {
            let dir = self.path.join(&name);
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {} (past --save-total-limit)", dir.display()))?;
        }
        Ok(())
    }

    /// The newest checkpoint on disk (a swap a crash cut short restored first).
    pub fn latest_checkpoint(&self) -> anyhow::Result<Option<PathBuf>> {
        let mut steps: Vec<i64> = entries(&self.path)?
            .iter()
            .filter_map(|name| {
                let name = name.strip_prefix('.').and_then(|n| n.split(".old-").next()).unwrap_or(name);
                checkpoint_step(name)
            })
            .collect();
        steps.sort_unstable();
        steps.dedup();
        for step in steps.into_iter().rev() {
            let path = self.checkpoint_path(step);
            if let Some(aside) = atomic::recover_swap(&path) {
                errln!("note: {} was restored from {}, where an interrupted save had left it", path.display(), aside.display());
            }
            if path.join(TRAINER_STATE_FILE).is_file() {
                return Ok(Some(path));
            }
        }
        Ok(None)
    }

    /// Keeps the metrics of steps up to `step`: a resumed run logs the later ones again.
    pub fn truncate_metrics(&self, step: i64) -> anyhow::Result<()> {
        let path = self.path.join(METRICS_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
        let kept: String = text
            .lines()
            .filter(|line| {
                let record: Option<serde_json::Value> = serde_json::from_str(line).ok();
                record.and_then(|r| r["step"].as_i64()).is_some_and(|s| s <= step)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        atomic::write_bytes(&path, kept.as_bytes())?;
        Ok(())
    }
}

fn read_record(dir: &Path) -> anyhow::Result<RunRecord> {
    let path = dir.join(RUN_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a training run record", path.display()))
}

/// Removes what an earlier run recorded writing, nothing else.
fn remove_written(dir: &Path, record: &RunRecord) -> anyhow::Result<()> {
    for name in &record.written {
        let path = dir.join(name);
        // Only plain names the trainer writes: a record edited to name `../x` removes nothing.
        if !is_run_entry(name) || name.contains('/') {
            continue;
        }
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {} of the earlier run", path.display())),
        }
    }
    Ok(())
}

/// The names of the ONNX graph (and its external data) `simcse export` made in the directory of
/// an earlier run, where its metadata says so: a graph of the model the new run replaces. Any
/// other model.onnx is the user's, and collides.
fn exported_graph(dir: &Path) -> Option<Vec<String>> {
    let graph = simcse_core::model_dir::ONNX_FILE;
    simcse_core::EncoderMetadata::read(&dir.join(graph)).ok()?;
    Some(vec![graph.to_string(), format!("{graph}.data")])
}

fn remove_plain_files<'a>(dir: &Path, names: impl Iterator<Item = &'a String>) -> anyhow::Result<()> {
    for name in names {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {} of the earlier run", path.display())),
        }
    }
    Ok(())
}

fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
    if names.len() > shown.len() {
        format!("{}, and {} more", shown.join(", "), names.len() - shown.len())
    } else {
        shown.join(", ")
    }
}
