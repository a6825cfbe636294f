//! SimCSE's auxiliary masked-language-modelling objective: BERT's masking (15% of the tokens;
//! of those 80% [MASK], 10% a random token, 10% unchanged) and the MLM heads of BERT and
//! RoBERTa, under SimCSE's names (`lm_head.*`).

use super::model::{product, Compute};
use simcse_core::architecture::BertSpec;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Masks `ids` [batch, seq] where `maskable` (not special, not padding) with probability `p`.
/// Returns (masked ids, labels with -100 where nothing is to be predicted). Uses torch's RNG.
pub fn mask_tokens(ids: &Tensor, maskable: &Tensor, p: f64, mask_id: i64, vocab: i64) -> (Tensor, Tensor) {
    let device = ids.device();
    let probability = Tensor::full(ids.size(), p, (Kind::Float, device)) * maskable.to_kind(Kind::Float);
    let masked = probability.bernoulli().to_kind(Kind::Bool);
    let labels = ids.where_self(&masked, &Tensor::from(-100i64).to_device(device));
    let replaced = Tensor::full(ids.size(), 0.8, (Kind::Float, device)).bernoulli().to_kind(Kind::Bool).logical_and(&masked);
    let mut inputs = ids.where_self(&replaced.logical_not(), &Tensor::from(mask_id).to_device(device));
    let random = Tensor::full(ids.size(), 0.5, (Kind::Float, device))
        .bernoulli()
        .to_kind(Kind::Bool)
        .logical_and(&masked)
        .logical_and(&replaced.logical_not());
    let words = Tensor::randint(vocab, ids.size(), (Kind::Int64, device));
    inputs = words.where_self(&random, &inputs);
    (inputs, labels)
}

/// BERT's `BertLMPredictionHead` (dense, gelu, LayerNorm, decoder + bias) or RoBERTa's
/// `RobertaLMHead` (dense, gelu, layer_norm, decoder + bias).
pub struct MlmHead {
    dense: nn::Linear,
    norm: nn::LayerNorm,
    decoder: nn::Linear,
}

impl MlmHead {
    pub fn new(p: &nn::Path, spec: &BertSpec) -> MlmHead {
        let (h, v) = (spec.hidden as i64, spec.vocab as i64);
        let lm = p / "lm_head";
        let (dense, norm) = if spec.roberta {
            (lm.clone() / "dense", lm.clone() / "layer_norm")
        } else {
            (&lm / "transform" / "dense", &lm / "transform" / "LayerNorm")
        };
        let decoder = nn::Linear {
            ws: (&lm / "decoder").var("weight", &[v, h], nn::Init::Randn { mean: 0.0, stdev: 0.02 }),
            bs: Some(lm.var("bias", &[v], nn::Init::Const(0.0))),
        };
        MlmHead {
            dense: nn::linear(dense, h, h, Default::default()),
            norm: super::model::layer_norm(norm, h, spec.eps),
            decoder,
        }
    }

    /// Vocabulary logits for every position of `hidden` [batch, seq, hidden].
    pub fn forward(&self, hidden: &Tensor, precision: Compute) -> Tensor {
        let linear = |layer: &nn::Linear, x: &Tensor| product(x, &layer.ws, layer.bs.as_ref(), precision);
        let x = linear(&self.dense, hidden).gelu("none");
        let x = self.norm.forward(&x.to_kind(Kind::Float));
        linear(&self.decoder, &x)
    }
}

/// The names of a Hugging Face checkpoint's MLM head for our variables: BERT checkpoints keep
/// it under `cls.predictions.` (its decoder tied to the word embeddings); RoBERTa's under
/// `lm_head.` as SimCSE does.
pub fn checkpoint_name(ours: &str, roberta: bool) -> Option<String> {
    let rest = ours.strip_prefix("lm_head.")?;
    if roberta {
        return Some(ours.to_string());
    }
    Some(match rest {
        "bias" => "cls.predictions.bias".to_string(),
        other => format!("cls.predictions.{other}"),
    })
}
