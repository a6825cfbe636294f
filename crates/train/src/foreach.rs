//! PyTorch's multi-tensor optimizer kernels (csrc/foreach.cpp) from Rust: the fused AdamW, AMP's
//! unscale-and-check, and the foreach gradient clipping. On a GPU each is one launch for all
//! parameters where a loop over tensors would be several per parameter.

use std::ffi::{c_char, c_int, CStr};
use tch::Tensor;
use torch_sys::C_tensor;

#[allow(improper_ctypes)]
extern "C" {
    fn simcse_fused_adamw(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *const C_tensor,
        exp_avg_sqs: *const *const C_tensor,
        steps: *const *const C_tensor,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        error: *mut *mut c_char,
    ) -> c_int;
    fn simcse_unscale(grads: *const *const C_tensor, n: i64, found_inf: *const C_tensor, inv_scale: *const C_tensor, error: *mut *mut c_char) -> c_int;
    fn simcse_clear_grads(params: *const *const C_tensor, n: i64, error: *mut *mut c_char) -> c_int;
    fn simcse_clip_grad_norm(grads: *const *const C_tensor, n: i64, max_norm: f64, error: *mut *mut c_char) -> *mut C_tensor;
}

fn handles(tensors: &[Tensor]) -> Vec<*const C_tensor> {
    tensors.iter().map(Tensor::as_ptr).collect()
}

/// Turns a C++ failure into a panic with its message: these run on tensors the trainer built,
/// so a failure is a bug, as in tch's own operations.
unsafe fn check(status: bool, error: *mut c_char, what: &str) {
    if !status {
        let message = CStr::from_ptr(error).to_string_lossy().into_owned();
        libc::free(error.cast());
        panic!("{what} failed: {message}");
    }
}

/// torch.optim.AdamW(fused=True) over all parameters; `steps` are per-parameter f32 counters.
#[allow(clippy::too_many_arguments)]
pub fn fused_adamw(params: &[Tensor], grads: &[Tensor], exp_avgs: &[Tensor], exp_avg_sqs: &[Tensor], steps: &[Tensor], lr: f64, betas: (f64, f64), weight_decay: f64, eps: f64) {
    let n = params.len();
    assert!(grads.len() == n && exp_avgs.len() == n && exp_avg_sqs.len() == n && steps.len() == n);
    let (p, g, m, v, s) = (handles(params), handles(grads), handles(exp_avgs), handles(exp_avg_sqs), handles(steps));
    let mut error = std::ptr::null_mut();
    // SAFETY: every handle is a live tch tensor for the duration of the call.
    unsafe {
        let status = simcse_fused_adamw(p.as_ptr(), g.as_ptr(), m.as_ptr(), v.as_ptr(), s.as_ptr(), n as i64, lr, betas.0, betas.1, weight_decay, eps, &mut error);
        check(status == 0, error, "fused AdamW");
    }
}

/// Multiplies the gradients by `inv_scale` (a one-element f32 tensor); `found_inf` becomes 1
/// where any is not finite.
pub fn unscale(grads: &[Tensor], found_inf: &Tensor, inv_scale: &Tensor) {
    let g = handles(grads);
    let mut error = std::ptr::null_mut();
    // SAFETY: as above.
    unsafe {
        let status = simcse_unscale(g.as_ptr(), g.len() as i64, found_inf.as_ptr(), inv_scale.as_ptr(), &mut error);
        check(status == 0, error, "unscaling gradients");
    }
}

/// Releases the parameters' gradients (`zero_grad(set_to_none=True)`).
pub fn clear_grads(params: &[Tensor]) {
    let p = handles(params);
    let mut error = std::ptr::null_mut();
    // SAFETY: as above.
    unsafe {
        let status = simcse_clear_grads(p.as_ptr(), p.len() as i64, &mut error);
        check(status == 0, error, "releasing gradients");
    }
}

/// Scales the gradients to a global 2-norm of at most `max_norm`; returns the norm before (a
/// one-element tensor, not synchronized).
pub fn clip_grad_norm(grads: &[Tensor], max_norm: f64) -> Tensor {
    let g = handles(grads);
    let mut error = std::ptr::null_mut();
    // SAFETY: as above; the result is a new tensor tch takes ownership of.
    unsafe {
        let total = simcse_clip_grad_norm(g.as_ptr(), g.len() as i64, max_norm, &mut error);
        check(!total.is_null(), error, "clipping gradients");
        Tensor::from_ptr(total)
    }
}
