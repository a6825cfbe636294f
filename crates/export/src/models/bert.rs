//! BERT and RoBERTa encoders (post-LayerNorm transformer), as in Hugging Face's
//! `modeling_bert.py` / `modeling_roberta.py`, parameter names included.

use super::layers::Net;
use simcse_core::architecture::BertSpec;
use crate::onnx::graph::{float, int};
use crate::onnx::proto::ElemType;
use crate::ExportError;

/// The graph inputs of an encoder: int64 [batch, seq] tensors.
pub struct Inputs {
    pub ids: String,
    pub mask: String,
    pub token_types: Option<String>,
}

/// Runs the encoder; returns the hidden states: the embeddings' output, then each layer's.
pub fn encode(net: &mut Net, spec: &BertSpec, inputs: &Inputs) -> Result<Vec<String>, ExportError> {
    let mut states = vec![if net.fused { fused_embeddings(net, spec, inputs)? } else { embeddings(net, spec, inputs)? }];
    // The fused Attention op takes the raw int32 mask; the standard graph adds a bias.
    let mask = if net.fused {
        net.g.op("Cast", &[&inputs.mask], vec![("to", int(ElemType::Int32 as i64))])
    } else {
        let mask_f32 = net.mask_f32(&inputs.mask);
        net.padding_bias(&mask_f32)
    };
    for layer in 0..spec.layers {
        let x = states.last().unwrap().clone();
        let prefix = format!("encoder.layer.{layer}");
        let y = if net.fused { fused_layer(net, spec, &x, &mask, &prefix)? } else { layer_standard(net, spec, &x, &mask, &prefix)? };
        states.push(y);
    }
    Ok(states)
}

/// RoBERTa's position ids: padding_idx + 1 + the index among non-padding tokens, padding_idx
/// at padding (`create_position_ids_from_input_ids`).
fn roberta_positions(net: &mut Net, spec: &BertSpec, ids: &str) -> String {
    let pad = net.g.ints(&[spec.pad_token_id], &[]);
    let is_pad = net.g.op("Equal", &[ids, &pad], vec![]);
    let not_pad = net.g.op("Not", &[&is_pad], vec![]);
    // Counted in int32: tract treats int64 arithmetic on inputs as symbolic dimensions.
    let not_pad = net.g.op("Cast", &[&not_pad], vec![("to", int(ElemType::Int32 as i64))]);
    let axis = net.g.ints(&[1], &[]);
    let count = net.g.op("CumSum", &[&not_pad, &axis], vec![]);
    let count = net.g.op("Mul", &[&count, &not_pad], vec![]);
    let count = net.g.op("Cast", &[&count], vec![("to", int(ElemType::Int64 as i64))]);
    net.g.op("Add", &[&count, &pad], vec![])
}

fn embeddings(net: &mut Net, spec: &BertSpec, inputs: &Inputs) -> Result<String, ExportError> {
    let h = spec.hidden;
    let words = net.weight("embeddings.word_embeddings.weight", &[spec.vocab, h])?;
    let positions = net.weight("embeddings.position_embeddings.weight", &[spec.max_positions, h])?;
    let x = net.g.op("Gather", &[&words, &inputs.ids], vec![("axis", int(0))]);
    let pos = if spec.roberta {
        let ids = roberta_positions(net, spec, &inputs.ids);
        net.g.op("Gather", &[&positions, &ids], vec![("axis", int(0))])
    } else {
        let len = net.seq_len(&inputs.ids);
        net.first_rows(&positions, &len)
    };
    let x = net.g.op("Add", &[&x, &pos], vec![]);
    let types = match &inputs.token_types {
        Some(token_types) => {
            let table = net.weight("embeddings.token_type_embeddings.weight", &[spec.type_vocab, h])?;
            net.g.op("Gather", &[&table, token_types], vec![("axis", int(0))])
        }
        // RoBERTa uses token type 0 everywhere.
        None => {
            let row = net.w.get("embeddings.token_type_embeddings.weight", &[spec.type_vocab, h])?.row(0);
            net.g.weight("embeddings.token_type_embeddings.row0", &[h], row.values, net.precision)
        }
    };
    let x = net.g.op("Add", &[&x, &types], vec![]);
    net.layer_norm(&x, "embeddings.LayerNorm", h, spec.eps)
}

fn layer_standard(net: &mut Net, spec: &BertSpec, x: &str, bias: &str, prefix: &str) -> Result<String, ExportError> {
    let h = spec.hidden;
    let q = net.linear(x, &format!("{prefix}.attention.self.query"), h, h)?;
    let k = net.linear(x, &format!("{prefix}.attention.self.key"), h, h)?;
    let v = net.linear(x, &format!("{prefix}.attention.self.value"), h, h)?;
    let context = net.attention(&q, &k, &v, bias, spec.heads, h);
    let out = net.linear(&context, &format!("{prefix}.attention.output.dense"), h, h)?;
    let out = net.g.op("Add", &[&out, x], vec![]);
    let x = net.layer_norm(&out, &format!("{prefix}.attention.output.LayerNorm"), h, spec.eps)?;
    let inner = net.linear(&x, &format!("{prefix}.intermediate.dense"), h, spec.intermediate)?;
    let inner = net.activation(&inner, spec.activation);
    let out = net.linear(&inner, &format!("{prefix}.output.dense"), spec.intermediate, h)?;
    let out = net.g.op("Add", &[&out, &x], vec![]);
    net.layer_norm(&out, &format!("{prefix}.output.LayerNorm"), h, spec.eps)
}

// ---------------------------------------------------------------- ONNX Runtime's fused ops

fn fused_embeddings(net: &mut Net, spec: &BertSpec, inputs: &Inputs) -> Result<String, ExportError> {
    let h = spec.hidden;
    let ids = net.g.op("Cast", &[&inputs.ids], vec![("to", int(ElemType::Int32 as i64))]);
    let words = net.weight("embeddings.word_embeddings.weight", &[spec.vocab, h])?;
    let mut position_table = net.w.get("embeddings.position_embeddings.weight", &[spec.max_positions, h])?;
    let types = net.w.get("embeddings.token_type_embeddings.weight", &[spec.type_vocab, h])?;
    let gamma = net.weight("embeddings.LayerNorm.weight", &[h])?;
    let beta = net.weight("embeddings.LayerNorm.bias", &[h])?;
    let (segments, segment_table, position_ids) = match &inputs.token_types {
        Some(token_types) => {
            let segments = net.g.op("Cast", &[token_types], vec![("to", int(ElemType::Int32 as i64))]);
            let table = net.g.weight("embeddings.token_type_embeddings.weight", &types.dims, types.values, net.precision);
            (segments, table, String::new())
        }
        None => {
            // RoBERTa: type 0 everywhere, folded into the position table (both are added).
            for row in position_table.values.chunks_exact_mut(h) {
                row.iter_mut().zip(&types.values[..h]).for_each(|(p, t)| *p += t);
            }
            let positions = roberta_positions(net, spec, &inputs.ids);
            let positions = net.g.op("Cast", &[&positions], vec![("to", int(ElemType::Int32 as i64))]);
            (String::new(), String::new(), positions)
        }
    };
    let position_table = net.g.weight(
        "embeddings.position_embeddings.weight",
        &position_table.dims,
        position_table.values,
        net.precision,
    );
    let outputs = net.g.op_outputs(
        crate::onnx::graph::MS_DOMAIN,
        "EmbedLayerNormalization",
        &[&ids, &segments, &words, &position_table, &segment_table, &gamma, &beta, "", &position_ids],
        // The second output (mask_index) is required by the op's schema; we do not use it.
        &[true, true],
        vec![("epsilon", float(spec.eps))],
    );
    Ok(outputs[0].clone())
}

fn fused_layer(net: &mut Net, spec: &BertSpec, x: &str, mask_i32: &str, prefix: &str) -> Result<String, ExportError> {
    let h = spec.hidden;
    // Q, K and V side by side: [hidden, 3 hidden] and [3 hidden].
    let mut qkv_w = vec![0f32; h * 3 * h];
    let mut qkv_b = Vec::with_capacity(3 * h);
    for (part, name) in ["query", "key", "value"].iter().enumerate() {
        let w = net.w.get(&format!("{prefix}.attention.self.{name}.weight"), &[h, h])?.transposed();
        for r in 0..h {
            qkv_w[r * 3 * h + part * h..r * 3 * h + (part + 1) * h].copy_from_slice(&w.values[r * h..(r + 1) * h]);
        }
        qkv_b.extend(net.w.get(&format!("{prefix}.attention.self.{name}.bias"), &[h])?.values);
    }
    let qkv_w = net.g.weight(&format!("{prefix}.attention.self.qkv.weight"), &[h, 3 * h], qkv_w, net.precision);
    let qkv_b = net.g.weight(&format!("{prefix}.attention.self.qkv.bias"), &[3 * h], qkv_b, net.precision);
    let context = net.g.ms_op("Attention", &[x, &qkv_w, &qkv_b, mask_i32], vec![("num_heads", int(spec.heads as i64))]);
    let x = skip_layer_norm(net, &context, x, &format!("{prefix}.attention.output"), h, h, spec.eps)?;
    let (w, b) = net.linear_weights(&format!("{prefix}.intermediate.dense"), h, spec.intermediate)?;
    let inner = net.g.op("MatMul", &[&x, &w], vec![]);
    let inner = net.fused_bias_activation(&inner, &b, spec.activation);
    skip_layer_norm(net, &inner, &x, &format!("{prefix}.output"), spec.intermediate, h, spec.eps)
}

/// LayerNorm(x W + b + skip) with `{prefix}.dense` and `{prefix}.LayerNorm`, fused.
fn skip_layer_norm(net: &mut Net, x: &str, skip: &str, prefix: &str, inputs: usize, h: usize, eps: f32) -> Result<String, ExportError> {
    let (w, b) = net.linear_weights(&format!("{prefix}.dense"), inputs, h)?;
    let y = net.g.op("MatMul", &[x, &w], vec![]);
    let gamma = net.weight(&format!("{prefix}.LayerNorm.weight"), &[h])?;
    let beta = net.weight(&format!("{prefix}.LayerNorm.bias"), &[h])?;
    Ok(net.g.ms_op("SkipLayerNormalization", &[&y, skip, &gamma, &beta, &b], vec![("epsilon", float(eps))]))
}
