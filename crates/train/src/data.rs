//! Training data as SimCSE's train.py reads it: a `.txt` file (a sentence a line: unsupervised,
//! each sentence is its own positive through dropout) or a `.csv` with a header row and one,
//! two (a positive pair) or three columns (pair and hard negative). Sentences are tokenized
//! once, truncated to `--max-seq-length`; batches are padded to their longest sentence.

use anyhow::{bail, ensure, Context};
use simcse_core::tokenize::{SentenceTokenizer, Tokens};
use std::path::Path;

/// Every example has `columns` sentences: 1 (unsupervised), 2 (pair), 3 (pair + hard negative).
pub struct TrainData {
    pub columns: usize,
    pub examples: Vec<Vec<Tokens>>,
}

/// The sentences of the file, `columns` a row.
pub fn read_sentences(path: &Path) -> anyhow::Result<(usize, Vec<Vec<String>>)> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match extension {
        "txt" => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let mut rows = Vec::new();
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                let line = std::str::from_utf8(line).with_context(|| format!("{}:{}: not UTF-8", path.display(), i + 1))?;
                let sentence = line.trim_end_matches('\r');
                if !sentence.trim().is_empty() {
                    rows.push(vec![sentence.to_string()]);
                }
            }
            Ok((1, rows))
        }
        "csv" => {
            let mut reader = csv::ReaderBuilder::new().has_headers(true).from_path(path).with_context(|| format!("reading {}", path.display()))?;
            let columns = reader.headers().with_context(|| format!("{}: no header row", path.display()))?.len();
            ensure!((1..=3).contains(&columns), "{}: {columns} columns; SimCSE reads 1 (sentences), 2 (pairs) or 3 (pairs with a hard negative)", path.display());
            let mut rows = Vec::new();
            for record in reader.records() {
                let record = record.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let line = record.position().map_or(0, |p| p.line());
                if let Some(empty) = record.iter().position(|field| field.trim().is_empty()) {
                    bail!("{}:{line}: column {} is empty", path.display(), empty + 1);
                }
                rows.push(record.iter().map(String::from).collect());
            }
            Ok((columns, rows))
        }
        other => bail!("{}: unknown training file type `.{other}`; use .txt (a sentence a line) or .csv (header row)", path.display()),
    }
}

impl TrainData {
    pub fn load(path: &Path, tokenizer: &SentenceTokenizer) -> anyhow::Result<TrainData> {
        let (columns, rows) = read_sentences(path)?;
        ensure!(!rows.is_empty(), "{}: no training sentences", path.display());
        let flat: Vec<&str> = rows.iter().flatten().map(String::as_str).collect();
        let mut tokens = tokenizer.tokenize(&flat)?.into_iter();
        let examples = rows.iter().map(|row| tokens.by_ref().take(row.len()).collect()).collect();
        Ok(TrainData { columns, examples })
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Sentences a forward pass encodes per example: unsupervised sentences go twice.
    pub fn views(&self) -> usize {
        self.columns.max(2)
    }

    /// The sentences of a batch, example-major: example 0's views, then example 1's, ...
    pub fn batch_tokens(&self, indices: &[usize]) -> Vec<&Tokens> {
        let views = self.views();
        indices
            .iter()
            .flat_map(|&i| {
                let example = &self.examples[i];
                (0..views).map(move |v| &example[v.min(example.len() - 1)])
            })
            .collect()
    }
}

/// SplitMix64's finalizer: nearby inputs (seeds 42 and 43) give unrelated outputs.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Example indices in a shuffled order that depends only on `seed` and `epoch`, so that a
/// resumed run sees the same order (xorshift + Fisher-Yates).
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut next = simcse_core::rng::xorshift64(splitmix(seed ^ splitmix(epoch)));
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_order_is_a_permutation_fixed_by_seed_and_epoch() {
        let a = epoch_order(100, 42, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(100, 42, 0));
        assert_ne!(a, epoch_order(100, 42, 1));
        assert_ne!(a, epoch_order(100, 43, 0));
    }
}
