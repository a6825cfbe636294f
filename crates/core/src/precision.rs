//! The one precision type of the project: the dtype a graph is exported in (`export --dtype`),
//! what its ONNX metadata says, and what training computes in (`train --precision`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Precision {
    #[serde(rename = "fp32")]
    F32,
    /// IEEE half: exported graphs; training through the hand-written fp16 linear with dynamic
    /// loss scaling.
    #[serde(rename = "fp16")]
    F16,
    /// bfloat16: training only (the same linear, no loss scaling needed).
    #[serde(rename = "bf16")]
    Bf16,
}

impl Precision {
    pub const NAMES: [&'static str; 3] = ["fp32", "fp16", "bf16"];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "fp32",
            Precision::F16 => "fp16",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "fp32" => Ok(Precision::F32),
            "fp16" => Ok(Precision::F16),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!("`{text}` is not fp32, fp16 or bf16")),
        }
    }
}
