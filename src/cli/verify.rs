//! `simcse export --verify`: the exported graph, run by ONNX Runtime and by tract on sample
//! sentences, against the libtorch forward of the same weights.

use simcse::train::model::{load_weights, pool, Encoder as TorchEncoder};
use simcse_converters::architecture::Architecture;
use simcse_converters::ModelDir;
use simcse_exporter::onnx::graph::Precision;
use simcse_exporter::{ExportOptions, ExportReport, Optimize};
use simcse_runtime::batch::Batch;
use simcse_runtime::similarity::agreement;
use simcse_runtime::{BackendKind, Encoder, EncoderOptions, ModelInfo};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Short and long, cased, accented and punctuated, so that padding and truncation both occur.
pub const SAMPLE_SENTENCES: &[&str] = &[
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
    "Hi!",
    "Two dogs are running through a field of snow, chasing a red ball that keeps bouncing away.",
    "Café au lait, naïve résumé, São Paulo.",
    "It's 3:45 p.m. -- are you coming?",
    "A woman is slicing an onion.",
    "Nothing.",
];

const FP32_MAX_ABS_DIFF: f32 = 1e-4;
const FP16_MIN_COSINE: f32 = 0.999;

pub fn run(model_dir: &Path, report: &ExportReport, options: &ExportOptions) -> anyhow::Result<()> {
    let reference = torch_reference(model_dir, report)?;
    let dim = reference.len() / SAMPLE_SENTENCES.len();
    outln!("  verify      {} sample sentences against the libtorch forward of the same weights", SAMPLE_SENTENCES.len());
    let mut failures = Vec::new();
    for backend in [BackendKind::Ort, BackendKind::Tract] {
        let name = if backend == BackendKind::Ort { "onnxruntime" } else { "tract" };
        if backend == BackendKind::Tract && options.optimize == Optimize::Ort {
            outln!("    {name:<12} not applicable: the graph uses ONNX Runtime's contrib ops (--optimize ort)");
            continue;
        }
        let encoder_options = EncoderOptions { backend, onnx: Some(report.path.clone()), batch_size: 3, ..Default::default() };
        let result = Encoder::open(model_dir, &encoder_options).and_then(|mut e| e.encode(SAMPLE_SENTENCES));
        let embeddings = match result {
            Ok(e) => e,
            Err(e) => {
                outln!("    {name:<12} could not run the graph: {e}");
                failures.push(name);
                continue;
            }
        };
        let (max_diff, min_cos) = agreement(&embeddings.values, &reference, dim);
        let ok = match options.precision {
            Precision::F32 => max_diff <= FP32_MAX_ABS_DIFF,
            Precision::F16 => min_cos >= FP16_MIN_COSINE,
        };
        outln!(
            "    {name:<12} max |diff| {max_diff:.2e}, min cosine {min_cos:.6}  {}",
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            failures.push(name);
        }
    }
    anyhow::ensure!(
        failures.is_empty(),
        "verification failed for {} (limits: fp32 max |diff| <= {FP32_MAX_ABS_DIFF:e}, fp16 min cosine >= {FP16_MIN_COSINE})",
        failures.join(" and ")
    );
    Ok(())
}

/// Sentence embeddings of the samples by the libtorch encoder, in f32, row-major.
fn torch_reference(model_dir: &Path, report: &ExportReport) -> anyhow::Result<Vec<f32>> {
    let dir = ModelDir::new(model_dir);
    let config = dir.config()?;
    let arch = Architecture::from_config(&config, &model_dir.join("config.json"))?;
    let info = ModelInfo::read(&report.path)?;
    let tokenizer = simcse_runtime::tokenize::SentenceTokenizer::load(model_dir, &config, info.max_length)?;
    let tokens = tokenizer.tokenize(SAMPLE_SENTENCES)?;
    let batch = Batch::pad(&tokens.iter().collect::<Vec<_>>(), tokenizer.pad_id);
    let shape = [batch.size as i64, batch.seq as i64];
    let ids = Tensor::from_slice(&batch.input_ids).view(shape);
    let mask = Tensor::from_slice(&batch.attention_mask).view(shape);
    let types = Tensor::from_slice(&batch.token_type_ids).view(shape);

    let mut vs = nn::VarStore::new(Device::Cpu);
    let encoder = TorchEncoder::new(&vs.root(), &arch, report.pooler == simcse_converters::Pooler::Cls);
    load_weights(&mut vs, &dir.weights(), arch.weight_prefixes())?;
    let embedding = tch::no_grad(|| {
        let states = encoder.forward(&ids, &mask, arch.uses_token_types().then_some(&types), false);
        let pooled = pool(report.pooler, &states, &mask, encoder.pooler_dense());
        if report.normalize {
            let norm = pooled.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12);
            pooled / norm
        } else {
            pooled
        }
    });
    Ok(Vec::<f32>::try_from(embedding.to_kind(Kind::Float).flatten(0, -1))?)
}
