//! `simcse export --verify`: the exported graph, run by ONNX Runtime and by tract on sample
//! sentences, against the libtorch forward of the same weights. Only in builds with the `train`
//! feature: the reference is libtorch's.

use simcse_core::Precision;
use simcse_export::{ExportOptions, ExportReport, Optimize};
use simcse_runtime::similarity::agreement;
use simcse_runtime::{BackendKind, Encoder, EncoderOptions};
use std::path::Path;

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
    let reference = simcse_train::reference::sentence_embeddings(model_dir, report, SAMPLE_SENTENCES)?;
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
            Precision::F16 | Precision::Bf16 => min_cos >= FP16_MIN_COSINE,
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
