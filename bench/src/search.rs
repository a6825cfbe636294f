//! `simcse-bench search`: queries per second of exact search and of HNSW, and HNSW's recall@k
//! against exact, over random unit vectors (the hardest case for a graph index: no structure).

use super::process::{machine, write_figures};
use anyhow::ensure;
use clap::Args;
use serde_json::json;
use simcse_runtime::search::{HnswParams, SearchIndex};
use simcse_runtime::Embeddings;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct SearchBenchArgs {
    /// Corpus sizes, comma-separated
    #[arg(long, default_value = "100000,1000000")]
    pub sizes: String,
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// HNSW links per node and construction breadth
    #[arg(long, default_value_t = 16)]
    pub max_connections: usize,
    #[arg(long, default_value_t = 100)]
    pub ef_construction: usize,
    /// HNSW search breadths to measure, comma-separated
    #[arg(long, default_value = "64,256")]
    pub ef_search: String,
    /// Instead of random vectors: real embeddings (.npy from `simcse encode`) as the corpus...
    #[arg(long, requires = "query_embeddings")]
    pub corpus_embeddings: Option<PathBuf>,
    /// ...and as the queries
    #[arg(long)]
    pub query_embeddings: Option<PathBuf>,
    #[arg(long, default_value = "target/bench/search.json")]
    pub output: PathBuf,
}

/// Standard normal vectors (Box-Muller over xorshift): directions uniform on the sphere.
fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut next = simcse_core::rng::xorshift64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut uniform = move || ((next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..n * dim)
        .map(|_| ((-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos()) as f32)
        .collect()
}

fn parse_list(text: &str) -> anyhow::Result<Vec<usize>> {
    text.split(',').map(|s| s.trim().parse().map_err(|_| anyhow::anyhow!("`{s}` is not a number"))).collect()
}

pub fn run(args: SearchBenchArgs) -> anyhow::Result<()> {
    let sizes = parse_list(&args.sizes)?;
    let efs = parse_list(&args.ef_search)?;
    ensure!(args.queries > 0 && args.k > 0, "--queries and --k must be positive");
    let real = match (&args.corpus_embeddings, &args.query_embeddings) {
        (Some(c), Some(q)) => Some((simcse_runtime::output::read_npy(c)?, simcse_runtime::output::read_npy(q)?)),
        _ => None,
    };
    let queries = match &real {
        Some((_, q)) => q.clone(),
        None => Embeddings { rows: args.queries, dim: args.dim, values: random_vectors(args.queries, args.dim, 2) },
    };
    let sizes = match &real {
        Some((c, _)) => vec![c.rows],
        None => sizes,
    };
    let mut rows = Vec::new();
    let what = if real.is_some() { "real embeddings" } else { "random unit vectors" };
    outln!("search over {what} of {} dimensions, {} queries, top {}", queries.dim, queries.rows, args.k);
    outln!("{:<10} {:<26} {:>10} {:>12} {:>10}", "corpus", "method", "build s", "queries/s", "recall@k");
    for &n in &sizes {
        let corpus = match &real {
            Some((c, _)) => c.clone(),
            None => Embeddings { rows: n, dim: args.dim, values: random_vectors(n, args.dim, 1) },
        };
        let dim = corpus.dim;
        let mut index = SearchIndex::new(dim);
        index.add((0..n).map(|i| i.to_string()).collect(), &corpus)?;
        drop(corpus);
        let started = Instant::now();
        let exact = index.search(&queries, args.k, -1.0)?;
        let exact_qps = queries.rows as f64 / started.elapsed().as_secs_f64();
        outln!("{n:<10} {:<26} {:>10} {exact_qps:>12.0} {:>10}", "exact (all cores)", "-", "1.000");
        rows.push(json!({ "corpus": n, "method": "exact", "queries_per_s": exact_qps, "recall": 1.0 }));

        let started = Instant::now();
        let params = HnswParams { max_connections: args.max_connections, ef_construction: args.ef_construction, ef_search: 0 };
        index.build_approximate(params);
        let build_s = started.elapsed().as_secs_f64();
        for &ef in &efs {
            index.set_ef_search(ef);
            let started = Instant::now();
            let approximate = index.search(&queries, args.k, -1.0)?;
            let qps = queries.rows as f64 / started.elapsed().as_secs_f64();
            let found: usize = exact
                .iter()
                .zip(&approximate)
                .map(|(e, a)| a.iter().filter(|h| e.iter().any(|x| x.index == h.index)).count())
                .sum();
            let recall = found as f64 / (queries.rows * args.k) as f64;
            let method = format!("hnsw M={} efc={} ef={ef}", args.max_connections, args.ef_construction);
            outln!("{n:<10} {method:<26} {build_s:>10.1} {qps:>12.0} {recall:>10.3}");
            rows.push(json!({ "corpus": n, "method": "hnsw", "max_connections": args.max_connections,
                "ef_construction": args.ef_construction, "ef_search": ef, "build_s": build_s,
                "queries_per_s": qps, "recall": recall }));
        }
    }
    write_figures(&args.output, &json!({ "benchmark": "search", "machine": machine(), "data": what,
        "dim": queries.dim, "queries": queries.rows, "k": args.k, "results": rows }))?;
    outln!("figures written to {}", args.output.display());
    Ok(())
}
