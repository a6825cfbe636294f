//! The operations a model is written in, and the descriptions of the weights it asks for.
//!
//! An engine implements the primitives; the compositions (embeddings, self-attention, the
//! residual steps) have plain defaults in [`crate::plain`] that an engine overrides where it
//! has a fused kernel for the whole thing (ONNX Runtime's contrib ops).

use crate::plain;
pub use simcse_core::architecture::Activation;

/// How a checkpoint stores a projection's matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `nn.Linear`: [out, in], y = x Wᵀ + b.
    OutIn,
    /// GPT-2's `Conv1D`: [in, out], y = x W + b.
    InOut,
}

/// A projection with the weights `{name}.weight` and, if `bias`, `{name}.bias`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub name: String,
    pub inputs: usize,
    pub outputs: usize,
    pub layout: WeightLayout,
    /// Llama's projections have none.
    pub bias: bool,
}

impl Linear {
    /// An `nn.Linear`.
    pub fn new(name: impl Into<String>, inputs: usize, outputs: usize) -> Linear {
        Linear { name: name.into(), inputs, outputs, layout: WeightLayout::OutIn, bias: true }
    }

    /// An `nn.Linear(bias=False)`.
    pub fn without_bias(name: impl Into<String>, inputs: usize, outputs: usize) -> Linear {
        Linear { bias: false, ..Linear::new(name, inputs, outputs) }
    }

    /// GPT-2's `Conv1D`.
    pub fn conv1d(name: impl Into<String>, inputs: usize, outputs: usize) -> Linear {
        Linear { name: name.into(), inputs, outputs, layout: WeightLayout::InOut, bias: true }
    }

    pub fn weight(&self) -> String {
        format!("{}.weight", self.name)
    }

    pub fn bias(&self) -> String {
        format!("{}.bias", self.name)
    }

    /// The weight's shape as the checkpoint stores it.
    pub fn weight_dims(&self) -> [usize; 2] {
        match self.layout {
            WeightLayout::OutIn => [self.outputs, self.inputs],
            WeightLayout::InOut => [self.inputs, self.outputs],
        }
    }
}

/// A LayerNorm over the last axis with `{name}.weight` and `{name}.bias` (an RMSNorm reads
/// the weight only).
#[derive(Debug, Clone)]
pub struct Norm {
    pub name: String,
    pub hidden: usize,
    pub eps: f32,
}

impl Norm {
    pub fn new(name: impl Into<String>, hidden: usize, eps: f32) -> Norm {
        Norm { name: name.into(), hidden, eps }
    }

    pub fn weight(&self) -> String {
        format!("{}.weight", self.name)
    }

    pub fn bias(&self) -> String {
        format!("{}.bias", self.name)
    }
}

/// An embedding table [rows, dim] stored as `name` (the tensor's full name).
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub rows: usize,
    pub dim: usize,
}

impl Table {
    pub fn new(name: impl Into<String>, rows: usize, dim: usize) -> Table {
        Table { name: name.into(), rows, dim }
    }

    pub fn dims(&self) -> [usize; 2] {
        [self.rows, self.dim]
    }
}

/// Which row of the position table each token reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionIds {
    /// 0, 1, 2, ... (BERT, GPT-2).
    FromZero,
    /// RoBERTa's `create_position_ids_from_input_ids`: `pad` + 1 + the index among the
    /// non-padding tokens, `pad` at padding.
    AfterPadding { pad: i64 },
}

/// The segment embedding a token gets.
pub enum TokenTypes<'a, V> {
    /// BERT's `token_type_ids` input.
    Ids(&'a V),
    /// Type 0 everywhere (RoBERTa, or BERT given one segment).
    AllZero,
}

/// The embedding layer: words + positions (+ token types), then LayerNorm where the
/// architecture has one, then dropout.
pub struct Embeddings<'a, V> {
    pub ids: &'a V,
    pub words: Table,
    pub positions: Table,
    pub position_ids: PositionIds,
    pub token_types: Option<(Table, TokenTypes<'a, V>)>,
    pub norm: Option<Norm>,
    pub dropout: f64,
}

/// Where self-attention's query, key and value projections come from.
#[derive(Debug, Clone)]
pub enum Qkv {
    /// Three `nn.Linear`s (BERT).
    Separate { query: Linear, key: Linear, value: Linear },
    /// One projection to [query | key | value] (GPT-2's `c_attn`).
    Packed(Linear),
}

/// MPNet's attention bias: a learned value per head for each bucket of relative position
/// (key position - query position), shared by every layer; as transformers'
/// `MPNetEncoder.compute_position_bias`.
#[derive(Debug, Clone)]
pub struct RelativePositionBias {
    /// [rows, heads]: a row per bucket (and maybe more, unused).
    pub table: Table,
    pub buckets: usize,
    pub max_distance: usize,
    /// The longest sequence: [`RelativePositionBias::buckets_by_offset`] covers every offset
    /// between two of its positions.
    pub longest: usize,
}

impl RelativePositionBias {
    /// transformers' `relative_position_bucket`, its float steps in f32 as PyTorch computes
    /// them: half the buckets for keys after the query; in each half, distances below a
    /// quarter of the buckets get one each, longer ones share buckets on a log scale up to
    /// `max_distance`.
    pub fn bucket(&self, relative: i64) -> i64 {
        let half = (self.buckets / 2) as i64;
        let n = -relative;
        let side = if n < 0 { half } else { 0 };
        let n = n.abs();
        let exact = half / 2;
        if n < exact {
            return side + n;
        }
        let log_ratio = (n as f32 / exact as f32).ln() / ((self.max_distance as f64 / exact as f64).ln() as f32);
        let large = exact + (log_ratio * (half - exact) as f32) as i64;
        side + large.min(half - 1)
    }

    /// The bucket of every offset from -(longest - 1) to longest - 1, in that order: the bucket
    /// of query i and key j is entry j - i + longest - 1.
    pub fn buckets_by_offset(&self) -> Vec<i64> {
        let reach = self.longest as i64 - 1;
        (-reach..=reach).map(|offset| self.bucket(offset)).collect()
    }
}

/// Rotary position embeddings (RoPE) as transformers' Llama applies them to the queries and
/// keys [batch, seq, heads * head_dim]: each head's pair (i, i + head_dim / 2) rotated by the
/// angle position * base^(-2i / head_dim), positions counted from 0.
#[derive(Debug, Clone, Copy)]
pub struct Rope {
    pub heads: usize,
    pub head_dim: usize,
    pub base: f64,
}

impl Rope {
    /// The rotation's frequency of each pair, bit for bit as transformers computes `inv_freq`:
    /// 1 / base^(2i / head_dim), the exponent in f32, the power rounded from f64 to f32.
    pub fn inverse_frequencies(&self) -> Vec<f32> {
        let exponent = |i: usize| (2 * i) as f32 / self.head_dim as f32;
        (0..self.head_dim / 2).map(|i| 1.0 / self.base.powf(exponent(i) as f64) as f32).collect()
    }
}

/// Multi-head scaled dot-product attention's shape.
#[derive(Debug, Clone, Copy)]
pub struct Attention {
    pub heads: usize,
    /// The key and value heads: fewer than `heads` where groups of query heads share one
    /// (grouped-query attention, Llama); `heads` otherwise.
    pub kv_heads: usize,
    /// The queries' width, heads * head_dim.
    pub hidden: usize,
    /// On the attention probabilities, in training.
    pub dropout: f64,
}

/// An engine's operations. `Value` is what flows between them: a tensor, or the name of a
/// graph node's output. Activations are [batch, seq, hidden] unless said otherwise.
pub trait Ops {
    type Value;
    /// The attention mask as the engine's attention takes it (an additive bias, or the raw mask
    /// for a fused kernel), made once per forward.
    type Mask;
    type Error;

    /// Another handle on the same value: a tensor's shallow clone, a node name's copy
    /// (libtorch tensors are not `Clone`).
    fn share(&self, x: &Self::Value) -> Self::Value;

    // ------------------------------------------------------------ weights, by Hugging Face name

    /// Rows of `table` at `ids` [batch, seq].
    fn embedding(&mut self, ids: &Self::Value, table: &Table) -> Result<Self::Value, Self::Error>;
    /// One row of `table`, broadcast over batch and sequence when added.
    fn embedding_row(&mut self, table: &Table, row: usize) -> Result<Self::Value, Self::Error>;
    /// The position embeddings of `ids`' tokens.
    fn position_embeddings(&mut self, ids: &Self::Value, table: &Table, positions: PositionIds) -> Result<Self::Value, Self::Error>;
    /// x W + b in the engine's compute precision.
    fn linear(&mut self, x: &Self::Value, linear: &Linear) -> Result<Self::Value, Self::Error>;
    /// x W + b in f32 whatever the compute precision (the pooler's layer: small, and its
    /// output is the sentence embedding).
    fn linear_f32(&mut self, x: &Self::Value, linear: &Linear) -> Result<Self::Value, Self::Error>;
    /// LayerNorm, computed in f32.
    fn layer_norm(&mut self, x: &Self::Value, norm: &Norm) -> Result<Self::Value, Self::Error>;
    /// Llama's RMSNorm in f32: weight * x / sqrt(mean(x²) + eps).
    fn rms_norm(&mut self, x: &Self::Value, norm: &Norm) -> Result<Self::Value, Self::Error>;
    /// `x` [batch, seq, heads * head_dim] with rotary position embeddings applied (in f32).
    fn rotary(&mut self, x: &Self::Value, rope: &Rope) -> Self::Value;

    // ------------------------------------------------------------ attention

    /// From the [batch, seq] 0/1 mask: padded keys (and, if `causal`, later ones) get no attention.
    fn attention_mask(&mut self, mask: &Self::Value, causal: bool) -> Self::Mask;
    /// `mask` with the relative-position bias of `ids`' [seq, seq] positions added to every
    /// head's scores (MPNet).
    fn add_position_bias(&mut self, mask: Self::Mask, ids: &Self::Value, bias: &RelativePositionBias) -> Result<Self::Mask, Self::Error>;
    /// softmax(q kᵀ / sqrt(head_dim) + mask) v, per head, heads merged back; with fewer key
    /// and value heads than query heads, each serves `heads / kv_heads` query heads in turn.
    fn attention(&mut self, q: &Self::Value, k: &Self::Value, v: &Self::Value, mask: &Self::Mask, attention: &Attention) -> Self::Value;

    // ------------------------------------------------------------ element-wise and reductions

    fn add(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value;
    fn mul(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value;
    fn div(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value;
    /// `x` (in f32) times `factor`.
    fn scale_f32(&mut self, x: &Self::Value, factor: f32) -> Self::Value;
    fn activation(&mut self, x: &Self::Value, activation: Activation) -> Self::Value;
    fn tanh(&mut self, x: &Self::Value) -> Self::Value;
    /// Dropout with probability `p` in training; the identity otherwise.
    fn dropout(&mut self, x: &Self::Value, p: f64) -> Self::Value;
    /// `x` in f32 (the poolers work in f32).
    fn to_f32(&mut self, x: &Self::Value) -> Self::Value;
    /// The [batch, seq] 0/1 mask as f32.
    fn mask_to_f32(&mut self, mask: &Self::Value) -> Self::Value;
    /// [batch, seq, hidden] -> [batch, hidden] at position 0.
    fn first_token(&mut self, x: &Self::Value) -> Self::Value;
    /// [batch, seq, hidden] -> [batch, hidden] at each row's last non-padding position
    /// (`mask`: the [batch, seq] f32 mask, padding on the right).
    fn last_token(&mut self, x: &Self::Value, mask: &Self::Value) -> Self::Value;
    /// The sum over axis 1 (the sequence), kept as an axis of 1 if `keep`.
    fn sum_over_sequence(&mut self, x: &Self::Value, keep: bool) -> Self::Value;
    /// The running sum over axis 1 of [batch, seq].
    fn cumsum_over_sequence(&mut self, x: &Self::Value) -> Self::Value;
    /// [batch, seq] -> [batch, seq, 1].
    fn unsqueeze_last(&mut self, x: &Self::Value) -> Self::Value;
    /// Consecutive slices of the last axis, of these sizes.
    fn split_last(&mut self, x: &Self::Value, sizes: &[usize]) -> Vec<Self::Value>;
    /// `x` as the projections that read it take it: one conversion shared by the query, key
    /// and value projections (an engine that casts for its products casts once).
    fn linear_input(&mut self, x: &Self::Value) -> Self::Value {
        self.share(x)
    }

    // ------------------------------------------------------------ compositions an engine may fuse

    fn embeddings(&mut self, embeddings: &Embeddings<Self::Value>) -> Result<Self::Value, Self::Error> {
        plain::embeddings(self, embeddings)
    }

    /// Multi-head self-attention of `x`: the projections, then `attention`.
    fn self_attention(&mut self, x: &Self::Value, qkv: &Qkv, mask: &Self::Mask, attention: &Attention) -> Result<Self::Value, Self::Error> {
        plain::self_attention(self, x, qkv, mask, attention)
    }

    /// activation(x W + b).
    fn linear_activation(&mut self, x: &Self::Value, linear: &Linear, activation: Activation) -> Result<Self::Value, Self::Error> {
        plain::linear_activation(self, x, linear, activation)
    }

    /// The post-LayerNorm residual step (BERT): LayerNorm(dropout(x W + b) + skip).
    fn linear_add_norm(&mut self, x: &Self::Value, linear: &Linear, skip: &Self::Value, norm: &Norm, dropout: f64) -> Result<Self::Value, Self::Error> {
        plain::linear_add_norm(self, x, linear, skip, norm, dropout)
    }

    /// The pre-LayerNorm residual step (GPT-2): the residual stream dropout(x W + b) + skip,
    /// and its LayerNorm `norm` that the next sub-block reads.
    fn linear_add_then_norm(
        &mut self,
        x: &Self::Value,
        linear: &Linear,
        skip: &Self::Value,
        norm: &Norm,
        dropout: f64,
    ) -> Result<(Self::Value, Self::Value), Self::Error> {
        plain::linear_add_then_norm(self, x, linear, skip, norm, dropout)
    }
}
