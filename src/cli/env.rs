//! `simcse env`: what this binary runs on, so that "CUDA is not available" has an answer.

use simcse::train::torch_info;

pub fn run() -> anyhow::Result<()> {
    outln!("simcse {}", env!("CARGO_PKG_VERSION"));
    let torch = torch_info();
    outln!(
        "libtorch   2.11 (tch 0.24), {} CPU threads, CUDA {}",
        torch.threads,
        if torch.cuda_available {
            format!("available ({} devices, cuDNN {})", torch.cuda_devices, if torch.cudnn_available { "yes" } else { "no" })
        } else {
            "not available".to_string()
        }
    );
    match simcse_runtime::onnxruntime::load() {
        Ok(lib) => outln!(
            "onnxruntime {} ({}), CUDA execution provider {}",
            lib.path.display(),
            lib.build_info.trim(),
            if lib.cuda_available() { "available" } else { "not available" }
        ),
        Err(e) => outln!("onnxruntime not loaded: {e}"),
    }
    outln!("tract      0.23, linked in (pure Rust, CPU)");
    Ok(())
}
