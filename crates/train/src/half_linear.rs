//! The hand-written half-precision linear layer (csrc/half_linear.cpp) from Rust: fp16 (or
//! bf16) GEMMs forward and backward, fp32 gradients for the fp32 master weights.

use std::ffi::{c_char, c_int, CStr};
use tch::Tensor;

#[allow(improper_ctypes)]
extern "C" {
    fn simcse_half_linear(
        x: *const torch_sys::C_tensor,
        weight: *const torch_sys::C_tensor,
        bias: *const torch_sys::C_tensor,
        bf16: c_int,
        error: *mut *mut c_char,
    ) -> *mut torch_sys::C_tensor;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    F16,
    BF16,
}

impl Half {
    pub fn kind(self) -> tch::Kind {
        match self {
            Half::F16 => tch::Kind::Half,
            Half::BF16 => tch::Kind::BFloat16,
        }
    }
}

/// y = x W^T + b in half precision, differentiable: `weight` [out, in] and `bias` [out] stay
/// f32 (master weights) and receive f32 gradients. The output is half.
pub fn half_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, half: Half) -> Tensor {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: the handles are live tch tensors for the duration of the call; the function
    // returns a new `torch::Tensor*` that `Tensor::from_ptr` takes ownership of, or null with
    // a malloc'd message.
    unsafe {
        let y = simcse_half_linear(
            x.as_ptr(),
            weight.as_ptr(),
            bias.map_or(std::ptr::null(), |b| b.as_ptr()),
            (half == Half::BF16) as c_int,
            &mut error,
        );
        if y.is_null() {
            let message = CStr::from_ptr(error).to_string_lossy().into_owned();
            libc::free(error.cast());
            // A shape mismatch is a programming error in the model, like tch's own panics.
            panic!("half-precision linear failed: {message}");
        }
        Tensor::from_ptr(y)
    }
}
