//! The model descriptions of `simcse-models` on libtorch: BERT, RoBERTa and GPT-2 with Hugging
//! Face's parameter names, and SimCSE's poolers. This forward is what the trainer trains and
//! the reference the exported ONNX graphs are checked against.

mod load;
mod torch_ops;

pub use load::{init_like_huggingface, load_weights, load_weights_with, LoadSpec};

use crate::half_linear::{half_linear, Half};
use simcse_core::architecture::Architecture;
use simcse_core::Pooler;
use std::collections::HashMap;
use tch::{nn, Kind, Tensor};
use torch_ops::{Torch, Variables};

/// How the layers' matrix products run: f32, or through the hand-written half-precision
/// linear (activations of the products in half, everything else in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    F32,
    Half(Half),
}

/// x Wᵀ + b for a [out, in] weight, in the given precision.
pub(crate) fn product(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, precision: Compute) -> Tensor {
    match precision {
        Compute::F32 => x.linear(weight, bias),
        Compute::Half(half) => half_linear(x, weight, bias, half),
    }
}

pub fn layer_norm(p: nn::Path, hidden: i64, eps: f32) -> nn::LayerNorm {
    nn::layer_norm(p, vec![hidden], nn::LayerNormConfig { eps: eps as f64, ..Default::default() })
}

/// An encoder's variables in a VarStore, and the architecture that reads them.
pub struct Encoder {
    arch: Architecture,
    /// Handles on the VarStore's variables, by Hugging Face name.
    variables: HashMap<String, Tensor>,
    pub precision: Compute,
}

impl Encoder {
    /// Creates the encoder's variables under `p` (randomly initialized; see `load_weights`):
    /// a first forward over one token creates each weight as the description asks for it.
    /// `with_pooler`: BERT's pooler (dense + tanh over [CLS]), which the `cls` pooler uses.
    pub fn new(p: &nn::Path, arch: &Architecture, with_pooler: bool) -> Encoder {
        let mut created = HashMap::new();
        tch::no_grad(|| {
            let ids = Tensor::zeros([1, 1], (Kind::Int64, p.device()));
            let mask = ids.ones_like();
            let mut ops = Torch { variables: Variables::Create { root: p, created: &mut created }, precision: Compute::F32, train: false };
            let inputs = simcse_models::Inputs { ids: &ids, mask: &mask, token_types: arch.uses_token_types().then_some(&ids) };
            let states = never_fails(simcse_models::encode(&mut ops, arch, &inputs));
            if with_pooler {
                let _ = never_fails(simcse_models::pool(&mut ops, Pooler::Cls, &states, &mask, arch.hidden()));
            }
        });
        Encoder { arch: arch.clone(), variables: created, precision: Compute::F32 }
    }

    fn ops(&self, train: bool) -> Torch<'_> {
        Torch { variables: Variables::Use(&self.variables), precision: self.precision, train }
    }

    /// The hidden states [batch, seq, hidden]: the embeddings' output, then each layer's
    /// (for GPT-2 the last is after the final LayerNorm, as in Hugging Face).
    /// `train` turns dropout on.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, token_types: Option<&Tensor>, train: bool) -> Vec<Tensor> {
        let inputs = simcse_models::Inputs { ids, mask, token_types };
        never_fails(simcse_models::encode(&mut self.ops(train), &self.arch, &inputs))
    }

    /// The pooled sentence embedding [batch, hidden] of `forward`'s states.
    pub fn pool(&self, pooler: Pooler, states: &[Tensor], mask: &Tensor) -> Tensor {
        never_fails(simcse_models::pool(&mut self.ops(false), pooler, states, mask, self.arch.hidden()))
    }

    pub fn set_precision(&mut self, precision: Compute) {
        self.precision = precision;
    }

    pub fn precision(&self) -> Compute {
        self.precision
    }
}

fn never_fails<T>(result: Result<T, std::convert::Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}
