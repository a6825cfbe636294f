//! BERT and RoBERTa as Hugging Face's `BertModel` / `RobertaModel` (post-LayerNorm blocks),
//! parameter names included.

use crate::ops::{Activation, Attention, Embeddings, Linear, Norm, Ops, PositionIds, Qkv, Table, TokenTypes};
use crate::{Inputs, DROPOUT};
use simcse_core::architecture::BertSpec;

pub fn encode<O: Ops + ?Sized>(ops: &mut O, spec: &BertSpec, inputs: &Inputs<O::Value>) -> Result<Vec<O::Value>, O::Error> {
    let h = spec.hidden;
    let types = match inputs.token_types {
        Some(ids) => TokenTypes::Ids(ids),
        None => TokenTypes::AllZero,
    };
    let embeddings = Embeddings {
        ids: inputs.ids,
        words: Table::new("embeddings.word_embeddings.weight", spec.vocab, h),
        positions: Table::new("embeddings.position_embeddings.weight", spec.max_positions, h),
        position_ids: if spec.roberta { PositionIds::AfterPadding { pad: spec.pad_token_id } } else { PositionIds::FromZero },
        token_types: Some((Table::new("embeddings.token_type_embeddings.weight", spec.type_vocab, h), types)),
        norm: Some(Norm::new("embeddings.LayerNorm", h, spec.eps)),
        dropout: DROPOUT,
    };
    let mut states = vec![ops.embeddings(&embeddings)?];
    let mask = ops.attention_mask(inputs.mask, false);
    let block = PostNormBlock { hidden: h, intermediate: spec.intermediate, heads: spec.heads, eps: spec.eps, activation: spec.activation };
    for layer in 0..spec.layers {
        let p = format!("encoder.layer.{layer}");
        let names = BlockNames {
            query: format!("{p}.attention.self.query"),
            key: format!("{p}.attention.self.key"),
            value: format!("{p}.attention.self.value"),
            attention_output: format!("{p}.attention.output.dense"),
            attention_norm: format!("{p}.attention.output.LayerNorm"),
            prefix: p,
        };
        let x = block.forward(ops, states.last().expect("the embeddings' output"), &mask, &names)?;
        states.push(x);
    }
    Ok(states)
}

/// Where one block's attention weights are (the feed-forward ones are `{prefix}.intermediate.dense`,
/// `{prefix}.output.dense` and `{prefix}.output.LayerNorm` in BERT and MPNet alike).
pub(crate) struct BlockNames {
    pub prefix: String,
    pub query: String,
    pub key: String,
    pub value: String,
    pub attention_output: String,
    pub attention_norm: String,
}

/// BERT's post-LayerNorm block: x = LN(x + attention(x)), then x = LN(x + FFN(x)).
pub(crate) struct PostNormBlock {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub eps: f32,
    pub activation: Activation,
}

impl PostNormBlock {
    pub fn forward<O: Ops + ?Sized>(&self, ops: &mut O, x: &O::Value, mask: &O::Mask, names: &BlockNames) -> Result<O::Value, O::Error> {
        let (h, p) = (self.hidden, &names.prefix);
        let qkv = Qkv::Separate {
            query: Linear::new(names.query.clone(), h, h),
            key: Linear::new(names.key.clone(), h, h),
            value: Linear::new(names.value.clone(), h, h),
        };
        let attention = Attention { heads: self.heads, kv_heads: self.heads, hidden: h, dropout: DROPOUT };
        let context = ops.self_attention(x, &qkv, mask, &attention)?;
        let out = Linear::new(names.attention_output.clone(), h, h);
        let x = ops.linear_add_norm(&context, &out, x, &Norm::new(names.attention_norm.clone(), h, self.eps), DROPOUT)?;
        let inner = Linear::new(format!("{p}.intermediate.dense"), h, self.intermediate);
        let inner = ops.linear_activation(&x, &inner, self.activation)?;
        let out = Linear::new(format!("{p}.output.dense"), self.intermediate, h);
        ops.linear_add_norm(&inner, &out, &x, &Norm::new(format!("{p}.output.LayerNorm"), h, self.eps), DROPOUT)
    }
}
