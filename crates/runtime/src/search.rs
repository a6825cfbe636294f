//! Semantic search over a corpus of sentences: exact (normalized embeddings, blocked matrix
//! products on all cores) by default, or approximate with an HNSW graph (`hnsw_rs`) for large
//! corpora. An index is saved as its embeddings (safetensors) and its sentences, so that a
//! corpus is encoded once.

use crate::{Embeddings, RuntimeError};
use hnsw_rs::hnsw::Hnsw;
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;

pub const EMBEDDINGS_FILE: &str = "embeddings.safetensors";
pub const SENTENCES_FILE: &str = "sentences.jsonl";

/// 1 - cosine for unit vectors. anndists' `DistDot` asserts 1 - dot >= 0, which rounding
/// breaks for a vector against itself (a panic inside the library); this clamps instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCosineDistance;

impl anndists::dist::Distance<f32> for UnitCosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// A dot product the compiler vectorizes: eight independent partial sums (a single running
/// sum is a dependency chain that strict floating point keeps scalar).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `top_k` and `threshold` as SimCSE's tool takes them; an error names what makes no sense.
pub fn check_search(top_k: usize, threshold: f32) -> Result<(), RuntimeError> {
    if top_k == 0 {
        return Err(RuntimeError::Input("--top-k 0 asks for no hits; give at least 1".into()));
    }
    if !(-1.0..=1.0).contains(&threshold) {
        return Err(RuntimeError::Input(format!(
            "--threshold {threshold} is not a cosine similarity: it must lie in [-1, 1] (SimCSE's default is 0.6)"
        )));
    }
    Ok(())
}

/// One result: the row of a sentence in the index and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub index: usize,
    pub score: f32,
}

/// HNSW parameters: links per node, and the candidate lists of construction and search.
#[derive(Debug, Clone, Copy)]
pub struct HnswParams {
    pub max_connections: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams { max_connections: 32, ef_construction: 200, ef_search: 128 }
    }
}

pub struct SearchIndex {
    pub dim: usize,
    pub sentences: Vec<String>,
    /// Where each sentence came from: its line in the corpus file, counted from 0 (blank
    /// lines are not indexed, so rows and lines may differ). A hit's `index` is a row.
    pub lines: Vec<usize>,
    /// Row-major, each row of unit length.
    embeddings: Vec<f32>,
    approximate: Option<(Hnsw<'static, f32, UnitCosineDistance>, HnswParams)>,
}

/// Rows of unit length; a NaN or all-zero embedding is an error naming the sentence.
fn normalized(embeddings: &Embeddings, sentences: &[String]) -> Result<Vec<f32>, RuntimeError> {
    let mut values = embeddings.values.clone();
    for (i, row) in values.chunks_mut(embeddings.dim).enumerate() {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            let what = if norm == 0.0 { "all zeros" } else { "not finite" };
            return Err(RuntimeError::Input(format!("the embedding of {:?} is {what}", sentences.get(i).map_or("", |s| s.as_str()))));
        }
        row.iter_mut().for_each(|v| *v /= norm);
    }
    Ok(values)
}

impl SearchIndex {
    pub fn new(dim: usize) -> SearchIndex {
        SearchIndex { dim, sentences: Vec::new(), lines: Vec::new(), embeddings: Vec::new(), approximate: None }
    }

    pub fn len(&self) -> usize {
        self.sentences.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sentences.is_empty()
    }

    /// Adds sentences with their embeddings (normalized here), numbered on from the last line;
    /// an approximate index grows too.
    pub fn add(&mut self, sentences: Vec<String>, embeddings: &Embeddings) -> Result<(), RuntimeError> {
        let first = self.lines.last().map_or(0, |l| l + 1);
        let lines = (first..first + sentences.len()).collect();
        self.add_lines(sentences, lines, embeddings)
    }

    /// Adds sentences that sit at `lines` of their corpus file.
    pub fn add_lines(&mut self, sentences: Vec<String>, lines: Vec<usize>, embeddings: &Embeddings) -> Result<(), RuntimeError> {
        if lines.len() != sentences.len() {
            return Err(RuntimeError::Input(format!("{} line numbers for {} sentences", lines.len(), sentences.len())));
        }
        if embeddings.dim != self.dim || embeddings.rows != sentences.len() {
            return Err(RuntimeError::Input(format!(
                "{} embeddings of {} dimensions for {} sentences, into an index of {} dimensions",
                embeddings.rows,
                embeddings.dim,
                sentences.len(),
                self.dim
            )));
        }
        let rows = normalized(embeddings, &sentences)?;
        let start = self.len();
        if let Some((hnsw, _)) = &mut self.approximate {
            hnsw.set_searching_mode(false);
            let items: Vec<(&[f32], usize)> = rows.chunks(self.dim).enumerate().map(|(i, r)| (r, start + i)).collect();
            hnsw.parallel_insert_slice(&items);
            hnsw.set_searching_mode(true);
        }
        self.embeddings.extend(rows);
        self.sentences.extend(sentences);
        self.lines.extend(lines);
        Ok(())
    }

    /// Builds (or rebuilds) the approximate HNSW index over what the index holds.
    pub fn build_approximate(&mut self, params: HnswParams) {
        let layers = 16;
        let mut hnsw = Hnsw::new(params.max_connections, self.len().max(1), layers, params.ef_construction, UnitCosineDistance);
        let items: Vec<(&[f32], usize)> = self.embeddings.chunks(self.dim).enumerate().map(|(i, r)| (r, i)).collect();
        hnsw.parallel_insert_slice(&items);
        hnsw.set_searching_mode(true);
        self.approximate = Some((hnsw, params));
    }

    /// Changes the HNSW search breadth (no effect on exact search).
    pub fn set_ef_search(&mut self, ef: usize) {
        if let Some((_, params)) = &mut self.approximate {
            params.ef_search = ef;
        }
    }

    pub fn is_approximate(&self) -> bool {
        self.approximate.is_some()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }

    /// For each query, up to `top_k` hits of similarity >= `threshold`, best first
    /// (SimCSE's `search`). Queries are normalized here; the approximate index is used where built.
    pub fn search(&self, queries: &Embeddings, top_k: usize, threshold: f32) -> Result<Vec<Vec<Hit>>, RuntimeError> {
        let names: Vec<String> = (0..queries.rows).map(|i| format!("query {}", i + 1)).collect();
        check_search(top_k, threshold)?;
        if queries.dim != self.dim {
            return Err(RuntimeError::Input(format!("queries of {} dimensions, an index of {}", queries.dim, self.dim)));
        }
        let queries = normalized(queries, &names)?;
        // No more hits than sentences: the heaps are sized by it.
        let top_k = top_k.min(self.len());
        let hits = match &self.approximate {
            Some((hnsw, params)) => queries
                .par_chunks(self.dim)
                .map(|q| {
                    hnsw.search(q, top_k, params.ef_search.max(top_k))
                        .into_iter()
                        .map(|n| Hit { index: n.d_id, score: 1.0 - n.distance })
                        .collect()
                })
                .collect(),
            None => exact_top_k(&queries, &self.embeddings, self.dim, top_k),
        };
        Ok(hits.into_iter().map(|h: Vec<Hit>| h.into_iter().filter(|hit| hit.score >= threshold).collect()).collect())
    }

    /// Writes the embeddings, line numbers and sentences into `dir` (created if its parent
    /// exists; each file replaced whole).
    pub fn save(&self, dir: &Path, metadata: &[(&str, String)]) -> Result<(), RuntimeError> {
        simcse_core::atomic::create_dir(dir)?;
        let data: &[u8] = bytemuck_f32(&self.embeddings);
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![self.len(), self.dim], data)
            .map_err(|e| RuntimeError::Input(e.to_string()))?;
        let line_bytes: Vec<u8> = self.lines.iter().flat_map(|&l| (l as i64).to_le_bytes()).collect();
        let lines = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![self.len()], &line_bytes)
            .map_err(|e| RuntimeError::Input(e.to_string()))?;
        let mut meta: std::collections::HashMap<String, String> =
            metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        meta.insert("normalized".into(), "true".into());
        let bytes = safetensors::serialize([("embeddings", view), ("lines", lines)], Some(meta))
            .map_err(|e| RuntimeError::Input(e.to_string()))?;
        let mut sentence_lines = Vec::new();
        for sentence in &self.sentences {
            serde_json::to_writer(&mut sentence_lines, sentence).expect("a string serializes");
            sentence_lines.push(b'\n');
        }
        for (name, bytes) in [(EMBEDDINGS_FILE, bytes), (SENTENCES_FILE, sentence_lines)] {
            simcse_core::atomic::write_bytes(&dir.join(name), &bytes)?;
        }
        Ok(())
    }

    /// Reads an index written by `save`, with the metadata it was saved with.
    pub fn load(dir: &Path) -> Result<(SearchIndex, std::collections::HashMap<String, String>), RuntimeError> {
        let path = dir.join(EMBEDDINGS_FILE);
        let bytes = std::fs::read(&path).map_err(|error| RuntimeError::Io { path: path.clone(), error })?;
        let bad = |why: String| RuntimeError::BadModel { path: path.clone(), why };
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let view = st.tensor("embeddings").map_err(|_| bad("no `embeddings` tensor".into()))?;
        let (rows, dim) = match (view.dtype(), view.shape()) {
            (safetensors::Dtype::F32, [rows, dim]) => (*rows, *dim),
            (dtype, shape) => return Err(bad(format!("`embeddings` is {dtype:?} {shape:?}, not a 2-D F32 matrix"))),
        };
        let embeddings: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let sentences_path = dir.join(SENTENCES_FILE);
        let text = std::fs::read_to_string(&sentences_path)
            .map_err(|error| RuntimeError::Io { path: sentences_path.clone(), error })?;
        let sentences = text
            .lines()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str::<String>(line)
                    .map_err(|e| RuntimeError::Input(format!("{}:{}: {e}", sentences_path.display(), i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if sentences.len() != rows {
            return Err(bad(format!("{rows} embeddings but {} sentences in {}", sentences.len(), sentences_path.display())));
        }
        let lines = match st.tensor("lines") {
            Ok(view) if view.dtype() == safetensors::Dtype::I64 && view.shape() == [rows] => view
                .data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()).try_into().map_err(|_| bad("a negative line number".into())))
                .collect::<Result<Vec<usize>, _>>()?,
            Ok(view) => return Err(bad(format!("`lines` is {:?} {:?}, not {rows} I64", view.dtype(), view.shape()))),
            Err(_) => (0..rows).collect(),
        };
        let metadata = header.metadata().clone().unwrap_or_default();
        Ok((SearchIndex { dim, sentences, lines, embeddings, approximate: None }, metadata))
    }
}

fn bytemuck_f32(values: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; the length is exact.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) }
}

/// A min-heap entry: the smallest score is evicted first when the heap is full.
#[derive(PartialEq)]
struct Candidate(Hit);

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap. Ties: the lower index ranks first, as a stable sort would.
        other.0.score.total_cmp(&self.0.score).then_with(|| self.0.index.cmp(&other.0.index))
    }
}

/// Keeps the `k` best of a stream of hits.
struct TopK {
    k: usize,
    heap: BinaryHeap<Candidate>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    fn push(&mut self, hit: Hit) {
        if self.heap.len() < self.k {
            self.heap.push(Candidate(hit));
        } else if let Some(worst) = self.heap.peek() {
            if Candidate(hit) < *worst {
                self.heap.pop();
                self.heap.push(Candidate(hit));
            }
        }
    }

    fn merge(mut self, other: TopK) -> TopK {
        other.heap.into_iter().for_each(|c| self.push(c.0));
        self
    }

    fn into_sorted(self) -> Vec<Hit> {
        self.heap.into_sorted_vec().into_iter().map(|c| c.0).collect()
    }
}

/// Corpus rows scored per block: big enough for the matrix product to be efficient, small
/// enough that a block of scores stays in cache.
const CORPUS_BLOCK: usize = 4096;
const QUERY_BLOCK: usize = 64;

/// Exact top-k by inner product (cosine, rows being unit length): corpus blocks are scored in
/// parallel against blocks of queries with a matrix product, and the per-block top-k merged.
pub fn exact_top_k(queries: &[f32], corpus: &[f32], dim: usize, k: usize) -> Vec<Vec<Hit>> {
    let n_queries = queries.len() / dim;
    let n_corpus = corpus.len() / dim;
    if k == 0 || n_corpus == 0 {
        return vec![Vec::new(); n_queries];
    }
    let mut results = Vec::with_capacity(n_queries);
    for q_rows in queries.chunks(QUERY_BLOCK * dim) {
        let nq = q_rows.len() / dim;
        let mut per_block: Vec<Vec<TopK>> = corpus
            .par_chunks(CORPUS_BLOCK * dim)
            .enumerate()
            .map(|(c_block, c_rows)| {
                let nc = c_rows.len() / dim;
                let mut scores = vec![0f32; nq * nc];
                // scores [nq, nc] = q_rows [nq, dim] x c_rows^T [dim, nc]
                // SAFETY: the strides describe the row-major slices exactly; no aliasing.
                unsafe {
                    matrixmultiply::sgemm(
                        nq, dim, nc, 1.0,
                        q_rows.as_ptr(), dim as isize, 1,
                        c_rows.as_ptr(), 1, dim as isize,
                        0.0, scores.as_mut_ptr(), nc as isize, 1,
                    );
                }
                (0..nq)
                    .map(|q| {
                        let mut top = TopK::new(k);
                        for (j, &score) in scores[q * nc..(q + 1) * nc].iter().enumerate() {
                            top.push(Hit { index: c_block * CORPUS_BLOCK + j, score });
                        }
                        top
                    })
                    .collect()
            })
            .collect();
        for q in 0..nq {
            let merged = per_block.iter_mut().fold(TopK::new(k), |all, block| all.merge(std::mem::replace(&mut block[q], TopK::new(0))));
            results.push(merged.into_sorted());
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut top = TopK::new(3);
        for (i, s) in [0.1, 0.9, 0.5, 0.7, 0.3].iter().enumerate() {
            top.push(Hit { index: i, score: *s });
        }
        let order: Vec<usize> = top.into_sorted().iter().map(|h| h.index).collect();
        assert_eq!(order, vec![1, 3, 2]);
    }

    #[test]
    fn merging_keeps_the_overall_best() {
        let mut a = TopK::new(2);
        let mut b = TopK::new(2);
        a.push(Hit { index: 0, score: 0.2 });
        a.push(Hit { index: 1, score: 0.8 });
        b.push(Hit { index: 2, score: 0.9 });
        b.push(Hit { index: 3, score: 0.1 });
        let order: Vec<usize> = a.merge(b).into_sorted().iter().map(|h| h.index).collect();
        assert_eq!(order, vec![2, 1]);
    }
}
