//! BERT and RoBERTa as Hugging Face's `BertModel` / `RobertaModel` (post-LayerNorm).

use super::{attention, bias_in, linear, padding_bias, product_input, Compute};
use simcse_core::architecture::{Activation, BertSpec};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Hugging Face's dropout for BERT-style models (hidden and attention).
const DROPOUT: f64 = 0.1;

pub(crate) fn activation(x: &Tensor, activation: Activation) -> Tensor {
    match activation {
        Activation::GeluErf => x.gelu("none"),
        Activation::GeluTanh => x.gelu("tanh"),
        Activation::Relu => x.relu(),
    }
}

pub fn layer_norm(p: nn::Path, hidden: i64, eps: f32) -> nn::LayerNorm {
    nn::layer_norm(p, vec![hidden], nn::LayerNormConfig { eps: eps as f64, ..Default::default() })
}

struct Layer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attention_out: nn::Linear,
    attention_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_norm: nn::LayerNorm,
}

pub struct Bert {
    spec: BertSpec,
    words: nn::Embedding,
    positions: nn::Embedding,
    token_types: nn::Embedding,
    embeddings_norm: nn::LayerNorm,
    layers: Vec<Layer>,
    pub pooler: Option<nn::Linear>,
    pub precision: Compute,
}

impl Bert {
    pub fn new(p: &nn::Path, spec: &BertSpec, with_pooler: bool) -> Bert {
        let h = spec.hidden as i64;
        let e = p / "embeddings";
        let dense = |p: nn::Path, i: usize, o: usize| nn::linear(p, i as i64, o as i64, Default::default());
        let layers = (0..spec.layers)
            .map(|i| {
                let l = p / "encoder" / "layer" / i;
                Layer {
                    query: dense(&l / "attention" / "self" / "query", spec.hidden, spec.hidden),
                    key: dense(&l / "attention" / "self" / "key", spec.hidden, spec.hidden),
                    value: dense(&l / "attention" / "self" / "value", spec.hidden, spec.hidden),
                    attention_out: dense(&l / "attention" / "output" / "dense", spec.hidden, spec.hidden),
                    attention_norm: layer_norm(&l / "attention" / "output" / "LayerNorm", h, spec.eps),
                    intermediate: dense(&l / "intermediate" / "dense", spec.hidden, spec.intermediate),
                    output: dense(&l / "output" / "dense", spec.intermediate, spec.hidden),
                    output_norm: layer_norm(&l / "output" / "LayerNorm", h, spec.eps),
                }
            })
            .collect();
        Bert {
            spec: spec.clone(),
            words: nn::embedding(&e / "word_embeddings", spec.vocab as i64, h, Default::default()),
            positions: nn::embedding(&e / "position_embeddings", spec.max_positions as i64, h, Default::default()),
            token_types: nn::embedding(&e / "token_type_embeddings", spec.type_vocab as i64, h, Default::default()),
            embeddings_norm: layer_norm(&e / "LayerNorm", h, spec.eps),
            layers,
            pooler: with_pooler.then(|| dense(p / "pooler" / "dense", spec.hidden, spec.hidden)),
            precision: Compute::F32,
        }
    }

    fn position_ids(&self, ids: &Tensor) -> Tensor {
        if self.spec.roberta {
            // create_position_ids_from_input_ids: padding_idx + running count of real tokens.
            let pad = self.spec.pad_token_id;
            let real = ids.ne(pad).to_kind(Kind::Int64);
            real.cumsum(1, Kind::Int64) * &real + pad
        } else {
            let seq = ids.size()[1];
            Tensor::arange(seq, (Kind::Int64, ids.device())).unsqueeze(0)
        }
    }

    pub fn forward(&self, ids: &Tensor, mask: &Tensor, token_types: Option<&Tensor>, train: bool) -> Vec<Tensor> {
        let types = token_types.map(Tensor::shallow_clone).unwrap_or_else(|| ids.zeros_like());
        let x = self.words.forward(ids) + self.positions.forward(&self.position_ids(ids)) + self.token_types.forward(&types);
        let x = self.embeddings_norm.forward(&x).dropout(DROPOUT, train);
        let p = self.precision;
        let bias = bias_in(padding_bias(mask), p);
        let mut states = vec![x];
        for layer in &self.layers {
            let x = states.last().unwrap();
            let input = product_input(x, p);
            let context = attention(
                &linear(&layer.query, &input, p),
                &linear(&layer.key, &input, p),
                &linear(&layer.value, &input, p),
                &bias,
                self.spec.heads as i64,
                DROPOUT,
                train,
            );
            // The residual stream stays f32: half outputs are promoted when added to it.
            let x = layer.attention_norm.forward(&(linear(&layer.attention_out, &context, p).dropout(DROPOUT, train) + x));
            let inner = activation(&linear(&layer.intermediate, &x, p), self.spec.activation);
            let x = layer.output_norm.forward(&(linear(&layer.output, &inner, p).dropout(DROPOUT, train) + &x));
            states.push(x);
        }
        states
    }
}
