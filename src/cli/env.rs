//! `simcse env`: what this binary runs on, so that "CUDA is not available" has an answer.

/// The cargo features of this build, as `simcse env` lists them.
const FEATURES: &[(&str, bool)] =
    &[("train", cfg!(feature = "train")), ("ort", cfg!(feature = "ort")), ("tract", cfg!(feature = "tract"))];

pub fn run() -> anyhow::Result<()> {
    outln!("simcse {}", env!("CARGO_PKG_VERSION"));
    let features: Vec<String> = FEATURES.iter().map(|(name, on)| format!("{}{name}", if *on { "+" } else { "-" })).collect();
    outln!("features   {}", features.join(" "));
    libtorch();
    onnxruntime();
    if cfg!(feature = "tract") {
        outln!("tract      0.23, linked in (pure Rust, CPU)");
    } else {
        outln!("tract      not in this build (built without the `tract` feature)");
    }
    Ok(())
}

#[cfg(not(feature = "train"))]
fn libtorch() {
    outln!("libtorch   not in this build (built without the `train` feature)");
}

#[cfg(feature = "train")]
fn libtorch() {
    let torch = simcse_train::torch_info();
    outln!(
        "libtorch   2.11 (tch 0.24), {} CPU threads, CUDA {}",
        torch.threads,
        if torch.cuda_available {
            format!("available ({} devices, cuDNN {})", torch.cuda_devices, if torch.cudnn_available { "yes" } else { "no" })
        } else {
            "not available".to_string()
        }
    );
}

#[cfg(not(feature = "ort"))]
fn onnxruntime() {
    outln!("onnxruntime not in this build (built without the `ort` feature)");
}

#[cfg(feature = "ort")]
fn onnxruntime() {
    match simcse_runtime::onnxruntime::load() {
        Ok(lib) => outln!(
            "onnxruntime {} ({}), CUDA execution provider {}",
            lib.path.display(),
            lib.build_info.trim(),
            if lib.cuda_available() { "available" } else { "not available" }
        ),
        Err(e) => outln!("onnxruntime not loaded: {e}"),
    }
}
