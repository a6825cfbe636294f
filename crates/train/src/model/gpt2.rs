//! GPT-2 as Hugging Face's `GPT2Model`: pre-LayerNorm blocks, causal attention, learned
//! positions, Conv1D layers (weights stored [in, out]).

use super::bert::{activation, layer_norm};
use super::{attention, bias_in, padding_bias, Compute, MASKED};
use crate::half_linear::half_linear;
use simcse_core::architecture::Gpt2Spec;
use tch::nn::{self, Init, Module};
use tch::{Kind, Tensor};

const DROPOUT: f64 = 0.1;

/// GPT-2's `Conv1D`: x W + b with W [in, out].
struct Conv1d {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1d {
    fn new(p: nn::Path, inputs: usize, outputs: usize) -> Conv1d {
        Conv1d {
            weight: p.var("weight", &[inputs as i64, outputs as i64], Init::Randn { mean: 0.0, stdev: 0.02 }),
            bias: p.var("bias", &[outputs as i64], Init::Const(0.0)),
        }
    }

    fn forward(&self, x: &Tensor, precision: Compute) -> Tensor {
        match precision {
            Compute::F32 => x.matmul(&self.weight) + &self.bias,
            // The half linear takes [out, in]: the transposed view, whose gradient lands in `weight`.
            Compute::Half(half) => half_linear(x, &self.weight.tr(), Some(&self.bias), half),
        }
    }
}

struct Block {
    norm1: nn::LayerNorm,
    qkv: Conv1d,
    proj: Conv1d,
    norm2: nn::LayerNorm,
    fc: Conv1d,
    fc_proj: Conv1d,
}

pub struct Gpt2 {
    spec: Gpt2Spec,
    tokens: nn::Embedding,
    positions: nn::Embedding,
    blocks: Vec<Block>,
    final_norm: nn::LayerNorm,
    pub precision: Compute,
}

impl Gpt2 {
    pub fn new(p: &nn::Path, spec: &Gpt2Spec) -> Gpt2 {
        let h = spec.hidden as i64;
        let blocks = (0..spec.layers)
            .map(|i| {
                let b = p / "h" / i;
                Block {
                    norm1: layer_norm(&b / "ln_1", h, spec.eps),
                    qkv: Conv1d::new(&b / "attn" / "c_attn", spec.hidden, 3 * spec.hidden),
                    proj: Conv1d::new(&b / "attn" / "c_proj", spec.hidden, spec.hidden),
                    norm2: layer_norm(&b / "ln_2", h, spec.eps),
                    fc: Conv1d::new(&b / "mlp" / "c_fc", spec.hidden, spec.inner),
                    fc_proj: Conv1d::new(&b / "mlp" / "c_proj", spec.inner, spec.hidden),
                }
            })
            .collect();
        Gpt2 {
            spec: spec.clone(),
            tokens: nn::embedding(p / "wte", spec.vocab as i64, h, Default::default()),
            positions: nn::embedding(p / "wpe", spec.positions as i64, h, Default::default()),
            blocks,
            final_norm: layer_norm(p / "ln_f", h, spec.eps),
            precision: Compute::F32,
        }
    }

    /// As `output_hidden_states`: the embeddings, each block's input after it, and the final
    /// LayerNorm's output in place of the last block's.
    // `x = x + ...`, not `x += ...`: an in-place add would change the states already kept
    // (they share storage with `x`) and break autograd.
    #[allow(clippy::assign_op_pattern)]
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Vec<Tensor> {
        let seq = ids.size()[1];
        let device = ids.device();
        let positions = Tensor::arange(seq, (Kind::Int64, device)).unsqueeze(0);
        let mut x = (self.tokens.forward(ids) + self.positions.forward(&positions)).dropout(DROPOUT, train);
        let future = Tensor::ones([seq, seq], (Kind::Float, device)).triu(1) * MASKED;
        let p = self.precision;
        let bias = bias_in(padding_bias(mask) + future, p);
        let mut states = vec![x.shallow_clone()];
        for block in &self.blocks {
            let a = block.norm1.forward(&x);
            let qkv = block.qkv.forward(&a, p).split(self.spec.hidden as i64, -1);
            let context = attention(&qkv[0], &qkv[1], &qkv[2], &bias, self.spec.heads as i64, DROPOUT, train);
            x = x + block.proj.forward(&context, p).dropout(DROPOUT, train);
            let m = activation(&block.fc.forward(&block.norm2.forward(&x), p), self.spec.activation);
            x = x + block.fc_proj.forward(&m, p).dropout(DROPOUT, train);
            states.push(x.shallow_clone());
        }
        *states.last_mut().unwrap() = self.final_norm.forward(&x);
        states
    }
}
