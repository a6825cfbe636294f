//! A Llama-family decoder as transformers' `LlamaModel`: pre-RMSNorm blocks, rotary positions
//! on the queries and keys, grouped-query causal attention, and the gated MLP
//! down(silu(gate(x)) * up(x)). Parameter names included.
//!
//! Llama trains without dropout; SimCSE's positive pairs are two dropout masks of the same
//! sentence, so in training this model drops out as BERT does (`DROPOUT` on each block's two
//! outputs and on the attention probabilities, not on the embeddings' rows).

use crate::ops::{Attention, Linear, Norm, Ops, Rope, Table};
use crate::{Inputs, DROPOUT};
use simcse_core::architecture::LlamaSpec;

/// As `output_hidden_states`: the embeddings, the residual stream after each block, and the
/// final RMSNorm's output in place of the last block's.
pub fn encode<O: Ops + ?Sized>(ops: &mut O, spec: &LlamaSpec, inputs: &Inputs<O::Value>) -> Result<Vec<O::Value>, O::Error> {
    let x = ops.embedding(inputs.ids, &Table::new("embed_tokens.weight", spec.vocab, spec.hidden))?;
    let mask = ops.attention_mask(inputs.mask, true);
    let mut states = vec![x];
    for layer in 0..spec.layers {
        let block = Block { spec, prefix: format!("layers.{layer}") };
        let x = block.forward(ops, states.last().expect("the embeddings' output"), &mask)?;
        states.push(x);
    }
    let last = states.last_mut().expect("the embeddings' output");
    *last = ops.rms_norm(last, &Norm::new("norm", spec.hidden, spec.eps))?;
    Ok(states)
}

/// One decoder layer, `{prefix}.self_attn` and `{prefix}.mlp`.
struct Block<'a> {
    spec: &'a LlamaSpec,
    prefix: String,
}

impl Block<'_> {
    fn projection(&self, name: &str, inputs: usize, outputs: usize, bias: bool) -> Linear {
        let name = format!("{}.{name}", self.prefix);
        if bias {
            Linear::new(name, inputs, outputs)
        } else {
            Linear::without_bias(name, inputs, outputs)
        }
    }

    fn norm(&self, name: &str) -> Norm {
        Norm::new(format!("{}.{name}", self.prefix), self.spec.hidden, self.spec.eps)
    }

    /// x + attention(norm(x)), then that + mlp(norm(that)).
    fn forward<O: Ops + ?Sized>(&self, ops: &mut O, x: &O::Value, mask: &O::Mask) -> Result<O::Value, O::Error> {
        let normed = ops.rms_norm(x, &self.norm("input_layernorm"))?;
        let attended = self.attention(ops, &normed, mask)?;
        let attended = ops.dropout(&attended, DROPOUT);
        let x = ops.add(x, &attended);
        let normed = ops.rms_norm(&x, &self.norm("post_attention_layernorm"))?;
        let mlp = self.mlp(ops, &normed)?;
        let mlp = ops.dropout(&mlp, DROPOUT);
        Ok(ops.add(&x, &mlp))
    }

    fn attention<O: Ops + ?Sized>(&self, ops: &mut O, x: &O::Value, mask: &O::Mask) -> Result<O::Value, O::Error> {
        let s = self.spec;
        let (queries, keys) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
        let bias = s.attention_bias;
        let input = ops.linear_input(x);
        let q = ops.linear(&input, &self.projection("self_attn.q_proj", s.hidden, queries, bias))?;
        let k = ops.linear(&input, &self.projection("self_attn.k_proj", s.hidden, keys, bias))?;
        let v = ops.linear(&input, &self.projection("self_attn.v_proj", s.hidden, keys, bias))?;
        let q = ops.rotary(&q, &Rope { heads: s.heads, head_dim: s.head_dim, base: s.rope_theta });
        let k = ops.rotary(&k, &Rope { heads: s.kv_heads, head_dim: s.head_dim, base: s.rope_theta });
        let attention = Attention { heads: s.heads, kv_heads: s.kv_heads, hidden: queries, dropout: DROPOUT };
        let context = ops.attention(&q, &k, &v, mask, &attention);
        ops.linear(&context, &self.projection("self_attn.o_proj", queries, s.hidden, bias))
    }

    fn mlp<O: Ops + ?Sized>(&self, ops: &mut O, x: &O::Value) -> Result<O::Value, O::Error> {
        let s = self.spec;
        let input = ops.linear_input(x);
        let gate = ops.linear(&input, &self.projection("mlp.gate_proj", s.hidden, s.intermediate, s.mlp_bias))?;
        let gate = ops.activation(&gate, s.activation);
        let up = ops.linear(&input, &self.projection("mlp.up_proj", s.hidden, s.intermediate, s.mlp_bias))?;
        let gated = ops.mul(&gate, &up);
        ops.linear(&gated, &self.projection("mlp.down_proj", s.intermediate, s.hidden, s.mlp_bias))
    }
}
