//! SimCSE's poolers (`models.py`), GPT-2's position-weighted mean and decoders' last token, in f32, over the hidden
//! states of [`crate::encode`]: `states[0]` the embeddings' output, `states[i]` layer i's.

use crate::ops::{Linear, Ops};
use crate::plain::{masked_mean, position_weighted_mean};
use simcse_core::Pooler;

/// BERT's pooler layer, which `cls` runs [CLS] through (SimCSE's MLP after `--simcse-to-hf`).
pub fn pooler_dense(hidden: usize) -> Linear {
    Linear::new("pooler.dense", hidden, hidden)
}

/// The sentence embedding [batch, hidden] in f32; `mask` is the [batch, seq] 0/1 input.
pub fn pool<O: Ops + ?Sized>(ops: &mut O, pooler: Pooler, states: &[O::Value], mask: &O::Value, hidden: usize) -> Result<O::Value, O::Error> {
    let last = states.len() - 1;
    let state = |ops: &mut O, i: usize| ops.to_f32(&states[i]);
    let mask = ops.mask_to_f32(mask);
    Ok(match pooler {
        Pooler::ClsBeforePooler => {
            let h = state(ops, last);
            ops.first_token(&h)
        }
        Pooler::Cls => {
            let h = state(ops, last);
            let cls = ops.first_token(&h);
            let y = ops.linear_f32(&cls, &pooler_dense(hidden))?;
            ops.tanh(&y)
        }
        Pooler::Avg => {
            let h = state(ops, last);
            masked_mean(ops, &h, &mask)
        }
        Pooler::AvgTop2 | Pooler::AvgFirstLast => {
            let other = if pooler == Pooler::AvgTop2 { last.saturating_sub(1) } else { 1.min(last) };
            let (a, b) = (state(ops, last), state(ops, other));
            let sum = ops.add(&a, &b);
            let mean = ops.scale_f32(&sum, 0.5);
            masked_mean(ops, &mean, &mask)
        }
        Pooler::Wavg => {
            let h = state(ops, last);
            position_weighted_mean(ops, &h, &mask)
        }
        Pooler::Last => {
            let h = state(ops, last);
            ops.last_token(&h, &mask)
        }
    })
}
