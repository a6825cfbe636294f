//! The Hugging Face Trainer's optimization under SimCSE's scripts: AdamW (PyTorch's
//! `torch.optim.AdamW` arithmetic, betas 0.9/0.999, eps 1e-8, weight decay 0), a linear decay of
//! the learning rate to 0, gradient clipping at a global norm of 1.0; and dynamic loss scaling
//! for fp16 (GradScaler's: skip the step on inf/NaN and halve the scale, double it after 2000
//! good steps). PyTorch's own multi-tensor kernels do the arithmetic (fused AdamW, foreach
//! unscale and clipping); the optimizer's state is plain tensors, so that it is saved and resumed.

use super::foreach::{self, fused_adamw};
use tch::{Kind, Tensor};

pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates applied so far (the bias corrections use it).
    pub steps: i64,
    params: Vec<(String, Tensor)>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
    /// The fused kernel's per-parameter step counters (f32, on the parameters' device).
    step_counts: Vec<Tensor>,
}

impl AdamW {
    pub fn new(params: Vec<(String, Tensor)>, weight_decay: f64) -> AdamW {
        let exp_avgs = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let exp_avg_sqs = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let step_counts = params.iter().map(|(_, p)| Tensor::zeros([], (Kind::Float, p.device()))).collect();
        AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, steps: 0, params, exp_avgs, exp_avg_sqs, step_counts }
    }

    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The gradients that exist (a parameter no loss reached has none).
    pub fn grads(&self) -> Vec<Tensor> {
        self.params.iter().map(|(_, p)| p.grad()).filter(Tensor::defined).collect()
    }

    /// torch.optim.AdamW's update, with PyTorch's fused kernel, for the parameters that have
    /// gradients.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let mut lists: [Vec<Tensor>; 5] = Default::default();
        for (i, (_, param)) in self.params.iter().enumerate() {
            let grad = param.grad();
            if grad.defined() {
                lists[0].push(param.shallow_clone());
                lists[1].push(grad);
                lists[2].push(self.exp_avgs[i].shallow_clone());
                lists[3].push(self.exp_avg_sqs[i].shallow_clone());
                lists[4].push(self.step_counts[i].shallow_clone());
            }
        }
        tch::no_grad(|| {
            fused_adamw(&lists[0], &lists[1], &lists[2], &lists[3], &lists[4], lr, (self.beta1, self.beta2), self.weight_decay, self.eps);
        });
    }

    /// As the Hugging Face Trainer's `zero_grad(set_to_none=True)`: gradients are released
    /// rather than zeroed, so they take no memory during the next forward pass, where the peak is.
    pub fn zero_grad(&mut self) {
        let params: Vec<Tensor> = self.params.iter().map(|(_, p)| p.shallow_clone()).collect();
        foreach::clear_grads(&params);
    }

    /// `exp_avg.<name>` and `exp_avg_sq.<name>` for saving.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(self.exp_avgs.iter().zip(&self.exp_avg_sqs))
            .flat_map(|((name, _), (m, v))| [(format!("exp_avg.{name}"), m.shallow_clone()), (format!("exp_avg_sq.{name}"), v.shallow_clone())])
            .collect()
    }

    pub fn load_state(&mut self, tensors: &std::collections::HashMap<String, Tensor>, steps: i64) -> anyhow::Result<()> {
        tch::no_grad(|| -> anyhow::Result<()> {
            for (i, (name, _)) in self.params.iter().enumerate() {
                for (prefix, moment) in [("exp_avg", &mut self.exp_avgs[i]), ("exp_avg_sq", &mut self.exp_avg_sqs[i])] {
                    let saved = tensors.get(&format!("{prefix}.{name}")).ok_or_else(|| anyhow::anyhow!("optimizer state lacks {prefix}.{name}"))?;
                    moment.copy_(&saved.to_device(moment.device()));
                }
                let _ = self.step_counts[i].fill_(steps as f64);
            }
            Ok(())
        })?;
        self.steps = steps;
        Ok(())
    }
}

/// Hugging Face's `get_linear_schedule_with_warmup`: a linear rise over `warmup` steps, then a
/// linear decay to 0 at `total`.
pub fn linear_schedule(base_lr: f64, step: i64, total: i64, warmup: i64) -> f64 {
    if step < warmup {
        return base_lr * step as f64 / warmup.max(1) as f64;
    }
    base_lr * ((total - step) as f64 / (total - warmup).max(1) as f64).max(0.0)
}

/// `torch.nn.utils.clip_grad_norm_`: scales all gradients so that their global 2-norm is at
/// most `max_norm`. Returns the norm before clipping (a tensor: reading it synchronizes).
pub fn clip_grad_norm(grads: &[Tensor], max_norm: f64) -> Tensor {
    tch::no_grad(|| foreach::clip_grad_norm(grads, max_norm))
}

/// PyTorch's GradScaler: the loss is multiplied by `scale` before backward; gradients are
/// divided by it before clipping and the step.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub good_steps: u32,
    pub enabled: bool,
}

const GROWTH_INTERVAL: u32 = 2000;

impl LossScaler {
    pub fn new(enabled: bool) -> LossScaler {
        LossScaler { scale: if enabled { 65536.0 } else { 1.0 }, good_steps: 0, enabled }
    }

    /// Unscales the gradients in place; false where any is inf or NaN (the step must be
    /// skipped). One multi-tensor kernel, one synchronization.
    pub fn unscale(&self, grads: &[Tensor]) -> bool {
        if !self.enabled || grads.is_empty() {
            return true;
        }
        let device = grads[0].device();
        let found_inf = Tensor::zeros([1], (Kind::Float, device));
        let inv_scale = Tensor::full([1], 1.0 / self.scale, (Kind::Float, device));
        tch::no_grad(|| foreach::unscale(grads, &found_inf, &inv_scale));
        found_inf.double_value(&[0]) == 0.0
    }

    /// After a step: halve on overflow, double after a run of good steps.
    pub fn update(&mut self, finite: bool) {
        if !self.enabled {
            return;
        }
        if finite {
            self.good_steps += 1;
            if self.good_steps >= GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.good_steps = 0;
        }
    }
}
