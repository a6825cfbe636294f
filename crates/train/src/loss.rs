//! SimCSE's training objective (`cl_forward` in SimCSE's models.py): cross-entropy over cosine
//! similarities / temperature, the positives on the diagonal, hard negatives as extra columns;
//! and the optional MLM loss.
// `a = a + b` rather than `a += b`: on tch tensors `+=` is in place, which autograd may not allow.
#![allow(clippy::assign_op_pattern)]

use tch::{Kind, Reduction, Tensor};

/// torch.nn.CosineSimilarity's eps.
const COSINE_EPS: f64 = 1e-8;

fn normalized(z: &Tensor) -> Tensor {
    z / z.norm_scalaropt_dim(2, [-1], true).clamp_min(COSINE_EPS)
}

/// The contrastive loss of a batch: `z1[i]` and `z2[i]` are the two views (or the pair) of
/// sentence i, `z3[i]` its hard negative. `hard_negative_weight` is added to each row's own
/// hard-negative logit (SimCSE: "weights are actually logits of weights").
/// Returns (loss, logits [batch, batch or 2 batch]).
pub fn contrastive_loss(z1: &Tensor, z2: &Tensor, z3: Option<&Tensor>, temp: f64, hard_negative_weight: f64) -> (Tensor, Tensor) {
    let (z1, z2) = (normalized(&z1.to_kind(Kind::Float)), normalized(&z2.to_kind(Kind::Float)));
    let batch = z1.size()[0];
    let mut logits = z1.matmul(&z2.tr()) / temp;
    if let Some(z3) = z3 {
        let z3 = normalized(&z3.to_kind(Kind::Float));
        let mut negatives = z1.matmul(&z3.tr()) / temp;
        if hard_negative_weight != 0.0 {
            negatives = negatives + Tensor::eye(batch, (Kind::Float, z1.device())) * hard_negative_weight;
        }
        logits = Tensor::cat(&[logits, negatives], 1);
    }
    let labels = Tensor::arange(batch, (Kind::Int64, z1.device()));
    let loss = logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, 0.0);
    (loss, logits)
}

/// Cross-entropy of MLM predictions [batch, seq, vocab] against labels (-100: not masked).
pub fn mlm_loss(prediction_scores: &Tensor, labels: &Tensor) -> Tensor {
    let vocab = *prediction_scores.size().last().unwrap();
    prediction_scores
        .to_kind(Kind::Float)
        .view([-1, vocab])
        .cross_entropy_loss::<Tensor>(&labels.view([-1]), None, Reduction::Mean, -100, 0.0)
}
