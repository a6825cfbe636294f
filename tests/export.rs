//! Exported encoders against transformers (tests/fixtures/gen_encoders.py): tiny random BERT,
//! RoBERTa, MPNet, GPT-2 and Llama with every pooler, fp32 and fp16, standard and ONNX Runtime-fused graphs,
//! run by ONNX Runtime and tract through the runtime (tokenizer and batching included); and
//! all-MiniLM-L6-v2 against transformers' mean pooling. Every graph passes the ONNX checker.

mod common;

use common::{compare, fixture, load_f32, load_i64, onnx_check, sentences};
use simcse_core::{ModelDir, Pooler};
use simcse_export::onnx::graph::Precision;
use simcse_export::{export, ExportError, ExportOptions, Optimize};
use simcse_runtime::batch::Batch;
use simcse_runtime::tokenize::SentenceTokenizer;
use simcse_runtime::{BackendKind, Device, Encoder, EncoderOptions, RuntimeError};
use std::path::{Path, PathBuf};

const FP32_MAX_DIFF: f32 = 1e-4;
const FP16_MIN_COSINE: f32 = 0.999;
/// The fixtures' tokenizer truncation.
const MAX_LENGTH: usize = 16;

const BERT_POOLERS: &[Pooler] = &[Pooler::Cls, Pooler::ClsBeforePooler, Pooler::Avg, Pooler::AvgTop2, Pooler::AvgFirstLast];
const DECODER_POOLERS: &[Pooler] = &[Pooler::Avg, Pooler::Wavg, Pooler::Last];
const MODELS: &[(&str, &[Pooler])] = &[
    ("bert", BERT_POOLERS),
    ("roberta", BERT_POOLERS),
    ("mpnet", BERT_POOLERS),
    ("gpt2", &[Pooler::Avg, Pooler::Wavg]),
    ("llama", DECODER_POOLERS),
];

fn encode(model_dir: &Path, onnx: &Path, backend: BackendKind, max_length: usize) -> Result<Vec<f32>, RuntimeError> {
    let options = EncoderOptions {
        backend,
        onnx: Some(onnx.into()),
        batch_size: 3, // several length-sorted batches, so order restoration is exercised
        max_length: Some(max_length),
        ..Default::default()
    };
    let lines = sentences();
    let sentences: Vec<&str> = lines.iter().map(String::as_str).collect();
    Ok(Encoder::open(model_dir, &options)?.encode(&sentences)?.values)
}

#[test]
fn tokenization_matches_transformers() {
    for (model, _) in MODELS {
        let dir = fixture(&format!("encoders/{model}"));
        let expected = dir.join("expected.safetensors");
        let config = ModelDir::new(&dir).config().unwrap();
        let tokenizer = SentenceTokenizer::load(&dir, &config, MAX_LENGTH).unwrap();
        let lines = sentences();
        let tokens = tokenizer.tokenize(&lines.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        let batch = Batch::pad(&tokens.iter().collect::<Vec<_>>(), tokenizer.pad_id);
        assert_eq!(batch.input_ids, load_i64(&expected, "input_ids"), "{model}: input_ids");
        assert_eq!(batch.attention_mask, load_i64(&expected, "attention_mask"), "{model}: attention_mask");
        if *model == "bert" {
            assert_eq!(batch.token_type_ids, load_i64(&expected, "token_type_ids"), "{model}: token_type_ids");
        }
        if *model == "llama" {
            // `last` ends each sentence with end-of-sequence, inside the same length.
            let tokenizer = SentenceTokenizer::for_pooler(&dir, &config, MAX_LENGTH, Pooler::Last).unwrap();
            let tokens = tokenizer.tokenize(&lines.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
            let batch = Batch::pad(&tokens.iter().collect::<Vec<_>>(), tokenizer.pad_id);
            assert_eq!(batch.input_ids, load_i64(&expected, "last.input_ids"), "{model}: input_ids ended for `last`");
            assert_eq!(batch.attention_mask, load_i64(&expected, "last.attention_mask"), "{model}: attention_mask for `last`");
        }
    }
}

#[test]
fn every_export_matches_transformers_on_both_backends() {
    let out = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut exported = Vec::new();
    for (model, poolers) in MODELS {
        let dir = fixture(&format!("encoders/{model}"));
        let expected = load_f32(&dir.join("expected.safetensors"));
        for &pooler in poolers.iter() {
            for precision in [Precision::F32, Precision::F16] {
                for optimize in [Optimize::None, Optimize::Ort] {
                    let name = format!("{model}-{pooler}-{precision:?}-{optimize:?}");
                    let path = out.path().join(format!("{name}.onnx"));
                    let options =
                        ExportOptions { pooler: Some(pooler), precision, optimize, output: Some(path.clone()), ..Default::default() };
                    export(&dir, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
                    exported.push(path.clone());
                    let reference = &expected[&format!("pooled.{pooler}")];
                    let backends: &[BackendKind] =
                        if optimize == Optimize::Ort { &[BackendKind::Ort] } else { &[BackendKind::Ort, BackendKind::Tract] };
                    for &backend in backends {
                        let ours = match encode(&dir, &path, backend, MAX_LENGTH) {
                            Ok(v) => v,
                            Err(e) => {
                                failures.push(format!("{name} on {backend:?}: {e}"));
                                continue;
                            }
                        };
                        let (diff, cos) = compare(&ours, &reference.1, reference.0[1]);
                        let ok = match precision {
                            Precision::F32 => diff <= FP32_MAX_DIFF,
                            Precision::F16 | Precision::Bf16 => cos >= FP16_MIN_COSINE,
                        };
                        if !ok {
                            failures.push(format!("{name} on {backend:?}: max diff {diff:e}, min cosine {cos}"));
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of the exports differ from transformers:\n{}", failures.len(), failures.join("\n"));
    onnx_check(&exported);
}

/// all-MiniLM-L6-v2 from the bundled assets, converted then exported, against transformers.
#[test]
fn minilm_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("minilm");
    simcse_convert::convert(&common::asset("all-MiniLM-L6-v2"), &model, &Default::default(), &mut |_, _| true).unwrap();
    let expected = load_f32(&fixture("encoders/minilm_expected.safetensors"));
    let mut exported = Vec::new();
    for pooler in [Pooler::Avg, Pooler::ClsBeforePooler] {
        let path = tmp.path().join(format!("{pooler}.onnx"));
        export(&model, &ExportOptions { pooler: Some(pooler), output: Some(path.clone()), ..Default::default() }).unwrap();
        for backend in [BackendKind::Ort, BackendKind::Tract] {
            let ours = encode(&model, &path, backend, 128).unwrap();
            let reference = &expected[&format!("pooled.{pooler}")];
            let (diff, _) = compare(&ours, &reference.1, 384);
            assert!(diff <= FP32_MAX_DIFF, "{pooler} on {backend:?}: max diff {diff:e}");
        }
        exported.push(path);
    }
    onnx_check(&exported);
}

/// The optional `last_hidden_state` output, read with ONNX Runtime directly.
#[test]
fn last_hidden_state_output_matches() {
    let dir = fixture("encoders/roberta");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.onnx");
    export(&dir, &ExportOptions { last_hidden_state: true, output: Some(path.clone()), ..Default::default() }).unwrap();
    let expected = dir.join("expected.safetensors");
    let (ids, mask) = (load_i64(&expected, "input_ids"), load_i64(&expected, "attention_mask"));
    let shape = [sentences().len(), MAX_LENGTH];
    let runtime = simcse_runtime::onnxruntime::load().unwrap();
    let mut session = ort::session::Session::builder(&runtime.environment).unwrap().commit_from_file(&path).unwrap();
    let inputs = ort::inputs![
        "input_ids" => ort::value::Tensor::from_array((shape, ids)).unwrap(),
        "attention_mask" => ort::value::Tensor::from_array((shape, mask)).unwrap(),
    ];
    let outputs = session.run(inputs).unwrap();
    let (dims, values) = outputs["last_hidden_state"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(dims.to_vec(), vec![8, MAX_LENGTH as i64, 32]);
    let reference = &load_f32(&expected)["last_hidden_state"];
    let (diff, _) = compare(values, &reference.1, 32);
    assert!(diff <= FP32_MAX_DIFF, "max diff {diff:e}");
    onnx_check(&[path]);
}

#[test]
fn external_data_is_read_by_every_consumer() {
    let dir = fixture("encoders/bert");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.onnx");
    let report = export(&dir, &ExportOptions { external_data: true, output: Some(path.clone()), ..Default::default() }).unwrap();
    let data = report.external_data.expect("weights written apart");
    assert!(std::fs::metadata(&data).unwrap().len() > std::fs::metadata(&path).unwrap().len());
    let reference = &load_f32(&dir.join("expected.safetensors"))["pooled.cls"];
    for backend in [BackendKind::Ort, BackendKind::Tract] {
        let (diff, _) = compare(&encode(&dir, &path, backend, MAX_LENGTH).unwrap(), &reference.1, 32);
        assert!(diff <= FP32_MAX_DIFF, "{backend:?}: max diff {diff:e}");
    }
    onnx_check(&[path]);
}

#[test]
fn cuda_requests_fail_clearly_where_there_is_none() {
    let dir = fixture("encoders/bert");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.onnx");
    export(&dir, &ExportOptions { output: Some(path.clone()), ..Default::default() }).unwrap();
    let open = |backend, device| {
        Encoder::open(&dir, &EncoderOptions { backend, device, onnx: Some(path.clone()), ..Default::default() })
    };
    match open(BackendKind::Tract, Device::Cuda(0)) {
        Err(RuntimeError::Device(why)) => assert!(why.contains("CPU only"), "{why}"),
        other => panic!("tract on CUDA: {:?}", other.err()),
    }
    let runtime = simcse_runtime::onnxruntime::load().unwrap();
    if runtime.cuda_available() {
        eprintln!("this ONNX Runtime has a CUDA provider: the no-CUDA error path is not reachable here");
        return;
    }
    match open(BackendKind::Ort, Device::Cuda(0)) {
        Err(RuntimeError::Device(why)) => {
            assert!(why.contains("no CUDA execution provider") && why.contains("ORT_DYLIB_PATH"), "{why}")
        }
        other => panic!("expected a device error, got {:?}", other.err()),
    }
}

/// Writes a copy of the BERT fixture without its pooler weights.
fn bert_without_pooler(tmp: &Path) -> PathBuf {
    let src = fixture("encoders/bert");
    let dst = tmp.join("no-pooler");
    std::fs::create_dir(&dst).unwrap();
    for file in ["config.json", "vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(src.join(file), dst.join(file)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st.tensors().into_iter().filter(|(n, _)| !n.starts_with("pooler.")).collect();
    safetensors::serialize_to_file(kept, None, &dst.join("model.safetensors")).unwrap();
    dst
}

#[test]
fn export_errors_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let output = Some(tmp.path().join("m.onnx"));
    let err = |dir: &Path, pooler: Option<Pooler>| {
        export(dir, &ExportOptions { pooler, output: output.clone(), ..Default::default() }).unwrap_err().to_string()
    };
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(err(&empty, None).contains("config.json"), "{}", err(&empty, None));
    let gpt2 = err(&fixture("encoders/gpt2"), Some(Pooler::Cls));
    assert!(gpt2.contains("GPT-2") && gpt2.contains("avg or wavg"), "{gpt2}");
    let llama = err(&fixture("encoders/llama"), Some(Pooler::ClsBeforePooler));
    assert!(llama.contains("Llama") && llama.contains("last"), "{llama}");
    let bert_last = err(&fixture("encoders/bert"), Some(Pooler::Last));
    assert!(bert_last.contains("decoders"), "{bert_last}");
    let no_pooler = err(&bert_without_pooler(tmp.path()), Some(Pooler::Cls));
    assert!(no_pooler.contains("pooler.dense.weight"), "{no_pooler}");
    assert!(!tmp.path().join("m.onnx").exists(), "a failed export left a file");
    let unsupported = tmp.path().join("t5");
    std::fs::create_dir(&unsupported).unwrap();
    std::fs::write(unsupported.join("config.json"), r#"{"model_type": "t5", "hidden_size": 8, "num_attention_heads": 2}"#).unwrap();
    assert!(matches!(export(&unsupported, &Default::default()), Err(ExportError::BadModel { .. })));
    assert!(err(&unsupported, None).contains("model_type `t5`"));
    // bf16 is a training precision: no runtime here runs a bf16 graph.
    let bf16 = export(&fixture("encoders/bert"), &ExportOptions { precision: Precision::Bf16, output: output.clone(), ..Default::default() });
    assert!(matches!(&bf16, Err(ExportError::Options(why)) if why.contains("bf16") && why.contains("fp16")), "{bf16:?}");
    assert!(!tmp.path().join("m.onnx").exists(), "a refused export left a file");
}

/// The command line: export --verify, then encode to each output format.
#[test]
fn cli_exports_verifies_and_encodes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("bert");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(fixture("encoders/bert")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let simcse = |args: &[&std::ffi::OsStr]| std::process::Command::new(env!("CARGO_BIN_EXE_simcse")).args(args).output().unwrap();
    let out = simcse(&["export".as_ref(), model.as_os_str(), "--verify".as_ref()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches(" ok").count(), 2, "both backends verified: {stdout}");

    let input = fixture("encoders/sentences.txt");
    let mut results = Vec::new();
    for (file, backend) in [("e.npy", "ort"), ("e.safetensors", "tract"), ("e.jsonl", "ort")] {
        let output = tmp.path().join(file);
        let args: Vec<&std::ffi::OsStr> = vec![
            "encode".as_ref(), model.as_os_str(), "--input".as_ref(), input.as_os_str(),
            "--output".as_ref(), output.as_os_str(), "--backend".as_ref(), backend.as_ref(),
            "--max-length".as_ref(), "16".as_ref(), "--quiet".as_ref(),
        ];
        let out = simcse(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        results.push(read_embeddings(&output));
    }
    let reference = &load_f32(&fixture("encoders/bert/expected.safetensors"))["pooled.cls"].1;
    for values in results {
        assert!(compare(&values, reference, 32).0 <= FP32_MAX_DIFF);
    }
}

fn read_embeddings(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    match path.extension().unwrap().to_str().unwrap() {
        "npy" => {
            assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
            assert!(header.contains("'descr': '<f4'") && header.contains("'shape': (8, 32)"), "{header}");
            assert_eq!((10 + header_len) % 64, 0, "NPY data must start 64-byte aligned");
            bytes[10 + header_len..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
        }
        "safetensors" => load_f32(path)["embeddings"].1.clone(),
        _ => {
            let lines: Vec<serde_json::Value> =
                String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(lines[0]["sentence"], sentences()[0]);
            lines.iter().flat_map(|l| l["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32)).collect()
        }
    }
}
