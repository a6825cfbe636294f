//! Scoring tasks as SentEval does: cosine similarity of each pair's embeddings, Pearson and
//! Spearman per subset, and over a task's subsets `all` (one correlation over every pair),
//! `mean` and `wmean` (weighted by the subsets' sizes).

use super::data::Task;
use super::stats::{pearson, spearman};
use crate::{Embeddings, InputError};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize)]
pub struct SubsetScore {
    pub name: String,
    pub n: usize,
    pub pearson: f64,
    pub spearman: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Aggregate {
    pub all: f64,
    pub mean: f64,
    pub wmean: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskScore {
    pub task: String,
    pub subsets: Vec<SubsetScore>,
    pub pearson: Aggregate,
    pub spearman: Aggregate,
}

impl TaskScore {
    /// What SimCSE's table shows: Spearman x 100 over all of the task's pairs.
    pub fn reported(&self) -> f64 {
        self.spearman.all * 100.0
    }
}

/// Anything that turns sentences into embeddings: the runtime's `Encoder`, or the trainer's
/// libtorch model during training.
pub type Embed<'a, E> = dyn FnMut(&[&str]) -> Result<Embeddings, E> + 'a;

/// Encodes every distinct sentence of the tasks once, then scores each task.
pub fn evaluate<E: From<InputError>>(tasks: &[Task], embed: &mut Embed<E>) -> Result<Vec<TaskScore>, E> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut unique: Vec<&str> = Vec::new();
    for pair in tasks.iter().flat_map(|t| &t.subsets).flat_map(|s| &s.pairs) {
        for sentence in [pair.a.as_str(), pair.b.as_str()] {
            index.entry(sentence).or_insert_with(|| {
                unique.push(sentence);
                unique.len() - 1
            });
        }
    }
    let embeddings = embed(&unique)?;
    check_finite(&embeddings, &unique)?;
    tasks.iter().map(|task| score_task(task, &embeddings, &index).map_err(E::from)).collect()
}

/// NaN, infinite or all-zero embeddings would be scored as garbage (SentEval silently maps
/// NaN to 0); they are an error here, naming the sentence.
fn check_finite(embeddings: &Embeddings, sentences: &[&str]) -> Result<(), InputError> {
    for (i, sentence) in sentences.iter().enumerate() {
        let row = embeddings.row(i);
        let problem = if row.iter().any(|v| !v.is_finite()) {
            "is not finite (NaN or infinity)"
        } else if row.iter().all(|&v| v == 0.0) {
            "is all zeros, so it has no direction to compare"
        } else {
            continue;
        };
        return Err(InputError::Invalid(format!("the embedding of {sentence:?} {problem}: the model's output is broken")));
    }
    Ok(())
}

/// Cosine similarity computed in f64, then rounded to f32 as SentEval's numpy cosine of f32
/// embeddings is: the rounding keeps pairs of identical sentences exactly tied (in f64 alone,
/// `x / (sqrt(x) * sqrt(x))` is 1 +- 1e-16 depending on x, which would rank them by noise).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    (dot / (na.sqrt() * nb.sqrt())) as f32 as f64
}

fn score_task(task: &Task, embeddings: &Embeddings, index: &HashMap<&str, usize>) -> Result<TaskScore, InputError> {
    let (mut all_system, mut all_gold) = (Vec::new(), Vec::new());
    let mut subsets = Vec::new();
    for subset in &task.subsets {
        let system: Vec<f64> = subset
            .pairs
            .iter()
            .map(|p| cosine(embeddings.row(index[p.a.as_str()]), embeddings.row(index[p.b.as_str()])))
            .collect();
        let gold: Vec<f64> = subset.pairs.iter().map(|p| p.score).collect();
        if let [first, rest @ ..] = &system[..] {
            if rest.iter().all(|s| s == first) {
                return Err(InputError::Invalid(format!(
                    "{} {}: all {} pairs got the same cosine similarity ({first}): the encoder gives every sentence \
                     the same direction, so no correlation exists",
                    task.name,
                    subset.name,
                    system.len()
                )));
            }
        }
        subsets.push(SubsetScore {
            name: subset.name.clone(),
            n: system.len(),
            pearson: pearson(&system, &gold),
            spearman: spearman(&system, &gold),
        });
        all_system.extend(system);
        all_gold.extend(gold);
    }
    let aggregate = |all: f64, per: fn(&SubsetScore) -> f64| {
        let total: usize = subsets.iter().map(|s| s.n).sum();
        Aggregate {
            all,
            mean: subsets.iter().map(per).sum::<f64>() / subsets.len() as f64,
            wmean: subsets.iter().map(|s| per(s) * s.n as f64).sum::<f64>() / total as f64,
        }
    };
    Ok(TaskScore {
        task: task.name.clone(),
        pearson: aggregate(pearson(&all_system, &all_gold), |s| s.pearson),
        spearman: aggregate(spearman(&all_system, &all_gold), |s| s.spearman),
        subsets,
    })
}
