//! MPNet as transformers' `MPNetModel`: BERT's post-LayerNorm blocks with RoBERTa's positions
//! and no token types, and a relative-position bias on the attention scores that every layer
//! shares. Parameter names included.

use crate::bert::{BlockNames, PostNormBlock};
use crate::ops::{Embeddings, Norm, Ops, PositionIds, RelativePositionBias, Table};
use crate::{Inputs, DROPOUT};
use simcse_core::architecture::MpnetSpec;

/// transformers' `MPNetEncoder.compute_position_bias` computes 32 buckets whatever the
/// config's `relative_attention_num_buckets` (the table's rows) says, up to distance 128.
const BUCKETS: usize = 32;
const MAX_DISTANCE: usize = 128;

pub fn encode<O: Ops + ?Sized>(ops: &mut O, spec: &MpnetSpec, inputs: &Inputs<O::Value>) -> Result<Vec<O::Value>, O::Error> {
    let h = spec.hidden;
    let embeddings = Embeddings {
        ids: inputs.ids,
        words: Table::new("embeddings.word_embeddings.weight", spec.vocab, h),
        positions: Table::new("embeddings.position_embeddings.weight", spec.max_positions, h),
        position_ids: PositionIds::AfterPadding { pad: spec.pad_token_id },
        token_types: None,
        norm: Some(Norm::new("embeddings.LayerNorm", h, spec.eps)),
        dropout: DROPOUT,
    };
    let mut states = vec![ops.embeddings(&embeddings)?];
    let bias = RelativePositionBias {
        table: Table::new("encoder.relative_attention_bias.weight", spec.relative_buckets, spec.heads),
        buckets: BUCKETS,
        max_distance: MAX_DISTANCE,
        longest: spec.max_positions,
    };
    let mask = ops.attention_mask(inputs.mask, false);
    let mask = ops.add_position_bias(mask, inputs.ids, &bias)?;
    let block = PostNormBlock { hidden: h, intermediate: spec.intermediate, heads: spec.heads, eps: spec.eps, activation: spec.activation };
    for layer in 0..spec.layers {
        let p = format!("encoder.layer.{layer}");
        let names = BlockNames {
            query: format!("{p}.attention.attn.q"),
            key: format!("{p}.attention.attn.k"),
            value: format!("{p}.attention.attn.v"),
            attention_output: format!("{p}.attention.attn.o"),
            attention_norm: format!("{p}.attention.LayerNorm"),
            prefix: p,
        };
        let x = block.forward(ops, states.last().expect("the embeddings' output"), &mask, &names)?;
        states.push(x);
    }
    Ok(states)
}
