//! Search against brute force: the exact index returns the true top-k by cosine, the threshold
//! filters as SimCSE's tool does, a saved index searches the same, HNSW keeps high recall; and
//! the command line caches an index so a corpus is encoded once.

mod common;

use common::fixture;
use simcse_runtime::search::{HnswParams, Hit, SearchIndex};
use simcse_runtime::tool::SimCse;
use simcse_runtime::{Embeddings, Encoder, EncoderOptions};

/// Deterministic pseudo-random vectors (xorshift), clustered so that neighbours exist.
fn vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut xorshift = simcse_core::rng::xorshift64(seed | 1);
    let mut next = move || (xorshift() % 20_000) as f32 / 10_000.0 - 1.0;
    let centers: Vec<f32> = (0..16 * dim).map(|_| next()).collect();
    (0..n)
        .flat_map(|i| {
            let c = (i * 7) % 16;
            (0..dim).map(|d| centers[c * dim + d] + 0.5 * next()).collect::<Vec<_>>()
        })
        .collect()
}

fn unit(v: &[f32]) -> Vec<f64> {
    let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|x| *x as f64 / norm).collect()
}

/// Every corpus row scored in f64 and sorted: the definition of the right answer.
fn brute_force(query: &[f32], corpus: &[f32], dim: usize) -> Vec<(usize, f64)> {
    let q = unit(query);
    let mut scored: Vec<(usize, f64)> = corpus
        .chunks(dim)
        .enumerate()
        .map(|(i, row)| (i, unit(row).iter().zip(&q).map(|(a, b)| a * b).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

fn index_of(corpus: &[f32], dim: usize) -> SearchIndex {
    let n = corpus.len() / dim;
    let mut index = SearchIndex::new(dim);
    let sentences = (0..n).map(|i| format!("sentence {i}")).collect();
    index.add(sentences, &Embeddings { rows: n, dim, values: corpus.to_vec() }).unwrap();
    index
}

#[test]
fn exact_search_is_brute_force_top_k() {
    let (dim, k) = (64, 10);
    let corpus = vectors(9000, dim, 1);
    let queries = vectors(37, dim, 2);
    let index = index_of(&corpus, dim);
    let hits = index.search(&Embeddings { rows: 37, dim, values: queries.clone() }, k, -1.0).unwrap();
    for (q, hits) in hits.iter().enumerate() {
        let truth = brute_force(&queries[q * dim..(q + 1) * dim], &corpus, dim);
        assert_eq!(hits.len(), k);
        for (rank, hit) in hits.iter().enumerate() {
            // The score at each rank is the true one, and each hit's score is its true score;
            // indices agree except where two scores tie to within float precision.
            assert!((hit.score as f64 - truth[rank].1).abs() < 1e-5, "query {q} rank {rank}");
            let true_score = truth.iter().find(|(i, _)| *i == hit.index).unwrap().1;
            assert!((hit.score as f64 - true_score).abs() < 1e-5, "query {q}: hit {} misscored", hit.index);
        }
        let ours: Vec<usize> = hits.iter().map(|h| h.index).collect();
        let theirs: Vec<usize> = truth[..k].iter().map(|(i, _)| *i).collect();
        if ours != theirs {
            let gap = truth.windows(2).take(k).map(|w| w[0].1 - w[1].1).fold(f64::INFINITY, f64::min);
            assert!(gap < 1e-6, "query {q}: {ours:?} != {theirs:?}");
        }
    }
}

#[test]
fn threshold_keeps_only_close_enough_hits() {
    let dim = 32;
    let corpus = vectors(2000, dim, 3);
    let query = vectors(1, dim, 4);
    let index = index_of(&corpus, dim);
    let threshold = 0.5;
    let hits = index.search(&Embeddings { rows: 1, dim, values: query.clone() }, 1000, threshold).unwrap().remove(0);
    let expected = brute_force(&query, &corpus, dim).iter().filter(|(_, s)| *s >= threshold as f64).count().min(1000);
    assert!(hits.iter().all(|h| h.score >= threshold));
    assert!((hits.len() as i64 - expected as i64).abs() <= 1, "{} hits, {} expected", hits.len(), expected);
}

#[test]
fn a_saved_index_searches_the_same() {
    let dim = 16;
    let corpus = vectors(500, dim, 5);
    let mut index = index_of(&corpus, dim);
    index.sentences[3] = "ünïcode, \"quotes\"\tand a tab".into();
    let tmp = tempfile::tempdir().unwrap();
    index.save(tmp.path(), &[("encoder", "test".into())]).unwrap();
    let (loaded, metadata) = SearchIndex::load(tmp.path()).unwrap();
    assert_eq!(metadata.get("encoder").map(String::as_str), Some("test"));
    assert_eq!(loaded.sentences, index.sentences);
    let queries = Embeddings { rows: 5, dim, values: vectors(5, dim, 6) };
    assert_eq!(loaded.search(&queries, 7, 0.0).unwrap(), index.search(&queries, 7, 0.0).unwrap());
}

#[test]
fn hnsw_finds_nearly_every_true_neighbour() {
    let (dim, k) = (48, 10);
    let corpus = vectors(5000, dim, 7);
    let queries = vectors(100, dim, 8);
    let mut index = index_of(&corpus, dim);
    let q = Embeddings { rows: 100, dim, values: queries };
    let exact: Vec<Vec<Hit>> = index.search(&q, k, -1.0).unwrap();
    index.build_approximate(HnswParams::default());
    let approximate = index.search(&q, k, -1.0).unwrap();
    let found: usize = exact
        .iter()
        .zip(&approximate)
        .map(|(e, a)| a.iter().filter(|h| e.iter().any(|x| x.index == h.index)).count())
        .sum();
    let recall = found as f64 / (100 * k) as f64;
    assert!(recall >= 0.9, "recall@10 {recall}");
    // Adding to an approximate index makes the new sentences findable.
    let extra = vectors(1, dim, 9);
    index.add(vec!["new".into()], &Embeddings { rows: 1, dim, values: extra.clone() }).unwrap();
    let hit = index.search(&Embeddings { rows: 1, dim, values: extra }, 1, 0.0).unwrap().remove(0);
    assert_eq!(hit[0].index, 5000);
}

#[test]
fn bad_embeddings_and_empty_corpora_are_errors() {
    let mut index = SearchIndex::new(2);
    let err = index.add(vec!["z".into()], &Embeddings { rows: 1, dim: 2, values: vec![0.0, 0.0] }).unwrap_err();
    assert!(err.to_string().contains("\"z\"") && err.to_string().contains("zeros"), "{err}");
    let err = index.add(vec!["n".into()], &Embeddings { rows: 1, dim: 2, values: vec![f32::NAN, 1.0] }).unwrap_err();
    assert!(err.to_string().contains("not finite"), "{err}");
}

/// The tiny BERT fixture, exported into a temporary model directory.
fn tiny_model(tmp: &std::path::Path) -> std::path::PathBuf {
    let model = tmp.join("bert");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(fixture("encoders/bert")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    simcse_export::export(&model, &Default::default()).unwrap();
    model
}

#[test]
fn the_tool_api_behaves_like_simcses() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let mut tool = SimCse::new(Encoder::open(&model, &EncoderOptions::default()).unwrap());
    let corpus: Vec<String> = common::sentences();
    assert!(tool.build_index(Vec::new(), None).is_err(), "an empty corpus is an error");
    tool.build_index(corpus.clone(), None).unwrap();
    let results = tool.search(&[corpus[4].as_str()], 3, -1.0).unwrap();
    assert_eq!(results[0][0].0, corpus[4], "a corpus sentence finds itself first");
    assert!((results[0][0].1 - 1.0).abs() < 1e-5);
    let matrix = tool.similarity(&[corpus[0].as_str(), corpus[1].as_str()], &[corpus[1].as_str()]).unwrap();
    assert_eq!((matrix.len(), matrix[0].len()), (2, 1));
    assert!((matrix[1][0] - 1.0).abs() < 1e-5);
    tool.add_to_index(vec!["an added sentence".into()]).unwrap();
    assert_eq!(tool.search(&["an added sentence"], 1, 0.99).unwrap()[0][0].0, "an added sentence");
}

#[test]
fn cli_encodes_a_corpus_once_and_reuses_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let corpus = fixture("encoders/sentences.txt");
    let index = tmp.path().join("index");
    let queries = tmp.path().join("queries.txt");
    std::fs::write(&queries, "Hello!\nTwo dogs run through the snow.\n").unwrap();
    let output = tmp.path().join("hits.jsonl");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_simcse"))
            .arg("search")
            .arg(&model)
            .arg("--corpus")
            .arg(&corpus)
            .arg("--index")
            .arg(&index)
            .arg("--queries")
            .arg(&queries)
            .args(["--threshold", "0.0", "--top-k", "2", "--output"])
            .arg(&output)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stderr).contains("index saved"));
    let hits_first = std::fs::read_to_string(&output).unwrap();
    let second = run();
    assert!(String::from_utf8_lossy(&second.stderr).contains("loaded 8 sentences"), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), hits_first);
    let line: serde_json::Value = serde_json::from_str(hits_first.lines().nth(1).unwrap()).unwrap();
    assert_eq!(line["hits"][0]["sentence"], "Two dogs run through the snow.");

    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_simcse"))
        .arg("search")
        .arg(&model)
        .arg("--corpus")
        .arg(&empty)
        .args(["--query", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("empty"));
}
