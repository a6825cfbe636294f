//! SimCSE's `tool.py` in Rust: `encode`, `similarity`, `build_index`, `add_to_index` and
//! `search` over one encoder, with the same defaults (top 5, threshold 0.6).

use crate::search::{HnswParams, Hit, SearchIndex};
use crate::similarity::cosine;
use crate::{Embeddings, Encoder, RuntimeError};

pub const DEFAULT_TOP_K: usize = 5;
pub const DEFAULT_THRESHOLD: f32 = 0.6;

pub struct SimCse {
    pub encoder: Encoder,
    pub index: Option<SearchIndex>,
}

impl SimCse {
    pub fn new(encoder: Encoder) -> SimCse {
        SimCse { encoder, index: None }
    }

    pub fn encode(&mut self, sentences: &[&str]) -> Result<Embeddings, RuntimeError> {
        if sentences.is_empty() {
            return Err(RuntimeError::Input("no sentences to encode".into()));
        }
        self.encoder.encode(sentences)
    }

    /// Cosine similarities, `[a.len()][b.len()]`.
    pub fn similarity(&mut self, a: &[&str], b: &[&str]) -> Result<Vec<Vec<f32>>, RuntimeError> {
        let (ea, eb) = (self.encode(a)?, self.encode(b)?);
        Ok((0..ea.rows).map(|i| (0..eb.rows).map(|j| cosine(ea.row(i), eb.row(j))).collect()).collect())
    }

    /// Encodes the corpus into a new index; `approximate` adds an HNSW graph.
    pub fn build_index(&mut self, sentences: Vec<String>, approximate: Option<HnswParams>) -> Result<(), RuntimeError> {
        let lines = (0..sentences.len()).collect();
        self.build_index_at(sentences, lines, approximate)
    }

    /// `build_index` for sentences that sit at `lines` of their corpus file.
    pub fn build_index_at(&mut self, sentences: Vec<String>, lines: Vec<usize>, approximate: Option<HnswParams>) -> Result<(), RuntimeError> {
        if sentences.is_empty() {
            return Err(RuntimeError::Input("the corpus is empty: nothing to index".into()));
        }
        let mut index = SearchIndex::new(self.encoder.info.hidden_size);
        let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let embeddings = self.encode(&refs)?;
        index.add_lines(sentences, lines, &embeddings)?;
        if let Some(params) = approximate {
            index.build_approximate(params);
        }
        self.index = Some(index);
        Ok(())
    }

    pub fn add_to_index(&mut self, sentences: Vec<String>) -> Result<(), RuntimeError> {
        let mut index = self.index.take().ok_or_else(|| RuntimeError::Input("no index yet: build one first".into()))?;
        let result = self.add_into(&mut index, sentences);
        self.index = Some(index);
        result
    }

    fn add_into(&mut self, index: &mut SearchIndex, sentences: Vec<String>) -> Result<(), RuntimeError> {
        let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let embeddings = self.encode(&refs)?;
        index.add(sentences, &embeddings)
    }

    /// For each query, up to `top_k` corpus sentences of similarity >= `threshold`, best first.
    pub fn search(&mut self, queries: &[&str], top_k: usize, threshold: f32) -> Result<Vec<Vec<(String, f32)>>, RuntimeError> {
        let hits = self.search_hits(queries, top_k, threshold)?;
        let index = self.index.as_ref().expect("searched an index");
        Ok(hits
            .into_iter()
            .map(|hits: Vec<Hit>| hits.into_iter().map(|h| (index.sentences[h.index].clone(), h.score)).collect())
            .collect())
    }

    /// The same as `search`, as rows of the index (`index.sentences[row]`, `index.lines[row]`):
    /// duplicate sentences stay apart.
    pub fn search_hits(&mut self, queries: &[&str], top_k: usize, threshold: f32) -> Result<Vec<Vec<Hit>>, RuntimeError> {
        crate::search::check_search(top_k, threshold)?;
        if self.index.is_none() {
            return Err(RuntimeError::Input("no index: build one first".into()));
        }
        let embeddings = self.encode(queries)?;
        self.index.as_ref().expect("checked above").search(&embeddings, top_k, threshold)
    }
}
