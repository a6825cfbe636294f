//! The queue between the requests and the model. Tokenized inputs wait here; one thread owns the
//! encoder and, each time it is free, takes what waits (first come, first served) up to the token
//! budget, sorts it by length and runs it as forward passes of similar lengths, so a padded
//! backend wastes little. While it runs, the next batch gathers: no timer, no fixed batch size.

use crate::error::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use simcse_core::batch::Batch;
use simcse_core::tokenize::Tokens;
use simcse_runtime::Encoder;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One input's embedding and where its time went.
#[derive(Debug)]
pub struct Embedded {
    pub values: Vec<f32>,
    pub queue: Duration,
    pub inference: Duration,
}

struct Job {
    tokens: Tokens,
    queued: Instant,
    reply: oneshot::Sender<Result<Embedded, ApiError>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Padded tokens of one forward pass, and unpadded tokens of one batch.
    pub max_batch_tokens: usize,
    pub max_batch_requests: usize,
}

/// The handle requests submit through. Dropping the last one ends the model's thread once the
/// queue is empty.
#[derive(Clone)]
pub struct Queue {
    /// A request's inputs, sent as one message.
    jobs: mpsc::Sender<Vec<Job>>,
    metrics: Arc<Metrics>,
}

impl Queue {
    /// Starts the thread that owns `encoder`; `healthy` says whether its last forward pass worked.
    pub fn start(encoder: Encoder, limits: Limits, metrics: Arc<Metrics>, healthy: Arc<AtomicBool>) -> (Queue, std::thread::JoinHandle<()>) {
        let (jobs, waiting) = mpsc::channel();
        let worker = Worker { encoder, limits, metrics: metrics.clone(), healthy };
        let thread = std::thread::Builder::new()
            .name("simcse-model".into())
            .spawn(move || worker.run(waiting))
            .expect("starting the model's thread");
        (Queue { jobs, metrics }, thread)
    }

    /// Queues one input; the answer comes on the returned channel. Dropping the receiver (a
    /// client that went away) takes the input out of the queue unrun.
    pub fn submit(&self, tokens: Tokens) -> oneshot::Receiver<Result<Embedded, ApiError>> {
        self.submit_all(vec![tokens]).pop().expect("one answer per input")
    }

    /// Queues a request's inputs together, so the model's thread never sees part of them: the
    /// same request alone is always batched the same way, and gets the same bits back.
    pub fn submit_all(&self, inputs: Vec<Tokens>) -> Vec<oneshot::Receiver<Result<Embedded, ApiError>>> {
        let queued = Instant::now();
        let (jobs, answers): (Vec<Job>, Vec<_>) = inputs
            .into_iter()
            .map(|tokens| {
                let (reply, answer) = oneshot::channel();
                (Job { tokens, queued, reply }, answer)
            })
            .unzip();
        let count = jobs.len() as i64;
        self.metrics.queue_changed(count);
        if let Err(mpsc::SendError(jobs)) = self.jobs.send(jobs) {
            self.metrics.queue_changed(-count);
            for job in jobs {
                let _ = job.reply.send(Err(ApiError::new(ErrorKind::Unhealthy, "the model's thread has stopped")));
            }
        }
        answers
    }
}

struct Worker {
    encoder: Encoder,
    limits: Limits,
    metrics: Arc<Metrics>,
    healthy: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self, jobs: mpsc::Receiver<Vec<Job>>) {
        let mut waiting = VecDeque::new();
        loop {
            if waiting.is_empty() {
                match jobs.recv() {
                    Ok(request) => waiting.extend(request),
                    Err(_) => return,
                }
            }
            waiting.extend(jobs.try_iter().flatten());
            let batch = self.take_batch(&mut waiting);
            for forward in forwards(batch, self.limits.max_batch_tokens) {
                self.run_forward(forward);
            }
        }
    }

    /// From the front of the queue, the inputs whose clients still wait, up to the limits (at
    /// least one, which `--max-batch-tokens >= --max-input-length` lets through).
    fn take_batch(&self, waiting: &mut VecDeque<Job>) -> Vec<Job> {
        let (mut batch, mut tokens) = (Vec::new(), 0);
        while let Some(job) = waiting.front() {
            if job.reply.is_closed() {
                waiting.pop_front();
                self.metrics.queue_changed(-1);
                continue;
            }
            let length = job.tokens.ids.len();
            let full = batch.len() >= self.limits.max_batch_requests || tokens + length > self.limits.max_batch_tokens;
            if full && !batch.is_empty() {
                break;
            }
            tokens += length;
            batch.push(waiting.pop_front().expect("a front"));
            self.metrics.queue_changed(-1);
        }
        batch
    }

    fn run_forward(&mut self, jobs: Vec<Job>) {
        let members: Vec<&Tokens> = jobs.iter().map(|job| &job.tokens).collect();
        let batch = Batch::pad(&members, self.encoder.tokenizer.pad_id);
        self.metrics.batch(batch.size, batch.tokens());
        let started = Instant::now();
        // A panic in a backend must fail this batch, not leave every later request waiting.
        let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.encoder.embed_batch(&batch)))
            .unwrap_or_else(|panic| Err(simcse_runtime::RuntimeError::Input(format!("the backend panicked: {}", panic_message(&panic)))));
        let inference = started.elapsed();
        match output {
            Ok(values) => {
                self.healthy.store(true, Ordering::SeqCst);
                let dim = values.len() / jobs.len();
                for (row, job) in jobs.into_iter().enumerate() {
                    let values = values[row * dim..(row + 1) * dim].to_vec();
                    let _ = job.reply.send(Ok(Embedded { values, queue: started - job.queued, inference }));
                }
            }
            Err(e) => {
                self.healthy.store(false, Ordering::SeqCst);
                crate::log::error(&format!("the model failed on a batch of {} ({} tokens): {e}", batch.size, batch.tokens()));
                for job in jobs {
                    let _ = job.reply.send(Err(ApiError::new(ErrorKind::Backend, format!("the model failed: {e}"))));
                }
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_else(|| "no message".into())
}

/// A batch as forward passes: longest first, each of at most `max_tokens` padded tokens and of
/// inputs at least half as long as its longest, so no input is padded to more than twice its
/// length (where a forward pass is more than one input).
fn forwards(mut batch: Vec<Job>, max_tokens: usize) -> Vec<Vec<Job>> {
    batch.sort_by_key(|job| std::cmp::Reverse(job.tokens.ids.len()));
    let mut passes: Vec<Vec<Job>> = Vec::new();
    let mut longest = 0;
    for job in batch {
        let length = job.tokens.ids.len().max(1);
        match passes.last_mut() {
            Some(pass) if (pass.len() + 1) * longest <= max_tokens && length * 2 >= longest => pass.push(job),
            _ => {
                longest = length;
                passes.push(vec![job]);
            }
        }
    }
    passes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(length: usize) -> Job {
        let (reply, _) = oneshot::channel();
        Job { tokens: Tokens { ids: vec![1; length], type_ids: vec![0; length] }, queued: Instant::now(), reply }
    }

    fn lengths(passes: &[Vec<Job>]) -> Vec<Vec<usize>> {
        passes.iter().map(|pass| pass.iter().map(|job| job.tokens.ids.len()).collect()).collect()
    }

    #[test]
    fn forward_passes_group_similar_lengths_within_the_budget() {
        let batch = [10, 40, 12, 38, 21, 5, 39].iter().map(|&n| job(n)).collect();
        assert_eq!(lengths(&forwards(batch, 100)), vec![vec![40, 39], vec![38, 21], vec![12, 10], vec![5]]);
        let batch = [8, 8, 8, 8].iter().map(|&n| job(n)).collect();
        assert_eq!(lengths(&forwards(batch, 1000)), vec![vec![8, 8, 8, 8]]);
    }
}
