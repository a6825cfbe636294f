//! The pieces every encoder is made of (linear layers, LayerNorm, activations, attention),
//! each in its standard-ops form and, where ONNX Runtime has one, its fused contrib form.

use crate::onnx::graph::{elem_type, float, int, ints, Graph, Precision};
use crate::onnx::proto::ElemType;
use crate::weights::Weights;
pub use simcse_core::architecture::Activation;
use crate::ExportError;

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
}

impl<'w> Net<'w> {
    pub fn new(w: &'w Weights, precision: Precision, fused: bool) -> Net<'w> {
        Net { g: Graph::default(), w, precision, fused }
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

    /// Hugging Face `nn.Linear` ([out, in] weight): x W^T + b, with W^T stored.
    pub fn linear(&mut self, x: &str, prefix: &str, inputs: usize, outputs: usize) -> Result<String, ExportError> {
        let (w, b) = self.linear_weights(prefix, inputs, outputs)?;
        let y = self.g.op("MatMul", &[x, &w], vec![]);
        Ok(self.g.op("Add", &[&y, &b], vec![]))
    }

    /// The [in, out] weight and the bias of an `nn.Linear`, as initializers.
    pub fn linear_weights(&mut self, prefix: &str, inputs: usize, outputs: usize) -> Result<(String, String), ExportError> {
        let w = self.w.get(&format!("{prefix}.weight"), &[outputs, inputs])?.transposed();
        let w = self.g.weight(&format!("{prefix}.weight"), &w.dims, w.values, self.precision);
        let b = self.weight(&format!("{prefix}.bias"), &[outputs])?;
        Ok((w, b))
    }

    /// GPT-2's `Conv1D` ([in, out] weight): x W + b.
    pub fn conv1d(&mut self, x: &str, prefix: &str, inputs: usize, outputs: usize) -> Result<String, ExportError> {
        let w = self.weight(&format!("{prefix}.weight"), &[inputs, outputs])?;
        let b = self.weight(&format!("{prefix}.bias"), &[outputs])?;
        let y = self.g.op("MatMul", &[x, &w], vec![]);
        Ok(self.g.op("Add", &[&y, &b], vec![]))
    }

    pub fn to_f32(&mut self, x: &str) -> String {
        match self.precision {
            Precision::F32 => x.to_string(),
            Precision::F16 | Precision::Bf16 => self.g.op("Cast", &[x], vec![("to", int(ElemType::Float as i64))]),
        }
    }

    pub fn from_f32(&mut self, x: &str) -> String {
        match self.precision {
            Precision::F32 => x.to_string(),
            half => self.g.op("Cast", &[x], vec![("to", int(elem_type(half) as i64))]),
        }
    }

    /// LayerNorm over the last axis, computed in f32 whatever the precision.
    pub fn layer_norm(&mut self, x: &str, prefix: &str, hidden: usize, eps: f32) -> Result<String, ExportError> {
        let gamma = self.weight_f32(&format!("{prefix}.weight"), &[hidden])?;
        let beta = self.weight_f32(&format!("{prefix}.bias"), &[hidden])?;
        let x = self.to_f32(x);
        let y = self.g.op("LayerNormalization", &[&x, &gamma, &beta], vec![("axis", int(-1)), ("epsilon", float(eps))]);
        Ok(self.from_f32(&y))
    }

    pub fn activation(&mut self, x: &str, activation: Activation) -> String {
        match activation {
            Activation::Relu => self.g.op("Relu", &[x], vec![]),
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

    /// activation(x + b) with ONNX Runtime's fused bias + GELU ops where there is one.
    pub fn fused_bias_activation(&mut self, x: &str, b: &str, activation: Activation) -> String {
        match activation {
            Activation::GeluErf => self.g.ms_op("BiasGelu", &[x, b], vec![]),
            Activation::GeluTanh => self.g.ms_op("FastGelu", &[x, b], vec![]),
            Activation::Relu => {
                let y = self.g.op("Add", &[x, b], vec![]);
                self.g.op("Relu", &[&y], vec![])
            }
        }
    }

    fn half_x_one_plus(&mut self, x: &str, t: &str) -> String {
        let one = self.g.scalar(1.0, self.precision);
        let half = self.g.scalar(0.5, self.precision);
        let t = self.g.op("Add", &[t, &one], vec![]);
        let y = self.g.op("Mul", &[x, &t], vec![]);
        self.g.op("Mul", &[&y, &half], vec![])
    }

    /// Scaled dot-product attention over [batch, seq, hidden] projections; `mask_bias` (f32,
    /// broadcastable to [batch, heads, seq, seq]) is added to the scores, which are
    /// normalized in f32.
    pub fn attention(&mut self, q: &str, k: &str, v: &str, mask_bias: &str, heads: usize, hidden: usize) -> String {
        let head_dim = hidden / heads;
        let split = self.g.ints(&[0, 0, heads as i64, head_dim as i64], &[4]);
        let q = self.g.op("Reshape", &[q, &split], vec![]);
        let q = self.g.op("Transpose", &[&q], vec![("perm", ints(&[0, 2, 1, 3]))]);
        let k = self.g.op("Reshape", &[k, &split], vec![]);
        let k = self.g.op("Transpose", &[&k], vec![("perm", ints(&[0, 2, 3, 1]))]);
        let v = self.g.op("Reshape", &[v, &split], vec![]);
        let v = self.g.op("Transpose", &[&v], vec![("perm", ints(&[0, 2, 1, 3]))]);
        let scores = self.g.op("MatMul", &[&q, &k], vec![]);
        let scores = self.to_f32(&scores);
        let scale = self.g.scalar(1.0 / (head_dim as f32).sqrt(), Precision::F32);
        let scores = self.g.op("Mul", &[&scores, &scale], vec![]);
        let scores = self.g.op("Add", &[&scores, mask_bias], vec![]);
        let probs = self.g.op("Softmax", &[&scores], vec![("axis", int(-1))]);
        let probs = self.from_f32(&probs);
        let context = self.g.op("MatMul", &[&probs, &v], vec![]);
        let context = self.g.op("Transpose", &[&context], vec![("perm", ints(&[0, 2, 1, 3]))]);
        let merge = self.g.ints(&[0, 0, hidden as i64], &[3]);
        self.g.op("Reshape", &[&context, &merge], vec![])
    }

    /// `mask` [batch, seq] int64 -> f32 [batch, seq].
    pub fn mask_f32(&mut self, mask: &str) -> String {
        self.g.op("Cast", &[mask], vec![("to", int(ElemType::Float as i64))])
    }

    /// (1 - mask) * MASKED as [batch, 1, 1, seq]: padded keys get no attention.
    pub fn padding_bias(&mut self, mask_f32: &str) -> String {
        let one = self.g.scalar(1.0, Precision::F32);
        let masked = self.g.scalar(MASKED, Precision::F32);
        let inverted = self.g.op("Sub", &[&one, mask_f32], vec![]);
        let bias = self.g.op("Mul", &[&inverted, &masked], vec![]);
        let axes = self.g.ints(&[1, 2], &[2]);
        self.g.op("Unsqueeze", &[&bias, &axes], vec![])
    }

    /// The sequence length of `ids` [batch, seq] as a 1-element int64 tensor.
    pub fn seq_len(&mut self, ids: &str) -> String {
        self.g.op("Shape", &[ids], vec![("start", int(1)), ("end", int(2))])
    }

    /// Rows 0..seq of a [positions, hidden] table.
    pub fn first_rows(&mut self, table: &str, len: &str) -> String {
        let zero = self.g.ints(&[0], &[1]);
        let axis = self.g.ints(&[0], &[1]);
        self.g.op("Slice", &[table, &zero, len, &axis], vec![])
    }
}
