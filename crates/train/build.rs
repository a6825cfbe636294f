//! Builds the trainer's C++ (src/csrc/: the half-precision linear, the fused optimizer, libtorch's
//! torch.save reader) against the libtorch that tch uses (LIBTORCH, set by .cargo/config.toml to
//! the venv of scripts/setup.sh). The binaries that link this crate put libtorch in their run
//! path themselves (the workspace root's build.rs).

use std::path::PathBuf;

/// The C++ the trainer needs beyond tch: the half-precision linear and PyTorch's multi-tensor
/// optimizer kernels, and libtorch's reader of torch.save files.
const CPP_FILES: &[&str] = &["src/csrc/half_linear.cpp", "src/csrc/foreach.cpp", "src/csrc/pickle_load.cpp"];

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    for file in CPP_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        panic!("LIBTORCH is not set: run scripts/setup.sh, which makes .venv/libtorch for .cargo/config.toml");
    };
    let libtorch = libtorch.canonicalize().unwrap_or(libtorch);
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        // PyPI's torch 2.11 is built with the C++11 ABI, as torch-sys detects.
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .files(CPP_FILES)
        .compile("simcse_torch_extras");
    // For this crate's own tests; the binaries that link it set their own (the root build.rs).
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", libtorch.join("lib").display());
}
