//! `simcse search MODEL_DIR --corpus corpus.txt --query "..."`: SimCSE's tool on the command
//! line. With `--index DIR` the corpus is encoded once and the index reused.

use crate::cli::encode::EncoderArgs;
use crate::cli::read_lines;
use anyhow::{bail, Context};
use clap::Args;
use simcse_runtime::search::{HnswParams, SearchIndex};
use simcse_runtime::tool::{SimCse, DEFAULT_THRESHOLD, DEFAULT_TOP_K};
use simcse_runtime::Encoder;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A model directory with model.onnx (see `simcse export`)
    pub model_dir: PathBuf,
    /// The sentences to search, one a line
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// An index directory: loaded if it exists (and matches the corpus), else written after encoding
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// A query (repeatable)
    #[arg(long = "query")]
    pub query: Vec<String>,
    /// Queries, one a line (batch mode)
    #[arg(long)]
    pub queries: Option<PathBuf>,
    #[arg(long, default_value_t = DEFAULT_TOP_K)]
    pub top_k: usize,
    /// Only hits of at least this cosine similarity
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// Search an HNSW graph instead of every sentence (for large corpora; built in memory)
    #[arg(long)]
    pub approximate: bool,
    /// HNSW search breadth (higher: better recall, slower)
    #[arg(long, default_value_t = HnswParams::default().ef_search)]
    pub ef_search: usize,
    /// Write the hits as JSON lines ({"query", "hits": [{"sentence", "score", "index"}]})
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let mut queries = args.query.clone();
    if let Some(path) = &args.queries {
        queries.extend(read_lines(path)?);
    }
    if queries.is_empty() {
        bail!("no query: give --query \"...\" or --queries FILE");
    }
    let encoder = Encoder::open(&args.model_dir, &args.encoder.options()).with_context(|| format!("opening {}", args.model_dir.display()))?;
    let fingerprint = format!("{} {} {}", encoder.onnx.display(), encoder.info.pooler, encoder.tokenizer.max_length);
    let mut tool = SimCse::new(encoder);
    let corpus = args.corpus.as_ref().map(|p| read_lines(p)).transpose()?;
    let started = Instant::now();
    match load_index(&args, corpus.as_deref(), &fingerprint)? {
        Some(index) => tool.index = Some(index),
        None => {
            let corpus = corpus.context("no index to load: give --corpus to build one")?;
            tool.build_index(corpus, None)?;
            eprintln!("encoded {} corpus sentences in {:.1} s", tool.index.as_ref().unwrap().len(), started.elapsed().as_secs_f64());
            if let Some(dir) = &args.index {
                tool.index.as_ref().unwrap().save(dir, &[("encoder", fingerprint.clone())])?;
                eprintln!("index saved to {}", dir.display());
            }
        }
    }
    if args.approximate {
        let params = HnswParams { ef_search: args.ef_search, ..Default::default() };
        tool.index.as_mut().unwrap().build_approximate(params);
    }
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let results = tool.search(&refs, args.top_k, args.threshold)?;
    let index = tool.index.as_ref().unwrap();
    let mut lines = Vec::new();
    for (query, hits) in queries.iter().zip(&results) {
        println!("{query}");
        if hits.is_empty() {
            println!("  (nothing at or above {:.2})", args.threshold);
        }
        for (sentence, score) in hits {
            println!("  {score:.4}  {sentence}");
        }
        let hits_json: Vec<_> = hits
            .iter()
            .map(|(sentence, score)| {
                let position = index.sentences.iter().position(|s| s == sentence);
                serde_json::json!({ "sentence": sentence, "score": score, "index": position })
            })
            .collect();
        lines.push(serde_json::json!({ "query": query, "hits": hits_json }).to_string());
    }
    if let Some(path) = &args.output {
        crate::cli::write_atomically(path, (lines.join("\n") + "\n").as_bytes())?;
    }
    Ok(())
}

/// The saved index where it exists, was made by the same encoder and holds the same corpus.
fn load_index(args: &SearchArgs, corpus: Option<&[String]>, fingerprint: &str) -> anyhow::Result<Option<SearchIndex>> {
    let Some(dir) = &args.index else { return Ok(None) };
    if !dir.join(simcse_runtime::search::EMBEDDINGS_FILE).is_file() {
        return Ok(None);
    }
    let (index, metadata) = SearchIndex::load(dir)?;
    if metadata.get("encoder").map(String::as_str) != Some(fingerprint) {
        if corpus.is_some() {
            eprintln!("note: {} was built with another encoder; re-encoding the corpus", dir.display());
            return Ok(None);
        }
        bail!("{} was built with another encoder ({:?}); give --corpus to rebuild it", dir.display(), metadata.get("encoder"));
    }
    if corpus.is_some_and(|c| c != index.sentences.as_slice()) {
        eprintln!("note: the corpus differs from {}'s; re-encoding it", dir.display());
        return Ok(None);
    }
    eprintln!("loaded {} sentences from {}", index.len(), dir.display());
    Ok(Some(index))
}
