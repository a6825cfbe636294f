//! `simcse_models::Ops` on libtorch tensors. The residual stream and LayerNorm stay f32; under
//! `Compute::Half` the products and attention run in half precision.

use super::{product, Compute};
use simcse_models::ops::{Activation, Attention, Linear, Norm, Ops, PositionIds, RelativePositionBias, Rope, Table, WeightLayout};
use std::collections::HashMap;
use std::convert::Infallible;
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// (1 - mask) * MASKED is added to attention scores: exp() of it is 0 in f32.
const MASKED: f64 = -1e9;

pub enum Variables<'a> {
    /// The first forward: each weight is created in the VarStore when first asked for.
    Create { root: &'a nn::Path<'a>, created: &'a mut HashMap<String, Tensor> },
    Use(&'a HashMap<String, Tensor>),
}

pub struct Torch<'a> {
    pub variables: Variables<'a>,
    pub precision: Compute,
    /// Dropout on.
    pub train: bool,
}

impl Torch<'_> {
    /// The variable `name` ("a.b.weight" is `weight` under the path a / b).
    fn variable(&mut self, name: &str, dims: &[usize], init: Init) -> Tensor {
        match &mut self.variables {
            Variables::Use(variables) => match variables.get(name) {
                Some(variable) => variable.shallow_clone(),
                // The description asks for the same weights in every forward.
                None => panic!("the encoder has no variable `{name}`: it was created without it"),
            },
            Variables::Create { root, created } => {
                if let Some(variable) = created.get(name) {
                    return variable.shallow_clone();
                }
                let (modules, leaf) = name.rsplit_once('.').unwrap_or(("", name));
                let path = modules.split('.').filter(|m| !m.is_empty()).fold((*root).clone(), |path, module| path / module);
                let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
                let variable = path.var(leaf, &dims, init);
                created.insert(name.to_string(), variable.shallow_clone());
                variable
            }
        }
    }

    /// The weight [out, in] and bias of a projection (a view for GPT-2's [in, out] Conv1D,
    /// whose gradient lands in the stored variable).
    fn projection(&mut self, linear: &Linear) -> (Tensor, Option<Tensor>) {
        let weight = self.variable(&linear.weight(), &linear.weight_dims(), Init::Randn { mean: 0.0, stdev: 0.02 });
        let bias = linear.bias.then(|| self.variable(&linear.bias(), &[linear.outputs], Init::Const(0.0)));
        let weight = match linear.layout {
            WeightLayout::OutIn => weight,
            WeightLayout::InOut => weight.tr(),
        };
        (weight, bias)
    }

    fn table(&mut self, table: &Table) -> Tensor {
        self.variable(&table.name, &table.dims(), Init::Randn { mean: 0.0, stdev: 1.0 })
    }

    fn half(&self) -> Option<Kind> {
        match self.precision {
            Compute::F32 => None,
            Compute::Half(half) => Some(half.kind()),
        }
    }
}

impl Ops for Torch<'_> {
    type Value = Tensor;
    type Mask = Tensor;
    type Error = Infallible;

    fn share(&self, x: &Tensor) -> Tensor {
        x.shallow_clone()
    }

    fn embedding(&mut self, ids: &Tensor, table: &Table) -> Result<Tensor, Infallible> {
        Ok(Tensor::embedding(&self.table(table), ids, -1, false, false))
    }

    fn embedding_row(&mut self, table: &Table, row: usize) -> Result<Tensor, Infallible> {
        Ok(self.table(table).get(row as i64))
    }

    fn position_embeddings(&mut self, ids: &Tensor, table: &Table, positions: PositionIds) -> Result<Tensor, Infallible> {
        let position_ids = match positions {
            PositionIds::FromZero => Tensor::arange(ids.size()[1], (Kind::Int64, ids.device())).unsqueeze(0),
            PositionIds::AfterPadding { pad } => {
                let real = ids.ne(pad).to_kind(Kind::Int64);
                real.cumsum(1, Kind::Int64) * &real + pad
            }
        };
        self.embedding(&position_ids, table)
    }

    fn linear(&mut self, x: &Tensor, linear: &Linear) -> Result<Tensor, Infallible> {
        let (weight, bias) = self.projection(linear);
        Ok(product(x, &weight, bias.as_ref(), self.precision))
    }

    fn linear_f32(&mut self, x: &Tensor, linear: &Linear) -> Result<Tensor, Infallible> {
        let (weight, bias) = self.projection(linear);
        Ok(x.linear(&weight, bias.as_ref()))
    }

    fn layer_norm(&mut self, x: &Tensor, norm: &Norm) -> Result<Tensor, Infallible> {
        let weight = self.variable(&norm.weight(), &[norm.hidden], Init::Const(1.0));
        let bias = self.variable(&norm.bias(), &[norm.hidden], Init::Const(0.0));
        Ok(x.layer_norm([norm.hidden as i64], Some(&weight), Some(&bias), norm.eps as f64, true))
    }

    fn rms_norm(&mut self, x: &Tensor, norm: &Norm) -> Result<Tensor, Infallible> {
        let weight = self.variable(&norm.weight(), &[norm.hidden], Init::Const(1.0));
        let x = x.to_kind(Kind::Float);
        let mean_square = x.square().mean_dim(-1, true, Kind::Float);
        Ok(weight * (x * (mean_square + norm.eps as f64).rsqrt()))
    }

    /// In f32, back in `x`'s kind.
    fn rotary(&mut self, x: &Tensor, rope: &Rope) -> Tensor {
        let (batch, seq, width) = x.size3().expect("[batch, seq, heads * head_dim]");
        let device = x.device();
        let frequencies = Tensor::from_slice(&rope.inverse_frequencies()).to_device(device);
        let positions = Tensor::arange(seq, (Kind::Float, device));
        let angles = positions.unsqueeze(1) * frequencies.unsqueeze(0);
        let angles = Tensor::cat(&[&angles, &angles], -1).unsqueeze(1);
        let heads = x.to_kind(Kind::Float).view([batch, seq, rope.heads as i64, rope.head_dim as i64]);
        let halves = heads.chunk(2, -1);
        let rotated = Tensor::cat(&[-&halves[1], halves[0].shallow_clone()], -1);
        let y = &heads * angles.cos() + rotated * angles.sin();
        y.view([batch, seq, width]).to_kind(x.kind())
    }

    /// [batch, 1, 1 or seq, seq] in the kind the attention runs in. In half, MASKED becomes
    /// fp16's lowest finite value rather than -inf, which would make a row whose keys are all
    /// masked NaN (exp() of it is 0 all the same).
    fn attention_mask(&mut self, mask: &Tensor, causal: bool) -> Tensor {
        let inverted: Tensor = 1.0 - mask.to_kind(Kind::Float);
        let padding = (inverted * MASKED).unsqueeze(1).unsqueeze(1);
        let bias = if causal {
            let seq = mask.size()[1];
            // [batch, 1, seq, seq]: not in place, the shape grows.
            padding + Tensor::ones([seq, seq], (Kind::Float, mask.device())).triu(1) * MASKED
        } else {
            padding
        };
        match self.half() {
            None => bias,
            Some(kind) => bias.clamp_min(-65504.0).to_kind(kind),
        }
    }

    /// [batch, heads, seq, seq]: the bias of the bucket of each (query, key) offset.
    fn add_position_bias(&mut self, mask: Tensor, ids: &Tensor, bias: &RelativePositionBias) -> Result<Tensor, Infallible> {
        let device = ids.device();
        let seq = ids.size()[1];
        let buckets_by_offset = Tensor::from_slice(&bias.buckets_by_offset()).to_device(device);
        let positions = Tensor::arange(seq, (Kind::Int64, device));
        let offsets = positions.unsqueeze(0) - positions.unsqueeze(1) + (bias.longest as i64 - 1);
        let buckets = buckets_by_offset.index_select(0, &offsets.view([-1])).view([seq, seq]);
        let table = self.table(&bias.table);
        let values = Tensor::embedding(&table, &buckets, -1, false, false).permute([2, 0, 1]).unsqueeze(0);
        Ok(&mask + values.to_kind(mask.kind()))
    }

    /// Through PyTorch's fused kernels (as transformers' default "sdpa" attention).
    fn attention(&mut self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, attention: &Attention) -> Tensor {
        let (batch, seq, hidden) = q.size3().expect("[batch, seq, hidden]");
        let heads = attention.heads as i64;
        let head_dim = hidden / heads;
        let group = (attention.heads / attention.kv_heads) as i64;
        let split = |x: &Tensor, heads: i64| x.view([batch, seq, heads, head_dim]).transpose(1, 2);
        // Each key/value head in turn for the `group` query heads it serves (transformers' repeat_kv).
        let shared = |x: &Tensor| match group {
            1 => split(x, heads),
            _ => split(x, heads / group).repeat_interleave_self_int(group, Some(1), None),
        };
        let dropout = if self.train { attention.dropout } else { 0.0 };
        Tensor::scaled_dot_product_attention(&split(q, heads), &shared(k), &shared(v), Some(mask), dropout, false, None, false)
            .transpose(1, 2)
            .contiguous()
            .view([batch, seq, hidden])
    }

    // Half outputs are promoted when added to the f32 residual stream.
    fn add(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        a + b
    }

    fn mul(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        a * b
    }

    fn div(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        a / b
    }

    fn scale_f32(&mut self, x: &Tensor, factor: f32) -> Tensor {
        x * factor as f64
    }

    fn activation(&mut self, x: &Tensor, activation: Activation) -> Tensor {
        match activation {
            Activation::GeluErf => x.gelu("none"),
            Activation::GeluTanh => x.gelu("tanh"),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
        }
    }

    fn tanh(&mut self, x: &Tensor) -> Tensor {
        x.tanh()
    }

    fn dropout(&mut self, x: &Tensor, p: f64) -> Tensor {
        x.dropout(p, self.train)
    }

    fn to_f32(&mut self, x: &Tensor) -> Tensor {
        x.to_kind(Kind::Float)
    }

    fn mask_to_f32(&mut self, mask: &Tensor) -> Tensor {
        mask.to_kind(Kind::Float)
    }

    fn first_token(&mut self, x: &Tensor) -> Tensor {
        x.select(1, 0)
    }

    fn last_token(&mut self, x: &Tensor, mask: &Tensor) -> Tensor {
        let hidden = x.size()[2];
        let last = mask.sum_dim_intlist(1, false, Kind::Int64) - 1;
        let index = last.view([-1, 1, 1]).expand([-1, 1, hidden], false);
        x.gather(1, &index, false).squeeze_dim(1)
    }

    fn sum_over_sequence(&mut self, x: &Tensor, keep: bool) -> Tensor {
        x.sum_dim_intlist(1, keep, x.kind())
    }

    fn cumsum_over_sequence(&mut self, x: &Tensor) -> Tensor {
        x.cumsum(1, x.kind())
    }

    fn unsqueeze_last(&mut self, x: &Tensor) -> Tensor {
        x.unsqueeze(-1)
    }

    fn split_last(&mut self, x: &Tensor, sizes: &[usize]) -> Vec<Tensor> {
        let sizes: Vec<i64> = sizes.iter().map(|&s| s as i64).collect();
        x.split_with_sizes(sizes, -1)
    }

    /// One cast for the query, key and value products, where each casting would keep a copy
    /// for backward.
    fn linear_input(&mut self, x: &Tensor) -> Tensor {
        match self.half() {
            None => x.shallow_clone(),
            Some(kind) => x.to_kind(kind),
        }
    }
}
