//! GPT-2 as Hugging Face's `GPT2Model`: pre-LayerNorm blocks, causal attention, learned
//! positions, `Conv1D` projections (weights stored [in, out]), parameter names included.
//!
//! Written as "add the residual, then normalize for whatever reads next", so that each
//! residual add and the LayerNorm after it are one step an engine can fuse.

use crate::ops::{Attention, Embeddings, Linear, Norm, Ops, PositionIds, Qkv, Table};
use crate::{Inputs, DROPOUT};
use simcse_core::architecture::Gpt2Spec;

/// As `output_hidden_states`: the embeddings, the residual stream after each block, and the
/// final LayerNorm's output in place of the last block's.
pub fn encode<O: Ops + ?Sized>(ops: &mut O, spec: &Gpt2Spec, inputs: &Inputs<O::Value>) -> Result<Vec<O::Value>, O::Error> {
    let h = spec.hidden;
    let embeddings = Embeddings {
        ids: inputs.ids,
        words: Table::new("wte.weight", spec.vocab, h),
        positions: Table::new("wpe.weight", spec.positions, h),
        position_ids: PositionIds::FromZero,
        token_types: None,
        norm: None,
        dropout: DROPOUT,
    };
    let x = ops.embeddings(&embeddings)?;
    let mask = ops.attention_mask(inputs.mask, true);
    let attention = Attention { heads: spec.heads, kv_heads: spec.heads, hidden: h, dropout: DROPOUT };
    // The LayerNorm that opens block `layer`; after the last block, the final one.
    let block_norm = |layer: usize| {
        let name = if layer < spec.layers { format!("h.{layer}.ln_1") } else { "ln_f".to_string() };
        Norm::new(name, h, spec.eps)
    };
    let mut normed = ops.layer_norm(&x, &block_norm(0))?;
    let mut residual = ops.share(&x);
    let mut states = vec![x];
    for layer in 0..spec.layers {
        let p = format!("h.{layer}");
        let qkv = Qkv::Packed(Linear::conv1d(format!("{p}.attn.c_attn"), h, 3 * h));
        let context = ops.self_attention(&normed, &qkv, &mask, &attention)?;
        let proj = Linear::conv1d(format!("{p}.attn.c_proj"), h, h);
        let (r, m) = ops.linear_add_then_norm(&context, &proj, &residual, &Norm::new(format!("{p}.ln_2"), h, spec.eps), DROPOUT)?;
        let inner = ops.linear_activation(&m, &Linear::conv1d(format!("{p}.mlp.c_fc"), h, spec.inner), spec.activation)?;
        let proj = Linear::conv1d(format!("{p}.mlp.c_proj"), spec.inner, h);
        (residual, normed) = ops.linear_add_then_norm(&inner, &proj, &r, &block_norm(layer + 1), DROPOUT)?;
        states.push(ops.share(&residual));
    }
    *states.last_mut().expect("the embeddings' output") = normed;
    Ok(states)
}
