//! From a request's inputs to their embeddings: the limits first (too many inputs, too much in
//! flight), tokenization on the worker pool, then the queue. Every route that embeds comes
//! through here.

use crate::batcher::Queue;
use crate::error::{ApiError, ErrorKind};
use crate::metrics::{Metrics, Stages};
use crate::ServeOptions;
use simcse_core::tokenize::{SentenceTokenizer, Tokens, TruncationDirection};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// One input of a request: text, or token ids of this model's vocabulary.
#[derive(Debug, Clone)]
pub enum Input {
    Text(String),
    Ids(Vec<u32>),
}

/// How an input longer than `max_input_length` is handled.
#[derive(Debug, Clone, Copy)]
pub struct Truncation {
    pub truncate: bool,
    pub direction: TruncationDirection,
}

/// The tokenizer three ways: counting (no truncation) and truncating from either end.
#[derive(Clone)]
pub struct Tokenizers {
    pub counting: SentenceTokenizer,
    right: SentenceTokenizer,
    left: SentenceTokenizer,
    pub max_input_length: usize,
    vocab_size: usize,
}

impl Tokenizers {
    pub fn new(tokenizer: &SentenceTokenizer) -> Result<Tokenizers, simcse_core::InputError> {
        let max = tokenizer.max_length;
        Ok(Tokenizers {
            counting: tokenizer.truncating(None, TruncationDirection::Right)?,
            right: tokenizer.truncating(Some(max), TruncationDirection::Right)?,
            left: tokenizer.truncating(Some(max), TruncationDirection::Left)?,
            max_input_length: max,
            vocab_size: tokenizer.vocab_size(),
        })
    }

    fn tokens(&self, input: &Input, truncation: Truncation) -> Result<Tokens, ApiError> {
        let tokenizer_error = |e: simcse_core::InputError| ApiError::new(ErrorKind::Tokenizer, e.to_string());
        let tokens = match input {
            Input::Text(text) => self.counting.tokenize_one(text).map_err(tokenizer_error)?,
            Input::Ids(ids) => self.ids(ids)?,
        };
        let length = tokens.ids.len();
        if length == 0 {
            return Err(ApiError::validation("an input has no tokens (this tokenizer adds none to an empty string)").on("input"));
        }
        if length <= self.max_input_length {
            return Ok(tokens);
        }
        if !truncation.truncate {
            return Err(ApiError::validation(format!(
                "Input validation error: `inputs` must have less than {} tokens. Given: {length}",
                self.max_input_length
            ))
            .on("input"));
        }
        match input {
            Input::Text(text) => {
                let tokenizer = if truncation.direction == TruncationDirection::Left { &self.left } else { &self.right };
                tokenizer.tokenize_one(text).map_err(tokenizer_error)
            }
            Input::Ids(_) => {
                let keep = |v: &[i64]| match truncation.direction {
                    TruncationDirection::Left => v[v.len() - self.max_input_length..].to_vec(),
                    TruncationDirection::Right => v[..self.max_input_length].to_vec(),
                };
                Ok(Tokens { ids: keep(&tokens.ids), type_ids: keep(&tokens.type_ids) })
            }
        }
    }

    fn ids(&self, ids: &[u32]) -> Result<Tokens, ApiError> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(ApiError::validation(format!("token id {id} is not in the vocabulary ({} tokens)", self.vocab_size)).on("input"));
        }
        Ok(Tokens { ids: ids.iter().map(|&id| id as i64).collect(), type_ids: vec![0; ids.len()] })
    }
}

/// Everything the routes share.
pub struct AppState {
    pub options: ServeOptions,
    pub info: simcse_runtime::ModelInfo,
    pub backend: String,
    /// Shared by the tokenization workers: a copy per request would cost more than the work.
    pub tokenizers: Arc<Tokenizers>,
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    pub healthy: Arc<AtomicBool>,
    pub index: Option<Arc<simcse_runtime::search::SearchIndex>>,
    /// Inputs in flight: `--max-concurrent-requests` permits.
    in_flight: Arc<Semaphore>,
    /// Tokenization jobs running: `--tokenization-workers` permits.
    tokenizing: Arc<Semaphore>,
}

/// A request's embeddings, in input order, with its token count and timings.
pub struct Embeddings {
    pub rows: Vec<Vec<f32>>,
    pub tokens: usize,
    pub stages: Stages,
}

impl AppState {
    pub fn new(
        options: ServeOptions,
        info: simcse_runtime::ModelInfo,
        backend: String,
        tokenizers: Tokenizers,
        queue: Queue,
        metrics: Arc<Metrics>,
        healthy: Arc<AtomicBool>,
        index: Option<simcse_runtime::search::SearchIndex>,
    ) -> AppState {
        let in_flight = Arc::new(Semaphore::new(options.max_concurrent_requests));
        let tokenizing = Arc::new(Semaphore::new(options.tokenization_workers));
        AppState { options, info, backend, tokenizers: Arc::new(tokenizers), queue, metrics, healthy, index: index.map(Arc::new), in_flight, tokenizing }
    }

    pub fn default_truncation(&self, truncate: Option<bool>, direction: Option<TruncationDirection>) -> Truncation {
        Truncation { truncate: truncate.unwrap_or(self.options.auto_truncate), direction: direction.unwrap_or(TruncationDirection::Right) }
    }

    /// The embeddings of `inputs` as the graph gives them (normalized where it normalizes).
    pub async fn embed(&self, inputs: Vec<Input>, truncation: Truncation) -> Result<Embeddings, ApiError> {
        self.check_count(inputs.len())?;
        self.embed_counted(inputs, truncation).await
    }

    /// `embed` for inputs whose number the caller has checked.
    pub async fn embed_counted(&self, inputs: Vec<Input>, truncation: Truncation) -> Result<Embeddings, ApiError> {
        let _permits = self
            .in_flight
            .clone()
            .try_acquire_many_owned(inputs.len() as u32)
            .map_err(|_| ApiError::new(ErrorKind::Overloaded, "Model is overloaded"))?;
        let started = Instant::now();
        let tokens = self.tokenize(inputs, truncation).await?;
        let tokenization = started.elapsed();
        let count = tokens.iter().map(|t| t.ids.len()).sum();
        for t in &tokens {
            self.metrics.input_length(t.ids.len());
        }
        let answers = self.queue.submit_all(tokens);
        let mut stages = Stages { tokenization, ..Default::default() };
        let mut rows = Vec::with_capacity(answers.len());
        for answer in answers {
            let embedded = answer.await.map_err(|_| ApiError::new(ErrorKind::Backend, "the model's thread stopped"))??;
            stages.queue = stages.queue.max(embedded.queue);
            stages.inference = stages.inference.max(embedded.inference);
            rows.push(embedded.values);
        }
        Ok(Embeddings { rows, tokens: count, stages })
    }

    pub fn check_count(&self, inputs: usize) -> Result<(), ApiError> {
        if inputs == 0 {
            return Err(ApiError::new(ErrorKind::Empty, "`inputs` cannot be empty").on("input"));
        }
        let max = self.options.max_client_batch_size;
        if inputs > max {
            return Err(ApiError::validation(format!("batch size {inputs} > maximum allowed batch size {max}")).on("input"));
        }
        Ok(())
    }

    async fn tokenize(&self, inputs: Vec<Input>, truncation: Truncation) -> Result<Vec<Tokens>, ApiError> {
        let _worker = self.tokenizing.clone().acquire_owned().await.map_err(|_| ApiError::new(ErrorKind::Unhealthy, "shutting down"))?;
        let tokenizers = self.tokenizers.clone();
        tokio::task::spawn_blocking(move || inputs.iter().map(|input| tokenizers.tokens(input, truncation)).collect())
            .await
            .map_err(|e| ApiError::new(ErrorKind::Tokenizer, format!("tokenization failed: {e}")))?
    }

    /// Whether the model runs: at once where its last forward pass worked, else after a
    /// one-token forward pass through the queue.
    pub async fn health(&self) -> Result<(), ApiError> {
        if self.healthy.load(Ordering::SeqCst) {
            return Ok(());
        }
        let first = self.tokenizers.counting.tokenize_one("").ok().and_then(|t| t.ids.first().copied()).unwrap_or(0);
        let probe = Tokens { ids: vec![first], type_ids: vec![0] };
        match tokio::time::timeout(Duration::from_secs(30), self.queue.submit(probe)).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => Err(ApiError::new(ErrorKind::Unhealthy, format!("unhealthy: {}", e.message))),
            _ => Err(ApiError::new(ErrorKind::Unhealthy, "unhealthy: the model did not answer")),
        }
    }
}

/// `dimensions` (Matryoshka: the first `d` values) then `normalize`, as TEI does them.
pub fn finish(rows: &mut [Vec<f32>], dimensions: Option<usize>, normalize: bool, graph_normalizes: bool) {
    let truncated = match dimensions {
        Some(d) if d < rows.first().map_or(0, Vec::len) => {
            rows.iter_mut().for_each(|row| row.truncate(d));
            true
        }
        _ => false,
    };
    if normalize && (truncated || !graph_normalizes) {
        for row in rows {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}
