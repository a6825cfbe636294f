//! Prometheus metrics under text-embeddings-inference's names and buckets, so its dashboards
//! work unchanged: request counts by outcome, duration histograms (seconds) for the request and
//! each of its stages, the sizes of the batches formed, and the queue's length.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

struct Histogram {
    bounds: Vec<f64>,
    state: Mutex<HistogramState>,
}

#[derive(Default)]
struct HistogramState {
    /// `counts[i]`: observations of at most `bounds[i]` (not cumulative; rendered cumulative).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: Vec<f64>) -> Histogram {
        let counts = vec![0; bounds.len()];
        Histogram { bounds, state: Mutex::new(HistogramState { counts, ..Default::default() }) }
    }

    fn observe(&self, value: f64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = self.bounds.iter().position(|&bound| value <= bound) {
            state.counts[bucket] += 1;
        }
        state.sum += value;
        state.count += 1;
    }

    fn render(&self, name: &str, out: &mut String) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&state.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", state.count);
        let _ = writeln!(out, "{name}_sum {}", state.sum);
        let _ = writeln!(out, "{name}_count {}", state.count);
    }
}

/// A counter per value of one label.
struct Counter {
    label: &'static str,
    values: Mutex<BTreeMap<String, u64>>,
}

impl Counter {
    fn new(label: &'static str) -> Counter {
        Counter { label, values: Mutex::new(BTreeMap::new()) }
    }

    fn add(&self, value: &str, n: u64) {
        *self.values.lock().unwrap_or_else(|p| p.into_inner()).entry(value.to_string()).or_default() += n;
    }

    fn render(&self, name: &str, out: &mut String) {
        let _ = writeln!(out, "# TYPE {name} counter");
        for (value, count) in self.values.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "{name}{{{}=\"{value}\"}} {count}", self.label);
        }
    }
}

pub struct Metrics {
    request_count: Counter,
    request_success: Counter,
    request_failure: Counter,
    request_duration: Histogram,
    tokenization_duration: Histogram,
    queue_duration: Histogram,
    inference_duration: Histogram,
    input_length: Histogram,
    batch_size: Histogram,
    batch_tokens: Histogram,
    queue_size: AtomicI64,
}

/// TEI's duration buckets: 35 steps of x1.5 from 15 µs.
fn duration_buckets() -> Vec<f64> {
    (1..=35).map(|i| 0.00001 * 1.5f64.powi(i)).collect()
}

fn powers_of_two(n: i32, at_most: f64) -> Vec<f64> {
    (0..n).map(|x| 2f64.powi(x)).filter(|&x| x <= at_most).collect()
}

/// Whether a request carried one input or a list (TEI's `method` label).
pub fn method(inputs: usize, was_list: bool) -> &'static str {
    if was_list && inputs != 1 {
        "batch"
    } else {
        "single"
    }
}

impl Metrics {
    pub fn new(max_input_length: usize) -> Metrics {
        Metrics {
            request_count: Counter::new("method"),
            request_success: Counter::new("method"),
            request_failure: Counter::new("err"),
            request_duration: Histogram::new(duration_buckets()),
            tokenization_duration: Histogram::new(duration_buckets()),
            queue_duration: Histogram::new(duration_buckets()),
            inference_duration: Histogram::new(duration_buckets()),
            input_length: Histogram::new(powers_of_two(20, max_input_length as f64)),
            batch_size: Histogram::new(powers_of_two(13, f64::INFINITY)),
            batch_tokens: Histogram::new(powers_of_two(21, f64::INFINITY)),
            queue_size: AtomicI64::new(0),
        }
    }

    pub fn request(&self, method: &str) {
        self.request_count.add(method, 1);
    }

    pub fn success(&self, method: &str, total: Duration, stages: &Stages) {
        self.request_success.add(method, 1);
        self.request_duration.observe(total.as_secs_f64());
        self.tokenization_duration.observe(stages.tokenization.as_secs_f64());
        self.queue_duration.observe(stages.queue.as_secs_f64());
        self.inference_duration.observe(stages.inference.as_secs_f64());
    }

    pub fn failure(&self, err: &str) {
        self.request_failure.add(err, 1);
    }

    pub fn input_length(&self, tokens: usize) {
        self.input_length.observe(tokens as f64);
    }

    pub fn batch(&self, size: usize, tokens: usize) {
        self.batch_size.observe(size as f64);
        self.batch_tokens.observe(tokens as f64);
    }

    pub fn queue_changed(&self, by: i64) {
        self.queue_size.fetch_add(by, Ordering::Relaxed);
    }

    /// `N requests answered, M refused or failed`, for the log.
    pub fn summary(&self) -> String {
        let total = |counter: &Counter| counter.values.lock().unwrap_or_else(|p| p.into_inner()).values().sum::<u64>();
        format!("{} requests answered, {} refused or failed", total(&self.request_success), total(&self.request_failure))
    }

    /// Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.request_count.render("te_request_count", &mut out);
        self.request_success.render("te_request_success", &mut out);
        self.request_failure.render("te_request_failure", &mut out);
        self.request_duration.render("te_request_duration", &mut out);
        self.tokenization_duration.render("te_request_tokenization_duration", &mut out);
        self.queue_duration.render("te_request_queue_duration", &mut out);
        self.inference_duration.render("te_request_inference_duration", &mut out);
        self.input_length.render("te_request_input_length", &mut out);
        self.batch_size.render("te_batch_next_size", &mut out);
        self.batch_tokens.render("te_batch_next_tokens", &mut out);
        let _ = writeln!(out, "# TYPE te_queue_size gauge\nte_queue_size {}", self.queue_size.load(Ordering::Relaxed).max(0));
        out
    }
}

/// Where a request's time went (the `x-*-time` headers): the slowest of its inputs for the
/// queue and the model, since they wait and run side by side.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stages {
    pub tokenization: Duration,
    pub queue: Duration,
    pub inference: Duration,
}
