//! SimCSE's poolers (`models.py`), and GPT-2's position-weighted mean, over the hidden states
//! of `Encoder::forward`.

use simcse_core::Pooler;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// sum_i h_i m_i / sum_i m_i
fn masked_mean(h: &Tensor, mask: &Tensor) -> Tensor {
    let m = mask.to_kind(h.kind()).unsqueeze(-1);
    (h * &m).sum_dim_intlist(1, false, h.kind()) / m.sum_dim_intlist(1, false, h.kind())
}

/// `dense`: BERT's pooler layer, which `cls` runs the [CLS] state through (with tanh).
pub fn pool(pooler: Pooler, states: &[Tensor], mask: &Tensor, dense: Option<&nn::Linear>) -> Tensor {
    let last = states.last().expect("at least one hidden state");
    match pooler {
        Pooler::ClsBeforePooler => last.select(1, 0),
        Pooler::Cls => {
            let dense = dense.expect("the `cls` pooler needs the model's pooler layer");
            dense.forward(&last.select(1, 0)).tanh()
        }
        Pooler::Avg => masked_mean(last, mask),
        Pooler::AvgTop2 => masked_mean(&((last + &states[states.len().saturating_sub(2)]) / 2.0), mask),
        Pooler::AvgFirstLast => masked_mean(&((&states[1.min(states.len() - 1)] + last) / 2.0), mask),
        Pooler::Wavg => {
            let m = mask.to_kind(Kind::Float);
            let positions = m.cumsum(1, Kind::Float) * &m;
            let weights = &positions / positions.sum_dim_intlist(1, true, Kind::Float);
            (last * weights.unsqueeze(-1).to_kind(last.kind())).sum_dim_intlist(1, false, last.kind())
        }
    }
}
