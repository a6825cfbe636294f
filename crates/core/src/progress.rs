//! Progress of long work: a bar on a terminal, a plain line every few seconds in logs.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    quiet: bool,
    label: String,
    total: u64,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// Progress over `total` bytes. `quiet` shows nothing.
    pub fn bytes(label: &str, total: u64, quiet: bool) -> Progress {
        Progress::new(label, total, quiet, "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    }

    /// Progress over `total` items (sentences, steps).
    pub fn items(label: &str, total: u64, quiet: bool) -> Progress {
        Progress::new(label, total, quiet, "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
    }

    fn new(label: &str, total: u64, quiet: bool, template: &str) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
            bar.set_message(label.to_string());
            bar
        });
        let now = Instant::now();
        Progress { quiet, label: label.into(), total, bar, started: now, last_line: now }
    }

    pub fn set(&mut self, done: u64, total: u64) {
        self.total = total;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        } else if !self.quiet && self.last_line.elapsed() >= LOG_EVERY {
            self.last_line = Instant::now();
            let percent = if total == 0 { 100.0 } else { 100.0 * done as f64 / total as f64 };
            errln!("{}: {percent:.0}% ({:.0} s)", self.label, self.started.elapsed().as_secs_f64());
        }
    }

    /// A line of output that does not break the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => outln!("{line}"),
        }
    }

    /// A short status shown beside the bar.
    pub fn message(&self, text: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(text);
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
