//! Helpers shared by the integration tests.
#![allow(dead_code)]

use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(path: &str) -> PathBuf {
    root().join("tests/fixtures").join(path)
}

/// A bundled asset of scripts/setup.sh; a clear failure where setup has not run.
pub fn asset(path: &str) -> PathBuf {
    let path = root().join("assets").join(path);
    assert!(path.exists(), "{} is missing: run scripts/setup.sh", path.display());
    path
}

/// Tensors of a safetensors file as f32 (or i64 widened to f32) with their shapes.
pub fn load_f32(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
                safetensors::Dtype::I64 => {
                    view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32).collect()
                }
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// The integer tensors of a safetensors file.
pub fn load_i64(path: &Path, name: &str) -> Vec<i64> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor(name).unwrap_or_else(|_| panic!("{}: no `{name}`", path.display()));
    view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()
}

#[allow(unused_imports)]
pub use simcse_runtime::similarity::agreement as compare;

/// Runs the ONNX checker (Python `onnx`, installed by scripts/setup.sh) on the files.
pub fn onnx_check(files: &[PathBuf]) {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup.sh", python.display());
    let output = std::process::Command::new(&python)
        .arg(root().join("tests/check_onnx.py"))
        .args(files)
        .output()
        .expect("running the ONNX checker");
    assert!(
        output.status.success(),
        "the ONNX checker rejected exported graphs:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn sentences() -> Vec<String> {
    std::fs::read_to_string(fixture("encoders/sentences.txt")).unwrap().lines().map(String::from).collect()
}

/// SentEval's data: `SIMCSE_SENTEVAL_DIR` (set by .ci/run and the Makefile) or ../shared/data/senteval.
pub fn senteval_dir() -> PathBuf {
    let dir = std::env::var_os("SIMCSE_SENTEVAL_DIR").filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data/senteval"));
    assert!(dir.join("downstream/STS").is_dir(), "{} has no downstream/STS: set SIMCSE_SENTEVAL_DIR", dir.display());
    dir
}

/// The Chinese pair sets: `SIMCSE_ZH_DIR` or ../shared/data/zh.
pub fn zh_dir() -> PathBuf {
    let dir = std::env::var_os("SIMCSE_ZH_DIR").filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data/zh"));
    assert!(dir.join("STS-B").is_dir(), "{} has no STS-B: set SIMCSE_ZH_DIR", dir.display());
    dir
}

/// all-MiniLM-L6-v2 converted and exported with `pooler` into a temporary model directory.
pub fn minilm_model(tmp: &Path, pooler: simcse_core::Pooler) -> PathBuf {
    let model = tmp.join(format!("minilm-{pooler}"));
    simcse_convert::convert(&asset("all-MiniLM-L6-v2"), &model, &Default::default(), &mut |_, _| true).unwrap();
    let options = simcse_export::ExportOptions { pooler: Some(pooler), ..Default::default() };
    simcse_export::export(&model, &options).unwrap();
    model
}
