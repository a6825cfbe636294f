//! The ONNX engine of the model descriptions: each operation adds graph nodes and returns the
//! name of their output. Weights become initializers in the compute precision (LayerNorm and
//! the pooler's stay f32); with `fused`, ONNX Runtime's contrib ops replace the compositions
//! they cover (see `fused.rs`).

use crate::fused;
use crate::onnx::graph::{elem_type, float, int, ints, Graph, Precision};
use crate::onnx::proto::ElemType;
use crate::weights::{Array, Weights};
use crate::ExportError;
use simcse_models::ops::{Activation, Attention, Embeddings, Linear, Norm, Ops, PositionIds, Qkv, RelativePositionBias, Rope, Table, WeightLayout};
use simcse_models::plain;

/// Added to the attention scores of masked positions (computed in f32, so any large negative
/// value gives exp() = 0; -1e9 leaves room to add two masks without overflowing).
pub const MASKED: f32 = -1e9;

/// A graph under construction with the weights it reads and how to compute.
pub struct Net<'w> {
    pub g: Graph,
    pub w: &'w Weights,
    pub precision: Precision,
    /// Use ONNX Runtime's fused contrib ops.
    pub fused: bool,
    /// The rotary embeddings' cos and sin [seq, 1, head_dim], made once for every layer.
    rotations: Option<(String, String)>,
}

/// The attention mask as the graph's attention reads it.
pub struct GraphMask {
    /// The int64 [batch, seq] input.
    pub raw: String,
    pub causal: bool,
    /// f32, broadcastable to [batch, heads, seq, seq]: what the standard ops add to the scores.
    pub bias: Option<String>,
    /// The mask as int32, which ONNX Runtime's Attention op takes.
    pub int32: Option<String>,
    /// [1, heads, seq, seq] added to every score besides the mask (MPNet's relative positions),
    /// in the attention's precision.
    pub position_bias: Option<String>,
}

impl<'w> Net<'w> {
    pub fn new(w: &'w Weights, precision: Precision, fused: bool) -> Net<'w> {
        Net { g: Graph::default(), w, precision, fused, rotations: None }
    }

    /// A weight stored as the checkpoint has it, in the compute precision.
    pub fn weight(&mut self, name: &str, dims: &[usize]) -> Result<String, ExportError> {
        let array = self.w.get(name, dims)?;
        Ok(self.g.weight(name, dims, array.values, self.precision))
    }

    /// A weight always kept in f32 (LayerNorm parameters, the pooler: small, precision-sensitive).
    pub fn weight_f32(&mut self, name: &str, dims: &[usize]) -> Result<String, ExportError> {
        let array = self.w.get(name, dims)?;
        Ok(self.g.weight(name, dims, array.values, Precision::F32))
    }

    /// The [in, out] matrix (as MatMul takes it) and the bias of a projection, in `precision`.
    /// A projection's matrix as MatMul takes it, [in, out], whatever the checkpoint's layout.
    pub(crate) fn matmul_matrix(&self, linear: &Linear) -> Result<Array, ExportError> {
        let stored = self.w.get(&linear.weight(), &linear.weight_dims())?;
        Ok(match linear.layout {
            WeightLayout::OutIn => stored.transposed(),
            WeightLayout::InOut => stored,
        })
    }

    /// A projection's bias, zeros where it has none (for the fused ops, which take one).
    pub(crate) fn bias_values(&self, linear: &Linear) -> Result<Vec<f32>, ExportError> {
        if linear.bias {
            Ok(self.w.get(&linear.bias(), &[linear.outputs])?.values)
        } else {
            Ok(vec![0.0; linear.outputs])
        }
    }

    fn matrix_in(&mut self, linear: &Linear, precision: Precision) -> Result<String, ExportError> {
        let w = self.matmul_matrix(linear)?;
        Ok(self.g.weight(&linear.weight(), &w.dims, w.values, precision))
    }

    pub fn linear_weights_in(&mut self, linear: &Linear, precision: Precision) -> Result<(String, String), ExportError> {
        let w = self.matrix_in(linear, precision)?;
        let b = self.bias_values(linear)?;
        let b = self.g.weight(&linear.bias(), &[linear.outputs], b, precision);
        Ok((w, b))
    }

    pub fn linear_weights(&mut self, linear: &Linear) -> Result<(String, String), ExportError> {
        self.linear_weights_in(linear, self.precision)
    }

    /// x W (+ b) with the weights in `precision`.
    fn projection(&mut self, x: &str, linear: &Linear, precision: Precision) -> Result<String, ExportError> {
        if !linear.bias {
            let w = self.matrix_in(linear, precision)?;
            return Ok(self.g.op("MatMul", &[x, &w], vec![]));
        }
        let (w, b) = self.linear_weights_in(linear, precision)?;
        let y = self.g.op("MatMul", &[x, &w], vec![]);
        Ok(self.g.op("Add", &[&y, &b], vec![]))
    }

    /// cos and sin of position * frequency, [seq, 1, head_dim] (each frequency twice, as
    /// transformers' `cat((freqs, freqs))`), for the sequence of `x` [batch, seq, ...].
    fn rotations(&mut self, x: &str, rope: &Rope) -> (String, String) {
        if let Some(rotations) = &self.rotations {
            return rotations.clone();
        }
        let (positions, _) = self.query_and_key_positions(x);
        let positions = self.g.op("Cast", &[&positions], vec![("to", int(ElemType::Float as i64))]);
        let frequencies = rope.inverse_frequencies();
        let half = frequencies.len();
        let frequencies = self.g.weight("rotary.inv_freq", &[1, half], frequencies, Precision::F32);
        let angles = self.g.op("Mul", &[&positions, &frequencies], vec![]);
        let angles = self.g.op("Concat", &[&angles, &angles], vec![("axis", int(-1))]);
        let head_axis = self.g.ints(&[1], &[1]);
        let angles = self.g.op("Unsqueeze", &[&angles, &head_axis], vec![]);
        let rotations = (self.g.op("Cos", &[&angles], vec![]), self.g.op("Sin", &[&angles], vec![]));
        self.rotations = Some(rotations.clone());
        rotations
    }

    /// The heads of [batch, seq, heads * head_dim] as [batch, heads, seq, head_dim]
    /// ([batch, heads, head_dim, seq] if `transposed`), each key/value head repeated for the
    /// `group` query heads it serves.
    fn split_heads(&mut self, x: &str, heads: usize, head_dim: usize, group: usize, transposed: bool) -> String {
        let split = self.g.ints(&[0, 0, heads as i64, head_dim as i64], &[4]);
        let x = self.g.op("Reshape", &[x, &split], vec![]);
        let perm = if transposed { [0, 2, 3, 1] } else { [0, 2, 1, 3] };
        let x = self.g.op("Transpose", &[&x], vec![("perm", ints(&perm))]);
        if group == 1 {
            return x;
        }
        let group_axis = self.g.ints(&[2], &[1]);
        let x = self.g.op("Unsqueeze", &[&x, &group_axis], vec![]);
        let repeat = self.g.ints(&[1, 1, group as i64, 1, 1], &[5]);
        let x = self.g.op("Expand", &[&x, &repeat], vec![]);
        let merged: [i64; 4] = if transposed { [0, (heads * group) as i64, head_dim as i64, -1] } else { [0, (heads * group) as i64, -1, head_dim as i64] };
        let merged = self.g.ints(&merged, &[4]);
        self.g.op("Reshape", &[&x, &merged], vec![])
    }

    pub fn from_f32(&mut self, x: &str) -> String {
        match self.precision {
            Precision::F32 => x.to_string(),
            half => self.g.op("Cast", &[x], vec![("to", int(elem_type(half) as i64))]),
        }
    }

    fn half_x_one_plus(&mut self, x: &str, t: &str) -> String {
        let one = self.g.scalar(1.0, self.precision);
        let half = self.g.scalar(0.5, self.precision);
        let t = self.g.op("Add", &[t, &one], vec![]);
        let y = self.g.op("Mul", &[x, &t], vec![]);
        self.g.op("Mul", &[&y, &half], vec![])
    }

    /// (1 - mask) * MASKED as [batch, 1, 1, seq], plus MASKED above the diagonal if `causal`.
    fn attention_bias(&mut self, mask: &str, causal: bool) -> String {
        let mask_f32 = self.mask_to_f32(&mask.to_string());
        let one = self.g.scalar(1.0, Precision::F32);
        let masked = self.g.scalar(MASKED, Precision::F32);
        let inverted = self.g.op("Sub", &[&one, &mask_f32], vec![]);
        let bias = self.g.op("Mul", &[&inverted, &masked], vec![]);
        let axes = self.g.ints(&[1, 2], &[2]);
        let padding = self.g.op("Unsqueeze", &[&bias, &axes], vec![]);
        if !causal {
            return padding;
        }
        let (rows, cols) = self.query_and_key_positions(mask);
        let future = self.g.op("Greater", &[&cols, &rows], vec![]);
        let future = self.g.op("Cast", &[&future], vec![("to", int(ElemType::Float as i64))]);
        let future = self.g.op("Mul", &[&future, &masked], vec![]);
        self.g.op("Add", &[&padding, &future], vec![])
    }

    /// 0..seq of a [batch, seq] input as a column [seq, 1] (the queries') and a row [1, seq]
    /// (the keys'), which broadcast to the [seq, seq] grid of attention scores.
    fn query_and_key_positions(&mut self, input: &str) -> (String, String) {
        let len = self.seq_len(input);
        let scalar_shape = self.g.ints(&[], &[0]);
        let len = self.g.op("Reshape", &[&len, &scalar_shape], vec![]);
        let (zero, one) = (self.g.ints(&[0], &[]), self.g.ints(&[1], &[]));
        let range = self.g.op("Range", &[&zero, &len, &one], vec![]);
        let (col_axis, row_axis) = (self.g.ints(&[1], &[1]), self.g.ints(&[0], &[1]));
        let queries = self.g.op("Unsqueeze", &[&range, &col_axis], vec![]);
        let keys = self.g.op("Unsqueeze", &[&range, &row_axis], vec![]);
        (queries, keys)
    }

    /// The sequence length of a [batch, seq] input as a 1-element int64 tensor.
    pub fn seq_len(&mut self, ids: &str) -> String {
        self.g.op("Shape", &[ids], vec![("start", int(1)), ("end", int(2))])
    }

    /// RoBERTa's position ids (int64 [batch, seq]): `pad` + 1 + the index among non-padding
    /// tokens, `pad` at padding.
    pub fn positions_after_padding(&mut self, ids: &str, pad: i64) -> String {
        let pad = self.g.ints(&[pad], &[]);
        let is_pad = self.g.op("Equal", &[ids, &pad], vec![]);
        let not_pad = self.g.op("Not", &[&is_pad], vec![]);
        // Counted in int32: tract treats int64 arithmetic on inputs as symbolic dimensions.
        let not_pad = self.g.op("Cast", &[&not_pad], vec![("to", int(ElemType::Int32 as i64))]);
        let axis = self.g.ints(&[1], &[]);
        let count = self.g.op("CumSum", &[&not_pad, &axis], vec![]);
        let count = self.g.op("Mul", &[&count, &not_pad], vec![]);
        let count = self.g.op("Cast", &[&count], vec![("to", int(ElemType::Int64 as i64))]);
        self.g.op("Add", &[&count, &pad], vec![])
    }
}

impl Ops for Net<'_> {
    type Value = String;
    type Mask = GraphMask;
    type Error = ExportError;

    fn share(&self, x: &String) -> String {
        x.clone()
    }

    fn embedding(&mut self, ids: &String, table: &Table) -> Result<String, ExportError> {
        let t = self.weight(&table.name, &table.dims())?;
        Ok(self.g.op("Gather", &[&t, ids], vec![("axis", int(0))]))
    }

    fn embedding_row(&mut self, table: &Table, row: usize) -> Result<String, ExportError> {
        let values = self.w.get(&table.name, &table.dims())?.row(row);
        Ok(self.g.weight(&format!("{}.row{row}", table.name), &[table.dim], values.values, self.precision))
    }

    fn position_embeddings(&mut self, ids: &String, table: &Table, positions: PositionIds) -> Result<String, ExportError> {
        match positions {
            PositionIds::FromZero => {
                // Rows 0..seq of the table.
                let t = self.weight(&table.name, &table.dims())?;
                let len = self.seq_len(ids);
                let zero = self.g.ints(&[0], &[1]);
                let axis = self.g.ints(&[0], &[1]);
                Ok(self.g.op("Slice", &[&t, &zero, &len, &axis], vec![]))
            }
            PositionIds::AfterPadding { pad } => {
                let position_ids = self.positions_after_padding(ids, pad);
                self.embedding(&position_ids, table)
            }
        }
    }

    fn linear(&mut self, x: &String, linear: &Linear) -> Result<String, ExportError> {
        self.projection(x, linear, self.precision)
    }

    fn linear_f32(&mut self, x: &String, linear: &Linear) -> Result<String, ExportError> {
        self.projection(x, linear, Precision::F32)
    }

    fn layer_norm(&mut self, x: &String, norm: &Norm) -> Result<String, ExportError> {
        let gamma = self.weight_f32(&norm.weight(), &[norm.hidden])?;
        let beta = self.weight_f32(&norm.bias(), &[norm.hidden])?;
        let x = self.to_f32(x);
        let attributes = vec![("axis", int(-1)), ("epsilon", float(norm.eps))];
        let y = self.g.op("LayerNormalization", &[&x, &gamma, &beta], attributes);
        Ok(self.from_f32(&y))
    }

    fn rms_norm(&mut self, x: &String, norm: &Norm) -> Result<String, ExportError> {
        let gamma = self.weight_f32(&norm.weight(), &[norm.hidden])?;
        let x = self.to_f32(x);
        let squares = self.g.op("Mul", &[&x, &x], vec![]);
        let mean = self.g.op("ReduceMean", &[&squares], vec![("axes", ints(&[-1])), ("keepdims", int(1))]);
        let eps = self.g.scalar(norm.eps, Precision::F32);
        let mean = self.g.op("Add", &[&mean, &eps], vec![]);
        let root = self.g.op("Sqrt", &[&mean], vec![]);
        let inverse = self.g.op("Reciprocal", &[&root], vec![]);
        let y = self.g.op("Mul", &[&x, &inverse], vec![]);
        let y = self.g.op("Mul", &[&gamma, &y], vec![]);
        Ok(self.from_f32(&y))
    }

    /// x cos + rotate_half(x) sin, where rotate_half(x) = [-x2, x1] of each head's halves.
    fn rotary(&mut self, x: &String, rope: &Rope) -> String {
        let (cos, sin) = self.rotations(x, rope);
        let x = self.to_f32(x);
        let split = self.g.ints(&[0, 0, rope.heads as i64, rope.head_dim as i64], &[4]);
        let heads = self.g.op("Reshape", &[&x, &split], vec![]);
        let halves = self.split_last(&heads, &[rope.head_dim / 2; 2]);
        let negated = self.g.op("Neg", &[&halves[1]], vec![]);
        let rotated = self.g.op("Concat", &[&negated, &halves[0]], vec![("axis", int(-1))]);
        let a = self.g.op("Mul", &[&heads, &cos], vec![]);
        let b = self.g.op("Mul", &[&rotated, &sin], vec![]);
        let y = self.g.op("Add", &[&a, &b], vec![]);
        let merge = self.g.ints(&[0, 0, (rope.heads * rope.head_dim) as i64], &[3]);
        let y = self.g.op("Reshape", &[&y, &merge], vec![]);
        self.from_f32(&y)
    }

    fn attention_mask(&mut self, mask: &String, causal: bool) -> GraphMask {
        let (bias, int32) = if self.fused {
            (None, Some(self.g.op("Cast", &[mask], vec![("to", int(ElemType::Int32 as i64))])))
        } else {
            (Some(self.attention_bias(mask, causal)), None)
        };
        GraphMask { raw: mask.clone(), causal, bias, int32, position_bias: None }
    }

    /// The buckets of the [seq, seq] offsets key - query, looked up in a table of every offset
    /// the position table allows, then each bucket's value per head.
    fn add_position_bias(&mut self, mut mask: GraphMask, ids: &String, bias: &RelativePositionBias) -> Result<GraphMask, ExportError> {
        let offsets = bias.buckets_by_offset();
        let buckets_by_offset = self.g.ints(&offsets, &[offsets.len()]);
        let (queries, keys) = self.query_and_key_positions(ids);
        let offset = self.g.op("Sub", &[&keys, &queries], vec![]);
        let reach = self.g.ints(&[bias.longest as i64 - 1], &[]);
        let index = self.g.op("Add", &[&offset, &reach], vec![]);
        let buckets = self.g.op("Gather", &[&buckets_by_offset, &index], vec![("axis", int(0))]);
        let table = self.weight_f32(&bias.table.name, &bias.table.dims())?;
        let values = self.g.op("Gather", &[&table, &buckets], vec![("axis", int(0))]);
        let values = self.g.op("Transpose", &[&values], vec![("perm", ints(&[2, 0, 1]))]);
        let batch_axis = self.g.ints(&[0], &[1]);
        let values = self.g.op("Unsqueeze", &[&values, &batch_axis], vec![]);
        mask.position_bias = Some(if self.fused { self.from_f32(&values) } else { values });
        Ok(mask)
    }

    /// The scores are normalized in f32.
    fn attention(&mut self, q: &String, k: &String, v: &String, mask: &GraphMask, attention: &Attention) -> String {
        let bias = match &mask.bias {
            Some(bias) => bias.clone(),
            None => self.attention_bias(&mask.raw, mask.causal),
        };
        let (heads, kv_heads, hidden) = (attention.heads, attention.kv_heads, attention.hidden);
        let head_dim = hidden / heads;
        let group = heads / kv_heads;
        let q = self.split_heads(q, heads, head_dim, 1, false);
        let k = self.split_heads(k, kv_heads, head_dim, group, true);
        let v = self.split_heads(v, kv_heads, head_dim, group, false);
        let scores = self.g.op("MatMul", &[&q, &k], vec![]);
        let scores = self.to_f32(&scores);
        let scale = self.g.scalar(1.0 / (head_dim as f32).sqrt(), Precision::F32);
        let scores = self.g.op("Mul", &[&scores, &scale], vec![]);
        let mut scores = self.g.op("Add", &[&scores, &bias], vec![]);
        if let Some(position_bias) = &mask.position_bias {
            scores = self.g.op("Add", &[&scores, position_bias], vec![]);
        }
        let probs = self.g.op("Softmax", &[&scores], vec![("axis", int(-1))]);
        let probs = self.from_f32(&probs);
        let context = self.g.op("MatMul", &[&probs, &v], vec![]);
        let context = self.g.op("Transpose", &[&context], vec![("perm", ints(&[0, 2, 1, 3]))]);
        let merge = self.g.ints(&[0, 0, hidden as i64], &[3]);
        self.g.op("Reshape", &[&context, &merge], vec![])
    }

    fn add(&mut self, a: &String, b: &String) -> String {
        self.g.op("Add", &[a, b], vec![])
    }

    fn mul(&mut self, a: &String, b: &String) -> String {
        self.g.op("Mul", &[a, b], vec![])
    }

    fn div(&mut self, a: &String, b: &String) -> String {
        self.g.op("Div", &[a, b], vec![])
    }

    fn scale_f32(&mut self, x: &String, factor: f32) -> String {
        let factor = self.g.scalar(factor, Precision::F32);
        self.g.op("Mul", &[x, &factor], vec![])
    }

    fn activation(&mut self, x: &String, activation: Activation) -> String {
        match activation {
            Activation::Relu => self.g.op("Relu", &[x], vec![]),
            Activation::Silu => {
                let sigmoid = self.g.op("Sigmoid", &[x], vec![]);
                self.g.op("Mul", &[x, &sigmoid], vec![])
            }
            Activation::GeluErf => {
                // 0.5 x (1 + erf(x / sqrt 2))
                let inv_sqrt2 = self.g.scalar(std::f32::consts::FRAC_1_SQRT_2, self.precision);
                let scaled = self.g.op("Mul", &[x, &inv_sqrt2], vec![]);
                let erf = self.g.op("Erf", &[&scaled], vec![]);
                self.half_x_one_plus(x, &erf)
            }
            Activation::GeluTanh => {
                // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
                let cube = self.g.op("Mul", &[x, x], vec![]);
                let cube = self.g.op("Mul", &[&cube, x], vec![]);
                let c = self.g.scalar(0.044715, self.precision);
                let cube = self.g.op("Mul", &[&cube, &c], vec![]);
                let inner = self.g.op("Add", &[x, &cube], vec![]);
                let k = self.g.scalar((2.0 / std::f32::consts::PI).sqrt(), self.precision);
                let inner = self.g.op("Mul", &[&inner, &k], vec![]);
                let tanh = self.g.op("Tanh", &[&inner], vec![]);
                self.half_x_one_plus(x, &tanh)
            }
        }
    }

    fn tanh(&mut self, x: &String) -> String {
        self.g.op("Tanh", &[x], vec![])
    }

    /// An exported graph is for inference.
    fn dropout(&mut self, x: &String, _p: f64) -> String {
        x.clone()
    }

    fn to_f32(&mut self, x: &String) -> String {
        match self.precision {
            Precision::F32 => x.clone(),
            Precision::F16 | Precision::Bf16 => self.g.op("Cast", &[x], vec![("to", int(ElemType::Float as i64))]),
        }
    }

    fn mask_to_f32(&mut self, mask: &String) -> String {
        self.g.op("Cast", &[mask], vec![("to", int(ElemType::Float as i64))])
    }

    fn first_token(&mut self, x: &String) -> String {
        let zero = self.g.ints(&[0], &[]);
        self.g.op("Gather", &[x, &zero], vec![("axis", int(1))])
    }

    /// A one-hot weight on the position whose running count of tokens is the row's count.
    fn last_token(&mut self, x: &String, mask: &String) -> String {
        let running = self.cumsum_over_sequence(mask);
        let running = self.g.op("Mul", &[&running, mask], vec![]);
        let count = self.sum_over_sequence(mask, true);
        let last = self.g.op("Equal", &[&running, &count], vec![]);
        let last = self.g.op("Cast", &[&last], vec![("to", int(ElemType::Float as i64))]);
        let weights = self.unsqueeze_last(&last);
        let picked = self.g.op("Mul", &[x, &weights], vec![]);
        self.sum_over_sequence(&picked, false)
    }

    fn sum_over_sequence(&mut self, x: &String, keep: bool) -> String {
        let axis = self.g.ints(&[1], &[1]);
        self.g.op("ReduceSum", &[x, &axis], vec![("keepdims", int(keep as i64))])
    }

    fn cumsum_over_sequence(&mut self, x: &String) -> String {
        let axis = self.g.ints(&[1], &[]);
        self.g.op("CumSum", &[x, &axis], vec![])
    }

    fn unsqueeze_last(&mut self, x: &String) -> String {
        let axis = self.g.ints(&[-1], &[1]);
        self.g.op("Unsqueeze", &[x, &axis], vec![])
    }

    fn split_last(&mut self, x: &String, sizes: &[usize]) -> Vec<String> {
        let sizes_value: Vec<i64> = sizes.iter().map(|&s| s as i64).collect();
        let sizes_value = self.g.ints(&sizes_value, &[sizes.len()]);
        let used = vec![true; sizes.len()];
        self.g.op_outputs("", "Split", &[x, &sizes_value], &used, vec![("axis", int(-1))])
    }

    // ONNX Runtime's fused ops where `--optimize ort` asks for them.

    fn embeddings(&mut self, embeddings: &Embeddings<String>) -> Result<String, ExportError> {
        match (self.fused, &embeddings.norm) {
            (true, Some(norm)) => fused::embed_layer_norm(self, embeddings, norm),
            _ => plain::embeddings(self, embeddings),
        }
    }

    fn self_attention(&mut self, x: &String, qkv: &Qkv, mask: &GraphMask, attention: &Attention) -> Result<String, ExportError> {
        match (self.fused, &mask.int32) {
            (true, Some(mask_i32)) => {
                let (mask_i32, position_bias) = (mask_i32.clone(), mask.position_bias.clone());
                fused::attention(self, x, qkv, &mask_i32, position_bias.as_deref(), mask.causal, attention)
            }
            _ => plain::self_attention(self, x, qkv, mask, attention),
        }
    }

    fn linear_activation(&mut self, x: &String, linear: &Linear, activation: Activation) -> Result<String, ExportError> {
        if self.fused {
            fused::linear_activation(self, x, linear, activation)
        } else {
            plain::linear_activation(self, x, linear, activation)
        }
    }

    fn linear_add_norm(&mut self, x: &String, linear: &Linear, skip: &String, norm: &Norm, dropout: f64) -> Result<String, ExportError> {
        if self.fused {
            fused::skip_layer_norm(self, x, linear, skip, norm)
        } else {
            plain::linear_add_norm(self, x, linear, skip, norm, dropout)
        }
    }

    fn linear_add_then_norm(&mut self, x: &String, linear: &Linear, skip: &String, norm: &Norm, dropout: f64) -> Result<(String, String), ExportError> {
        if self.fused {
            fused::skip_layer_norm_and_sum(self, x, linear, skip, norm)
        } else {
            plain::linear_add_then_norm(self, x, linear, skip, norm, dropout)
        }
    }
}
