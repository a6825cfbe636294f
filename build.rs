//! Lets `./target/release/simcse` find libtorch without LD_LIBRARY_PATH: the directory tch was
//! built against (LIBTORCH, set by .cargo/config.toml to the venv of scripts/setup.sh) goes into
//! the binary's run path. ONNX Runtime is found at run time instead (runtime/src/onnxruntime.rs).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set: run scripts/setup.sh; the binary will need LD_LIBRARY_PATH");
        return;
    };
    let lib = PathBuf::from(libtorch).join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
