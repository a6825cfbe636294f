//! ONNX Runtime's contrib ops (`--optimize ort`) for the compositions they cover: the
//! embeddings with their LayerNorm, self-attention with its projections, bias + GELU, and the
//! residual add with the LayerNorm after it. tract does not run these.

use crate::net::Net;
use crate::onnx::graph::{float, int, MS_DOMAIN};
use crate::onnx::proto::ElemType;
use crate::ExportError;
use simcse_models::ops::{Activation, Attention, Embeddings, Linear, Norm, Ops, PositionIds, Qkv, TokenTypes};

fn int32(net: &mut Net, x: &str) -> String {
    net.g.op("Cast", &[x], vec![("to", int(ElemType::Int32 as i64))])
}

/// EmbedLayerNormalization: words + positions + segments, then LayerNorm, in one op.
pub fn embed_layer_norm(net: &mut Net, e: &Embeddings<String>, norm: &Norm) -> Result<String, ExportError> {
    let ids = int32(net, e.ids);
    let words = net.weight(&e.words.name, &e.words.dims())?;
    let mut position_table = net.w.get(&e.positions.name, &e.positions.dims())?;
    let gamma = net.weight(&norm.weight(), &[norm.hidden])?;
    let beta = net.weight(&norm.bias(), &[norm.hidden])?;
    let (segments, segment_table) = match &e.token_types {
        Some((table, TokenTypes::Ids(types))) => (int32(net, types), net.weight(&table.name, &table.dims())?),
        Some((table, TokenTypes::AllZero)) => {
            // Type 0 everywhere: its row is folded into the position table (both are added).
            let row = net.w.get(&table.name, &table.dims())?.row(0);
            for position in position_table.values.chunks_exact_mut(table.dim) {
                position.iter_mut().zip(&row.values).for_each(|(p, t)| *p += t);
            }
            (String::new(), String::new())
        }
        None => (String::new(), String::new()),
    };
    let position_ids = match e.position_ids {
        // The op's default: 0, 1, 2, ...
        PositionIds::FromZero => String::new(),
        PositionIds::AfterPadding { pad } => {
            let positions = net.positions_after_padding(e.ids, pad);
            int32(net, &positions)
        }
    };
    let position_table = net.g.weight(&e.positions.name, &position_table.dims, position_table.values, net.precision);
    let outputs = net.g.op_outputs(
        MS_DOMAIN,
        "EmbedLayerNormalization",
        &[&ids, &segments, &words, &position_table, &segment_table, &gamma, &beta, "", &position_ids],
        // The second output (mask_index) is required by the op's schema; we do not use it.
        &[true, true],
        vec![("epsilon", float(norm.eps))],
    );
    Ok(outputs[0].clone())
}

/// Attention: the query, key and value projections side by side ([hidden, 3 hidden]), the
/// heads, the raw int32 mask (`unidirectional` for a causal model) and the bias added to the
/// scores where the model has one (its input `attention_bias`).
pub fn attention(
    net: &mut Net,
    x: &str,
    qkv: &Qkv,
    mask_i32: &str,
    position_bias: Option<&str>,
    causal: bool,
    attention: &Attention,
) -> Result<String, ExportError> {
    let (w, b) = match qkv {
        Qkv::Packed(packed) => net.linear_weights(packed)?,
        Qkv::Separate { query, key, value } => {
            let h = attention.hidden;
            let mut packed_w = vec![0f32; h * 3 * h];
            let mut packed_b = Vec::with_capacity(3 * h);
            for (part, linear) in [query, key, value].into_iter().enumerate() {
                let w = net.matmul_matrix(linear)?;
                for r in 0..h {
                    packed_w[r * 3 * h + part * h..r * 3 * h + (part + 1) * h].copy_from_slice(&w.values[r * h..(r + 1) * h]);
                }
                packed_b.extend(net.bias_values(linear)?);
            }
            // Named after the query's module: `…attention.self.qkv`.
            let prefix = query.name.rsplit_once('.').map_or("qkv", |(p, _)| p);
            let w = net.g.weight(&format!("{prefix}.qkv.weight"), &[h, 3 * h], packed_w, net.precision);
            let b = net.g.weight(&format!("{prefix}.qkv.bias"), &[3 * h], packed_b, net.precision);
            (w, b)
        }
    };
    let mut attributes = vec![("num_heads", int(attention.heads as i64))];
    if causal {
        attributes.push(("unidirectional", int(1)));
    }
    let mut inputs = vec![x, &w, &b, mask_i32];
    if let Some(bias) = position_bias {
        // Input 4 is the past key/value cache, which an encoder has none of.
        inputs.extend(["", bias]);
    }
    Ok(net.g.ms_op("Attention", &inputs, attributes))
}

/// activation(x W + b) as MatMul and BiasGelu / FastGelu.
pub fn linear_activation(net: &mut Net, x: &str, linear: &Linear, activation: Activation) -> Result<String, ExportError> {
    let (w, b) = net.linear_weights(linear)?;
    let y = net.g.op("MatMul", &[x, &w], vec![]);
    Ok(match activation {
        Activation::GeluErf => net.g.ms_op("BiasGelu", &[&y, &b], vec![]),
        Activation::GeluTanh => net.g.ms_op("FastGelu", &[&y, &b], vec![]),
        Activation::Relu | Activation::Silu => {
            let y = net.g.op("Add", &[&y, &b], vec![]);
            net.activation(&y, activation)
        }
    })
}

/// SkipLayerNormalization's outputs: 0 is LayerNorm(x W + b + skip), 3 the sum itself.
fn skip_layer_norm_outputs(net: &mut Net, x: &str, linear: &Linear, skip: &str, norm: &Norm, with_sum: bool) -> Result<Vec<String>, ExportError> {
    let (w, b) = net.linear_weights(linear)?;
    let y = net.g.op("MatMul", &[x, &w], vec![]);
    let gamma = net.weight(&norm.weight(), &[norm.hidden])?;
    let beta = net.weight(&norm.bias(), &[norm.hidden])?;
    Ok(net.g.op_outputs(
        MS_DOMAIN,
        "SkipLayerNormalization",
        &[&y, skip, &gamma, &beta, &b],
        &[true, false, false, with_sum],
        vec![("epsilon", float(norm.eps))],
    ))
}

/// LayerNorm(x W + b + skip).
pub fn skip_layer_norm(net: &mut Net, x: &str, linear: &Linear, skip: &str, norm: &Norm) -> Result<String, ExportError> {
    Ok(skip_layer_norm_outputs(net, x, linear, skip, norm, false)?.swap_remove(0))
}

/// (x W + b + skip, its LayerNorm).
pub fn skip_layer_norm_and_sum(net: &mut Net, x: &str, linear: &Linear, skip: &str, norm: &Norm) -> Result<(String, String), ExportError> {
    let mut outputs = skip_layer_norm_outputs(net, x, linear, skip, norm, true)?;
    let sum = outputs.swap_remove(3);
    Ok((sum, outputs.swap_remove(0)))
}
