//! BERT and RoBERTa as Hugging Face's `BertModel` / `RobertaModel` (post-LayerNorm blocks),
//! parameter names included.

use crate::ops::{Attention, Embeddings, Linear, Norm, Ops, PositionIds, Qkv, Table, TokenTypes};
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
    let attention = Attention { heads: spec.heads, hidden: h, dropout: DROPOUT };
    for layer in 0..spec.layers {
        let p = format!("encoder.layer.{layer}");
        let x = ops.share(states.last().expect("the embeddings' output"));
        let qkv = Qkv::Separate {
            query: Linear::new(format!("{p}.attention.self.query"), h, h),
            key: Linear::new(format!("{p}.attention.self.key"), h, h),
            value: Linear::new(format!("{p}.attention.self.value"), h, h),
        };
        let context = ops.self_attention(&x, &qkv, &mask, &attention)?;
        let out = Linear::new(format!("{p}.attention.output.dense"), h, h);
        let x = ops.linear_add_norm(&context, &out, &x, &Norm::new(format!("{p}.attention.output.LayerNorm"), h, spec.eps), DROPOUT)?;
        let inner = Linear::new(format!("{p}.intermediate.dense"), h, spec.intermediate);
        let inner = ops.linear_activation(&x, &inner, spec.activation)?;
        let out = Linear::new(format!("{p}.output.dense"), spec.intermediate, h);
        let x = ops.linear_add_norm(&inner, &out, &x, &Norm::new(format!("{p}.output.LayerNorm"), h, spec.eps), DROPOUT)?;
        states.push(x);
    }
    Ok(states)
}
