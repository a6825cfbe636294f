//! What `simcse serve` is started with, and the checks that refuse a server that could not work.

use crate::ServeError;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    /// 0: any free port (the one bound is logged).
    pub port: u16,
    /// What `/info` and OpenAI's `model` field call the model.
    pub model_id: String,
    /// The most tokens one forward pass holds, padding included.
    pub max_batch_tokens: usize,
    /// The most sentences one forward pass holds [default: no limit but the tokens].
    pub max_batch_requests: Option<usize>,
    /// The most inputs one request may carry.
    pub max_client_batch_size: usize,
    /// Truncate inputs that are too long instead of refusing them.
    pub auto_truncate: bool,
    /// Inputs in flight (queued, tokenizing or running) past which requests get 429.
    pub max_concurrent_requests: usize,
    /// The largest request body, in bytes (413 past it).
    pub payload_limit: usize,
    /// Where set, every route but `/health` and `/metrics` wants `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// How long in-flight requests get to finish after SIGTERM or SIGINT.
    pub shutdown_timeout: Duration,
    /// Threads that tokenize while the model runs.
    pub tokenization_workers: usize,
    /// One line per request (debug) or only the summaries (info).
    pub log_requests: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: 3000,
            model_id: "simcse".into(),
            max_batch_tokens: 16_384,
            max_batch_requests: None,
            max_client_batch_size: 32,
            auto_truncate: false,
            max_concurrent_requests: 512,
            payload_limit: 2_000_000,
            api_key: None,
            shutdown_timeout: Duration::from_secs(30),
            tokenization_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            log_requests: false,
        }
    }
}

/// Past these a number is a typo (or would have the server allocate for it up front).
const MAX_TOKENS: usize = 1 << 24;
const MAX_INPUTS: usize = 1 << 20;
const MAX_WORKERS: usize = 256;
const MAX_PAYLOAD: usize = 1 << 30;

impl ServeOptions {
    /// Checks the options against each other and against the model's `max_input_length`.
    pub fn check(&self, max_input_length: usize) -> Result<(), ServeError> {
        let bad = |why: String| Err(ServeError::Options(why));
        let in_range = |name: &str, value: usize, max: usize| -> Result<(), ServeError> {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(ServeError::Options(format!("--{name} {value} is out of range: 1 to {max}")))
            }
        };
        in_range("max-batch-tokens", self.max_batch_tokens, MAX_TOKENS)?;
        in_range("max-client-batch-size", self.max_client_batch_size, MAX_INPUTS)?;
        in_range("max-concurrent-requests", self.max_concurrent_requests, MAX_INPUTS)?;
        in_range("payload-limit", self.payload_limit, MAX_PAYLOAD)?;
        in_range("tokenization-workers", self.tokenization_workers, MAX_WORKERS)?;
        if let Some(requests) = self.max_batch_requests {
            in_range("max-batch-requests", requests, MAX_INPUTS)?;
        }
        if self.max_batch_tokens < max_input_length {
            return bad(format!(
                "--max-batch-tokens {} is less than the longest input ({max_input_length} tokens), which could never run; \
                 raise it or lower --max-input-length",
                self.max_batch_tokens
            ));
        }
        if self.max_client_batch_size > self.max_concurrent_requests {
            return bad(format!(
                "--max-client-batch-size {} is more than --max-concurrent-requests {}: such a request could never be taken",
                self.max_client_batch_size, self.max_concurrent_requests
            ));
        }
        if self.api_key.as_deref().is_some_and(|key| key.trim().is_empty()) {
            return bad("--api-key is empty; leave it out for a server without one".into());
        }
        Ok(())
    }
}
