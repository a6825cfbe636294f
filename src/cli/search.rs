//! `simcse search MODEL_DIR --corpus corpus.txt --query "..."`: SimCSE's tool on the command
//! line. With `--index DIR` the corpus is encoded once and the index reused.

use crate::cli::encode::EncoderArgs;
use crate::cli::{print_notes, read_sentences};
use anyhow::{bail, Context};
use clap::Args;
use simcse_runtime::search::{check_search, HnswParams, SearchIndex};
use simcse_runtime::tool::{SimCse, DEFAULT_THRESHOLD, DEFAULT_TOP_K};
use simcse_runtime::Encoder;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A model directory (exported to model.onnx first if it has none)
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
    #[arg(long, default_value_t = DEFAULT_THRESHOLD, allow_negative_numbers = true)]
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
    simcse_core::ModelDir::open(&args.model_dir, simcse_core::Needs::Config)?;
    // Everything that can be wrong with the options is found before the corpus is encoded.
    check_search(args.top_k, args.threshold)?;
    anyhow::ensure!(args.ef_search >= 1, "--ef-search must be at least 1");
    let mut queries = args.query.clone();
    if let Some(path) = &args.queries {
        queries.extend(read_sentences(path)?.1);
    }
    queries.retain(|q| !q.trim().is_empty());
    if queries.is_empty() {
        bail!("no query: give --query \"...\" or --queries FILE");
    }
    if let Some(path) = &args.output {
        crate::cli::check_writable(path)?;
    }
    check_index_dir(args.index.as_deref())?;
    let corpus = args.corpus.as_ref().map(|p| read_sentences(p)).transpose()?;
    let encoder = Encoder::open(&args.model_dir, &args.encoder.options()).with_context(|| format!("opening {}", args.model_dir.display()))?;
    print_notes(&encoder);
    let mut tool = SimCse::new(encoder);
    open_index(&mut tool, corpus, args.index.as_deref())?;
    if args.approximate {
        let params = HnswParams { ef_search: args.ef_search, ..Default::default() };
        tool.index.as_mut().unwrap().build_approximate(params);
    }
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let results = tool.search_hits(&refs, args.top_k, args.threshold)?;
    let index = tool.index.as_ref().unwrap();
    if let Some(path) = &args.output {
        let mut lines = String::new();
        for (query, hits) in queries.iter().zip(&results) {
            let hits: Vec<_> = hits
                .iter()
                .map(|hit| serde_json::json!({ "sentence": index.sentences[hit.index], "score": hit.score, "index": index.lines[hit.index] }))
                .collect();
            lines.push_str(&serde_json::json!({ "query": query, "hits": hits }).to_string());
            lines.push('\n');
        }
        crate::cli::write_atomically(path, lines.as_bytes())?;
    }
    for (query, hits) in queries.iter().zip(&results) {
        outln!("{query}");
        if hits.is_empty() {
            outln!("  (nothing at or above {:.2})", args.threshold);
        }
        for hit in hits {
            outln!("  {:.4}  {}", hit.score, index.sentences[hit.index]);
        }
    }
    Ok(())
}

/// Checks `--index DIR` before any work: a directory, or where one can be made.
pub fn check_index_dir(dir: Option<&Path>) -> anyhow::Result<()> {
    if let Some(dir) = dir {
        anyhow::ensure!(!dir.is_file(), "--index {}: a file; give a directory for the index", dir.display());
        simcse_core::atomic::existing_parent(dir)?;
    }
    Ok(())
}

/// Gives `tool` its index: the one saved in `index_dir` where it matches the encoder and the
/// corpus, else the corpus encoded (and saved to `index_dir`, where given).
pub fn open_index(tool: &mut SimCse, corpus: Option<(Vec<usize>, Vec<String>)>, index_dir: Option<&Path>) -> anyhow::Result<()> {
    let fingerprint = tool.encoder.fingerprint()?;
    if let Some(index) = load_index(index_dir, corpus.as_ref(), &fingerprint)? {
        tool.index = Some(index);
        return Ok(());
    }
    let started = Instant::now();
    let (lines, sentences) = corpus.context("no index to load: give --corpus to build one")?;
    tool.build_index_at(sentences, lines, None)?;
    let index = tool.index.as_ref().expect("just built");
    errln!("encoded {} corpus sentences in {:.1} s", index.len(), started.elapsed().as_secs_f64());
    if let Some(dir) = index_dir {
        index.save(dir, &[(ENCODER_KEY, fingerprint)])?;
        errln!("index saved to {}", dir.display());
    }
    Ok(())
}

/// The metadata key of the encoder's fingerprint in a saved index.
const ENCODER_KEY: &str = "encoder_sha256";

/// The saved index where it exists, was made by an encoder that embeds alike (the same graph,
/// tokenizer and truncation, wherever they live) and holds the same corpus. Where the corpus
/// is given, an index that is stale or unreadable is rebuilt (with a note); without it, that
/// is an error.
fn load_index(dir: Option<&Path>, corpus: Option<&(Vec<usize>, Vec<String>)>, fingerprint: &str) -> anyhow::Result<Option<SearchIndex>> {
    let Some(dir) = dir else { return Ok(None) };
    if !dir.join(simcse_runtime::search::EMBEDDINGS_FILE).is_file() {
        return Ok(None);
    }
    let rebuild = |why: String| -> anyhow::Result<Option<SearchIndex>> {
        if corpus.is_some() {
            errln!("note: {} {why}; re-encoding the corpus", dir.display());
            Ok(None)
        } else {
            bail!("{} {why}; give --corpus to rebuild it", dir.display())
        }
    };
    let (index, metadata) = match SearchIndex::load(dir) {
        Ok(loaded) => loaded,
        Err(e) => return rebuild(format!("cannot be read ({e})")),
    };
    if metadata.get(ENCODER_KEY).map(String::as_str) != Some(fingerprint) {
        return rebuild("was built with another encoder".into());
    }
    if let Some((lines, sentences)) = corpus {
        if sentences != &index.sentences || lines != &index.lines {
            return rebuild("holds another corpus".into());
        }
    }
    errln!("loaded {} sentences from {}", index.len(), dir.display());
    Ok(Some(index))
}
