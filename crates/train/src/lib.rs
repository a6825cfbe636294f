//! The libtorch side of the project: the encoders (the reference forward of exported graphs,
//! and what training trains), and which libtorch and devices this binary runs on.

#[macro_use]
extern crate simcse_core;

/// The tch this crate is built on, for users that need its tensors (tests, benchmarks).
pub use tch;

pub mod checkpoint;
pub mod data;
pub mod device;
pub mod foreach;
pub mod half_linear;
pub mod loss;
pub mod mlm;
pub mod model;
pub mod optim;
pub mod pickle_load;
pub mod presets;
pub mod reference;
pub mod run_dir;
pub mod simcse_model;
pub mod trainer;

/// The libtorch this binary is linked against and its devices, for `simcse env`.
pub struct TorchInfo {
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    pub threads: i32,
}

pub fn torch_info() -> TorchInfo {
    device::load_cuda();
    TorchInfo {
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        threads: tch::get_num_threads(),
    }
}
