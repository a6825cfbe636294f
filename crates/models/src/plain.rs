//! The compositions of [`Ops`] out of its primitives: the defaults, and what an engine falls
//! back to where its fused kernel does not apply.

use crate::ops::{Activation, Attention, Embeddings, Linear, Norm, Ops, Qkv, TokenTypes};

/// words + positions (+ token types), LayerNorm, dropout.
pub fn embeddings<O: Ops + ?Sized>(ops: &mut O, e: &Embeddings<O::Value>) -> Result<O::Value, O::Error> {
    let words = ops.embedding(e.ids, &e.words)?;
    let positions = ops.position_embeddings(e.ids, &e.positions, e.position_ids)?;
    let mut x = ops.add(&words, &positions);
    if let Some((table, types)) = &e.token_types {
        let types = match types {
            TokenTypes::Ids(ids) => ops.embedding(ids, table)?,
            TokenTypes::AllZero => ops.embedding_row(table, 0)?,
        };
        x = ops.add(&x, &types);
    }
    if let Some(norm) = &e.norm {
        x = ops.layer_norm(&x, norm)?;
    }
    Ok(ops.dropout(&x, e.dropout))
}

pub fn self_attention<O: Ops + ?Sized>(ops: &mut O, x: &O::Value, qkv: &Qkv, mask: &O::Mask, attention: &Attention) -> Result<O::Value, O::Error> {
    let input = ops.linear_input(x);
    let (q, k, v) = match qkv {
        Qkv::Separate { query, key, value } => (ops.linear(&input, query)?, ops.linear(&input, key)?, ops.linear(&input, value)?),
        Qkv::Packed(packed) => {
            let projected = ops.linear(&input, packed)?;
            let mut parts = ops.split_last(&projected, &[attention.hidden; 3]).into_iter();
            let (Some(q), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
                unreachable!("three sizes give three parts")
            };
            (q, k, v)
        }
    };
    Ok(ops.attention(&q, &k, &v, mask, attention))
}

pub fn linear_activation<O: Ops + ?Sized>(ops: &mut O, x: &O::Value, linear: &Linear, activation: Activation) -> Result<O::Value, O::Error> {
    let y = ops.linear(x, linear)?;
    Ok(ops.activation(&y, activation))
}

pub fn linear_add_norm<O: Ops + ?Sized>(ops: &mut O, x: &O::Value, linear: &Linear, skip: &O::Value, norm: &Norm, dropout: f64) -> Result<O::Value, O::Error> {
    let (_, normed) = linear_add_then_norm(ops, x, linear, skip, norm, dropout)?;
    Ok(normed)
}

pub fn linear_add_then_norm<O: Ops + ?Sized>(
    ops: &mut O,
    x: &O::Value,
    linear: &Linear,
    skip: &O::Value,
    norm: &Norm,
    dropout: f64,
) -> Result<(O::Value, O::Value), O::Error> {
    let y = ops.linear(x, linear)?;
    let y = ops.dropout(&y, dropout);
    let sum = ops.add(&y, skip);
    let normed = ops.layer_norm(&sum, norm)?;
    Ok((sum, normed))
}

/// sum_i h_i m_i / sum_i m_i over the sequence; `mask` f32 [batch, seq].
pub fn masked_mean<O: Ops + ?Sized>(ops: &mut O, h: &O::Value, mask: &O::Value) -> O::Value {
    let weights = ops.unsqueeze_last(mask);
    let masked = ops.mul(h, &weights);
    let sum = ops.sum_over_sequence(&masked, false);
    let count = ops.sum_over_sequence(mask, true);
    ops.div(&sum, &count)
}

/// GPT-2's position-weighted mean: the i-th non-padding token (from 1) weighs i / sum_j j.
pub fn position_weighted_mean<O: Ops + ?Sized>(ops: &mut O, h: &O::Value, mask: &O::Value) -> O::Value {
    let running = ops.cumsum_over_sequence(mask);
    let positions = ops.mul(&running, mask);
    let total = ops.sum_over_sequence(&positions, true);
    let weights = ops.div(&positions, &total);
    let weights = ops.unsqueeze_last(&weights);
    let weighted = ops.mul(h, &weights);
    ops.sum_over_sequence(&weighted, false)
}
