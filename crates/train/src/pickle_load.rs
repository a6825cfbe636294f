//! libtorch's reader of `torch.save` files (csrc/pickle_load.cpp, over `torch::pickle_load`):
//! the reference the `pytorch_model.bin` the trainer writes is checked against.

use std::ffi::{c_char, c_void, CStr};
use tch::Tensor;

type Sink = extern "C" fn(*mut c_void, *const c_char, *mut torch_sys::C_tensor);

#[allow(improper_ctypes)]
extern "C" {
    fn simcse_pickle_load(data: *const c_char, len: usize, sink: Sink, context: *mut c_void, error: *mut *mut c_char) -> i32;
}

extern "C" fn collect(context: *mut c_void, name: *const c_char, tensor: *mut torch_sys::C_tensor) {
    // SAFETY: `context` is the Vec passed below; `name` a C string valid for the call; the
    // tensor a new handle whose ownership passes here.
    unsafe {
        let out = &mut *(context as *mut Vec<(String, Tensor)>);
        out.push((CStr::from_ptr(name).to_string_lossy().into_owned(), Tensor::from_ptr(tensor)));
    }
}

/// The state dict in `bytes` (a torch.save file), as libtorch reads it.
pub fn load_state_dict(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: the buffer is valid for `len` bytes; the sink only pushes into `out`.
    let status = unsafe {
        simcse_pickle_load(bytes.as_ptr().cast(), bytes.len(), collect, (&mut out as *mut Vec<(String, Tensor)>).cast(), &mut error)
    };
    if status != 0 {
        // SAFETY: on failure `error` is a malloc'd C string.
        let message = unsafe { CStr::from_ptr(error).to_string_lossy().into_owned() };
        unsafe { libc::free(error.cast()) };
        return Err(message);
    }
    Ok(out)
}
