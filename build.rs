//! With the `train` feature the binary links libtorch: LIBTORCH's lib directory (set by
//! .cargo/config.toml to the venv of scripts/setup.sh) goes into its run path, so
//! `./target/release/simcse` finds libtorch without LD_LIBRARY_PATH. The trainer crate's own
//! build.rs compiles its C++; link arguments of a dependency do not reach this binary.
//! The slim build (no `train`) needs no LIBTORCH at all.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TRAIN").is_none() {
        return;
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(std::path::PathBuf::from) else {
        panic!("LIBTORCH is not set: run scripts/setup.sh (it makes .venv/libtorch for .cargo/config.toml), or build without the `train` feature (make slim)");
    };
    let libtorch = libtorch.canonicalize().unwrap_or(libtorch);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", libtorch.join("lib").display());
}
