//! The libtorch forward of a model directory as the exported ONNX graph computes it: the
//! reference `simcse export --verify` compares ONNX Runtime and tract against.

use crate::model::{load_weights, Encoder as TorchEncoder};
use simcse_core::architecture::Architecture;
use simcse_core::ModelDir;
use simcse_export::ExportReport;
use simcse_core::batch::Batch;
use simcse_core::EncoderMetadata;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Sentence embeddings of `sentences` by the libtorch encoder of `model_dir`, pooled and
/// normalized as the exported graph of `report` is, in f32, row-major.
pub fn sentence_embeddings(model_dir: &Path, report: &ExportReport, sentences: &[&str]) -> anyhow::Result<Vec<f32>> {
    let dir = ModelDir::new(model_dir);
    let config = dir.config()?;
    let arch = Architecture::from_config(&config, &model_dir.join("config.json"))?;
    let info = EncoderMetadata::read(&report.path)?;
    let tokenizer = simcse_core::tokenize::SentenceTokenizer::for_pooler(model_dir, &config, info.max_length, report.pooler)?;
    let tokens = tokenizer.tokenize(sentences)?;
    let batch = Batch::pad(&tokens.iter().collect::<Vec<_>>(), tokenizer.pad_id);
    let shape = [batch.size as i64, batch.seq as i64];
    let ids = Tensor::from_slice(&batch.input_ids).view(shape);
    let mask = Tensor::from_slice(&batch.attention_mask).view(shape);
    let types = Tensor::from_slice(&batch.token_type_ids).view(shape);

    let mut vs = nn::VarStore::new(Device::Cpu);
    let encoder = TorchEncoder::new(&vs.root(), &arch, report.pooler == simcse_core::Pooler::Cls);
    load_weights(&mut vs, &dir.weights(), arch.weight_prefixes())?;
    let embedding = tch::no_grad(|| {
        let states = encoder.forward(&ids, &mask, arch.uses_token_types().then_some(&types), false);
        let pooled = encoder.pool(report.pooler, &states, &mask);
        if report.normalize {
            let norm = pooled.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12);
            pooled / norm
        } else {
            pooled
        }
    });
    Ok(Vec::<f32>::try_from(embedding.to_kind(Kind::Float).flatten(0, -1))?)
}
