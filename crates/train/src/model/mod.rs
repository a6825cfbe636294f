//! BERT, RoBERTa and GPT-2 on libtorch, with Hugging Face's parameter names, and SimCSE's
//! poolers. The forward pass is the reference the exported ONNX graphs are checked against,
//! and what the trainer trains.

mod bert;
mod gpt2;
mod load;
mod pooling;

pub use load::{init_like_huggingface, load_weights, load_weights_with, LoadSpec};
pub use bert::layer_norm;
pub use pooling::pool;

use crate::half_linear::{half_linear, Half};
use simcse_core::architecture::Architecture;
use tch::nn::Module;
use tch::{nn, Tensor};

/// How the layers' matrix products run: f32, or through the hand-written half-precision
/// linear (activations of the products in half, everything else in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    F32,
    Half(Half),
}

/// An `nn::Linear` ([out, in] weight) in the given precision.
pub(crate) fn linear(layer: &nn::Linear, x: &Tensor, precision: Compute) -> Tensor {
    match precision {
        Compute::F32 => layer.forward(x),
        Compute::Half(half) => half_linear(x, &layer.ws, layer.bs.as_ref(), half),
    }
}

/// (1 - mask) * MASKED is added to attention scores: exp() of it is 0 in f32.
pub(crate) const MASKED: f64 = -1e9;

pub enum Encoder {
    Bert(bert::Bert),
    Gpt2(gpt2::Gpt2),
}

impl Encoder {
    /// Creates the encoder's variables under `p` (randomly initialized; see `load_weights`).
    /// `with_pooler`: BERT's pooler (dense + tanh over [CLS]), which the `cls` pooler uses.
    pub fn new(p: &nn::Path, arch: &Architecture, with_pooler: bool) -> Encoder {
        match arch {
            Architecture::Bert(spec) => Encoder::Bert(bert::Bert::new(p, spec, with_pooler)),
            Architecture::Gpt2(spec) => Encoder::Gpt2(gpt2::Gpt2::new(p, spec)),
        }
    }

    /// The hidden states [batch, seq, hidden]: the embeddings' output, then each layer's
    /// (for GPT-2 the last is after the final LayerNorm, as in Hugging Face).
    /// `train` turns dropout on.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, token_types: Option<&Tensor>, train: bool) -> Vec<Tensor> {
        match self {
            Encoder::Bert(m) => m.forward(ids, mask, token_types, train),
            Encoder::Gpt2(m) => m.forward(ids, mask, train),
        }
    }

    /// BERT's pooler layer, where it has one.
    pub fn pooler_dense(&self) -> Option<&nn::Linear> {
        match self {
            Encoder::Bert(m) => m.pooler.as_ref(),
            Encoder::Gpt2(_) => None,
        }
    }

    pub fn set_precision(&mut self, precision: Compute) {
        match self {
            Encoder::Bert(m) => m.precision = precision,
            Encoder::Gpt2(m) => m.precision = precision,
        }
    }

    pub fn precision(&self) -> Compute {
        match self {
            Encoder::Bert(m) => m.precision,
            Encoder::Gpt2(m) => m.precision,
        }
    }
}

/// [batch, 1, 1, seq]: 0 for tokens, MASKED for padding.
pub(crate) fn padding_bias(mask: &Tensor) -> Tensor {
    let mask = mask.to_kind(tch::Kind::Float);
    let inverted: Tensor = 1.0 - mask;
    (inverted * MASKED).unsqueeze(1).unsqueeze(1)
}

/// The additive attention mask in the kind the attention runs in: f32, or the half type. In
/// half, MASKED becomes fp16's lowest finite value rather than -inf, which would make a row whose
/// keys are all masked NaN (exp() of it is 0 all the same).
pub(crate) fn bias_in(bias: Tensor, precision: Compute) -> Tensor {
    match precision {
        Compute::F32 => bias,
        Compute::Half(half) => bias.clamp_min(-65504.0).to_kind(half.kind()),
    }
}

/// `x` in the kind the layers' products take: one cast shared by the products that read the
/// same input (query, key and value), where each casting it would keep a copy for backward.
pub(crate) fn product_input(x: &Tensor, precision: Compute) -> Tensor {
    match precision {
        Compute::F32 => x.shallow_clone(),
        Compute::Half(half) => x.to_kind(half.kind()),
    }
}

/// Multi-head scaled dot-product attention of [batch, seq, hidden] projections, through
/// PyTorch's fused kernels (as transformers' default "sdpa" attention); `bias` in the
/// projections' kind (`bias_in`).
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor, heads: i64, dropout: f64, train: bool) -> Tensor {
    let (batch, seq, hidden) = q.size3().expect("[batch, seq, hidden]");
    let head_dim = hidden / heads;
    let split = |x: &Tensor| x.view([batch, seq, heads, head_dim]).transpose(1, 2);
    let dropout = if train { dropout } else { 0.0 };
    Tensor::scaled_dot_product_attention(&split(q), &split(k), &split(v), Some(bias), dropout, false, None, false)
        .transpose(1, 2)
        .contiguous()
        .view([batch, seq, hidden])
}
