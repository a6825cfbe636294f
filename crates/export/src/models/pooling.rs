//! The poolers of SimCSE's `models.py` (and GPT-2's position-weighted mean), in f32, from
//! the hidden states of every layer: `states[0]` is the embeddings' output, `states[i]` that
//! of layer i, the last one the encoder's output.

use super::layers::Net;
use crate::onnx::graph::{int, ints, Precision};
use crate::ExportError;
use simcse_core::Pooler;

pub struct PoolInput<'a> {
    /// Hidden states [batch, seq, hidden] in the compute precision.
    pub states: &'a [String],
    /// The attention mask as f32 [batch, seq].
    pub mask: &'a str,
    pub hidden: usize,
}

pub fn pool(net: &mut Net, pooler: Pooler, input: &PoolInput) -> Result<String, ExportError> {
    let last = input.states.len() - 1;
    let state = |net: &mut Net, i: usize| net.to_f32(&input.states[i]);
    match pooler {
        Pooler::ClsBeforePooler => {
            let h = state(net, last);
            Ok(first_token(net, &h))
        }
        Pooler::Cls => {
            if !net.w.has("pooler.dense.weight") {
                return Err(ExportError::Options(
                    "pooler `cls` runs [CLS] through the pooler layer (pooler.dense.weight), which this checkpoint \
                     does not have; use cls_before_pooler, or convert a SimCSE checkpoint with --simcse-to-hf"
                        .into(),
                ));
            }
            let h = state(net, last);
            let cls = first_token(net, &h);
            // BERT's pooler (and SimCSE's MLP after --simcse-to-hf): tanh(W cls + b), in f32.
            let w = net.w.get("pooler.dense.weight", &[input.hidden, input.hidden])?.transposed();
            let w = net.g.weight("pooler.dense.weight", &w.dims, w.values, Precision::F32);
            let b = net.weight_f32("pooler.dense.bias", &[input.hidden])?;
            let y = net.g.op("MatMul", &[&cls, &w], vec![]);
            let y = net.g.op("Add", &[&y, &b], vec![]);
            Ok(net.g.op("Tanh", &[&y], vec![]))
        }
        Pooler::Avg => {
            let h = state(net, last);
            Ok(masked_mean(net, &h, input.mask))
        }
        Pooler::AvgTop2 | Pooler::AvgFirstLast => {
            let other = if pooler == Pooler::AvgTop2 { last.saturating_sub(1) } else { 1.min(last) };
            let (a, b) = (state(net, last), state(net, other));
            let sum = net.g.op("Add", &[&a, &b], vec![]);
            let half = net.g.scalar(0.5, Precision::F32);
            let mean = net.g.op("Mul", &[&sum, &half], vec![]);
            Ok(masked_mean(net, &mean, input.mask))
        }
        Pooler::Wavg => {
            let h = state(net, last);
            Ok(position_weighted_mean(net, &h, input.mask))
        }
    }
}

fn first_token(net: &mut Net, h: &str) -> String {
    let zero = net.g.ints(&[0], &[]);
    net.g.op("Gather", &[h, &zero], vec![("axis", int(1))])
}

/// sum_i h_i m_i / sum_i m_i
fn masked_mean(net: &mut Net, h: &str, mask: &str) -> String {
    let last_axis = net.g.ints(&[-1], &[1]);
    let mask3 = net.g.op("Unsqueeze", &[mask, &last_axis], vec![]);
    let masked = net.g.op("Mul", &[h, &mask3], vec![]);
    let seq_axis = net.g.ints(&[1], &[1]);
    let sum = net.g.op("ReduceSum", &[&masked, &seq_axis], vec![("keepdims", int(0))]);
    let count = net.g.op("ReduceSum", &[mask, &seq_axis], vec![("keepdims", int(1))]);
    net.g.op("Div", &[&sum, &count], vec![])
}

/// GPT-2's `wavg`: the i-th non-padding token (from 1) weighs i / sum_j j.
fn position_weighted_mean(net: &mut Net, h: &str, mask: &str) -> String {
    let seq_axis_scalar = net.g.ints(&[1], &[]);
    let positions = net.g.op("CumSum", &[mask, &seq_axis_scalar], vec![]);
    let positions = net.g.op("Mul", &[&positions, mask], vec![]);
    let seq_axis = net.g.ints(&[1], &[1]);
    let total = net.g.op("ReduceSum", &[&positions, &seq_axis], vec![("keepdims", int(1))]);
    let weights = net.g.op("Div", &[&positions, &total], vec![]);
    let last_axis = net.g.ints(&[-1], &[1]);
    let weights = net.g.op("Unsqueeze", &[&weights, &last_axis], vec![]);
    let weighted = net.g.op("Mul", &[h, &weights], vec![]);
    net.g.op("ReduceSum", &[&weighted, &seq_axis], vec![("keepdims", int(0))])
}

/// x / max(||x||, 1e-12), as torch.nn.functional.normalize.
pub fn l2_normalize(net: &mut Net, x: &str) -> String {
    let norm = net.g.op("ReduceL2", &[x], vec![("axes", ints(&[-1])), ("keepdims", int(1))]);
    let eps = net.g.scalar(1e-12, Precision::F32);
    let norm = net.g.op("Max", &[&norm, &eps], vec![]);
    net.g.op("Div", &[x, &norm], vec![])
}
