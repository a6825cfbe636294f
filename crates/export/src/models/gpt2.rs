//! GPT-2 (pre-LayerNorm, causal attention, learned positions, `gelu_new`), as in Hugging
//! Face's `modeling_gpt2.py`, parameter names included.

use super::layers::{Net, MASKED};
use simcse_core::architecture::Gpt2Spec;
use crate::onnx::graph::{float, int, Precision, MS_DOMAIN};
use crate::onnx::proto::ElemType;
use crate::ExportError;

/// Returns the hidden states as Hugging Face's `output_hidden_states` does: the embeddings,
/// the input of every later block, and the final LayerNorm's output last.
pub fn encode(net: &mut Net, spec: &Gpt2Spec, ids: &str, mask: &str) -> Result<Vec<String>, ExportError> {
    let h = spec.hidden;
    let wte = net.weight("wte.weight", &[spec.vocab, h])?;
    let wpe = net.weight("wpe.weight", &[spec.positions, h])?;
    let tokens = net.g.op("Gather", &[&wte, ids], vec![("axis", int(0))]);
    let len = net.seq_len(ids);
    let positions = net.first_rows(&wpe, &len);
    let x = net.g.op("Add", &[&tokens, &positions], vec![]);
    if net.fused {
        fused_blocks(net, spec, x, mask)
    } else {
        let bias = causal_padding_bias(net, ids, mask);
        standard_blocks(net, spec, x, &bias)
    }
}

/// [batch, 1, seq, seq] f32: MASKED where the key is padding or in the future.
fn causal_padding_bias(net: &mut Net, ids: &str, mask: &str) -> String {
    let mask_f32 = net.mask_f32(mask);
    let padding = net.padding_bias(&mask_f32);
    let len = net.seq_len(ids);
    let scalar_shape = net.g.ints(&[], &[0]);
    let len = net.g.op("Reshape", &[&len, &scalar_shape], vec![]);
    let (zero, one) = (net.g.ints(&[0], &[]), net.g.ints(&[1], &[]));
    let range = net.g.op("Range", &[&zero, &len, &one], vec![]);
    let (col_axis, row_axis) = (net.g.ints(&[1], &[1]), net.g.ints(&[0], &[1]));
    let rows = net.g.op("Unsqueeze", &[&range, &col_axis], vec![]);
    let cols = net.g.op("Unsqueeze", &[&range, &row_axis], vec![]);
    let future = net.g.op("Greater", &[&cols, &rows], vec![]);
    let future = net.g.op("Cast", &[&future], vec![("to", int(ElemType::Float as i64))]);
    let masked = net.g.scalar(MASKED, Precision::F32);
    let future = net.g.op("Mul", &[&future, &masked], vec![]);
    net.g.op("Add", &[&padding, &future], vec![])
}

fn standard_blocks(net: &mut Net, spec: &Gpt2Spec, mut x: String, bias: &str) -> Result<Vec<String>, ExportError> {
    let h = spec.hidden;
    let mut states = vec![x.clone()];
    for layer in 0..spec.layers {
        let p = format!("h.{layer}");
        let a = net.layer_norm(&x, &format!("{p}.ln_1"), h, spec.eps)?;
        let qkv = net.conv1d(&a, &format!("{p}.attn.c_attn"), h, 3 * h)?;
        let sizes = net.g.ints(&[h as i64; 3], &[3]);
        let parts = net.g.op_outputs("", "Split", &[&qkv, &sizes], &[true, true, true], vec![("axis", int(-1))]);
        let context = net.attention(&parts[0], &parts[1], &parts[2], bias, spec.heads, h);
        let out = net.conv1d(&context, &format!("{p}.attn.c_proj"), h, h)?;
        x = net.g.op("Add", &[&x, &out], vec![]);
        let m = net.layer_norm(&x, &format!("{p}.ln_2"), h, spec.eps)?;
        let inner = net.conv1d(&m, &format!("{p}.mlp.c_fc"), h, spec.inner)?;
        let inner = net.activation(&inner, spec.activation);
        let out = net.conv1d(&inner, &format!("{p}.mlp.c_proj"), spec.inner, h)?;
        x = net.g.op("Add", &[&x, &out], vec![]);
        states.push(x.clone());
    }
    let last = net.layer_norm(&x, "ln_f", h, spec.eps)?;
    *states.last_mut().unwrap() = last;
    Ok(states)
}

/// With ONNX Runtime's ops: Attention (unidirectional), and SkipLayerNormalization, which
/// adds the residual and normalizes for the next sub-block in one op (its fourth output is
/// the residual stream itself).
fn fused_blocks(net: &mut Net, spec: &Gpt2Spec, x: String, mask: &str) -> Result<Vec<String>, ExportError> {
    let h = spec.hidden;
    let mask_i32 = net.g.op("Cast", &[mask], vec![("to", int(ElemType::Int32 as i64))]);
    let mut states = vec![x.clone()];
    let mut residual = x;
    let mut normed = net.layer_norm(&residual, "h.0.ln_1", h, spec.eps)?;
    for layer in 0..spec.layers {
        let p = format!("h.{layer}");
        let w = net.weight(&format!("{p}.attn.c_attn.weight"), &[h, 3 * h])?;
        let b = net.weight(&format!("{p}.attn.c_attn.bias"), &[3 * h])?;
        let attrs = vec![("num_heads", int(spec.heads as i64)), ("unidirectional", int(1))];
        let context = net.g.ms_op("Attention", &[&normed, &w, &b, &mask_i32], attrs);
        let (m, r) = skip_norm(net, &context, &residual, &format!("{p}.attn.c_proj"), &format!("{p}.ln_2"), h, h, spec.eps)?;
        residual = r;
        let w = net.weight(&format!("{p}.mlp.c_fc.weight"), &[h, spec.inner])?;
        let b = net.weight(&format!("{p}.mlp.c_fc.bias"), &[spec.inner])?;
        let inner = net.g.op("MatMul", &[&m, &w], vec![]);
        let inner = net.fused_bias_activation(&inner, &b, spec.activation);
        let next_norm = if layer + 1 < spec.layers { format!("h.{}.ln_1", layer + 1) } else { "ln_f".to_string() };
        let (n, r) = skip_norm(net, &inner, &residual, &format!("{p}.mlp.c_proj"), &next_norm, spec.inner, h, spec.eps)?;
        residual = r;
        normed = n;
        states.push(residual.clone());
    }
    *states.last_mut().unwrap() = normed;
    Ok(states)
}

/// (LayerNorm(x W + b + skip), x W + b + skip) for a Conv1D `proj` and the LayerNorm `norm`.
#[allow(clippy::too_many_arguments)]
fn skip_norm(
    net: &mut Net,
    x: &str,
    skip: &str,
    proj: &str,
    norm: &str,
    inputs: usize,
    h: usize,
    eps: f32,
) -> Result<(String, String), ExportError> {
    let w = net.weight(&format!("{proj}.weight"), &[inputs, h])?;
    let b = net.weight(&format!("{proj}.bias"), &[h])?;
    let y = net.g.op("MatMul", &[x, &w], vec![]);
    let gamma = net.weight(&format!("{norm}.weight"), &[h])?;
    let beta = net.weight(&format!("{norm}.bias"), &[h])?;
    let outputs = net.g.op_outputs(
        MS_DOMAIN,
        "SkipLayerNormalization",
        &[&y, skip, &gamma, &beta, &b],
        &[true, false, false, true],
        vec![("epsilon", float(eps))],
    );
    Ok((outputs[0].clone(), outputs[3].clone()))
}
