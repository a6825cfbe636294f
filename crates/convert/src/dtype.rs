//! Element types a checkpoint can hold, and the casts `--dtype` asks for.

use half::{bf16, f16};
use std::fmt;

/// The element types of PyTorch state dicts that we read and safetensors can store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }

    /// The name safetensors uses in its header.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U8 => "U8",
            DType::Bool => "BOOL",
        }
    }

    pub fn from_safetensors(dtype: safetensors::Dtype) -> Option<DType> {
        use safetensors::Dtype as S;
        Some(match dtype {
            S::F64 => DType::F64,
            S::F32 => DType::F32,
            S::F16 => DType::F16,
            S::BF16 => DType::BF16,
            S::I64 => DType::I64,
            S::I32 => DType::I32,
            S::I16 => DType::I16,
            S::I8 => DType::I8,
            S::U8 => DType::U8,
            S::BOOL => DType::Bool,
            _ => return None,
        })
    }

    /// The dtype of a PyTorch storage class such as `FloatStorage`.
    pub fn from_torch_storage(class: &str) -> Option<DType> {
        Some(match class {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// Parses the names users type: `f32`, `float16`, `bf16`, ...
    pub fn parse(name: &str) -> Option<DType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "f64" | "float64" | "double" => DType::F64,
            "f32" | "float32" | "float" | "fp32" => DType::F32,
            "f16" | "float16" | "half" | "fp16" => DType::F16,
            "bf16" | "bfloat16" => DType::BF16,
            "i64" | "int64" | "long" => DType::I64,
            "i32" | "int32" | "int" => DType::I32,
            "i16" | "int16" | "short" => DType::I16,
            "i8" | "int8" => DType::I8,
            "u8" | "uint8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::Bool => "bool",
        })
    }
}

/// The dtype a tensor of `from` becomes when the user asks for `target`: floating-point tensors
/// are cast, integer and boolean tensors (position ids, masks) are kept, as `model.half()` does.
pub fn cast_target(from: DType, target: Option<DType>) -> DType {
    match target {
        Some(to) if from.is_float() => to,
        _ => from,
    }
}

/// Converts little-endian elements of `from` in `src` to `to`, appending to `dst`.
/// Rounding follows PyTorch: to nearest even; f64 goes through f32 first, as `Tensor.to` does.
pub fn cast_into(src: &[u8], from: DType, to: DType, dst: &mut Vec<u8>) {
    if from == to {
        dst.extend_from_slice(src);
        return;
    }
    debug_assert!(from.is_float() && to.is_float());
    let start = dst.len();
    dst.resize(start + src.len() / from.size() * to.size(), 0);
    let out = dst[start..].chunks_exact_mut(to.size());
    let values = src.chunks_exact(from.size());
    match to {
        DType::F32 => out.zip(values).for_each(|(o, v)| o.copy_from_slice(&read_float(v, from).to_le_bytes())),
        DType::F16 => out.zip(values).for_each(|(o, v)| o.copy_from_slice(&f32_to_f16_bits(read_float(v, from)).to_le_bytes())),
        DType::BF16 => out.zip(values).for_each(|(o, v)| o.copy_from_slice(&f32_to_bf16_bits(read_float(v, from)).to_le_bytes())),
        DType::F64 => out.zip(values).for_each(|(o, v)| o.copy_from_slice(&read_f64(v, from).to_le_bytes())),
        _ => unreachable!("cast_into is only called between float dtypes"),
    }
}

/// c10::Half: round to nearest even; every NaN becomes the quiet NaN 0x7E00 with its sign.
fn f32_to_f16_bits(v: f32) -> u16 {
    if v.is_nan() {
        ((v.to_bits() >> 16) as u16 & 0x8000) | 0x7E00
    } else {
        f16::from_f32(v).to_bits()
    }
}

/// c10::BFloat16: round to nearest even; every NaN becomes 0x7FC0.
fn f32_to_bf16_bits(v: f32) -> u16 {
    if v.is_nan() {
        0x7FC0
    } else {
        bf16::from_f32(v).to_bits()
    }
}

fn read_float(bytes: &[u8], dtype: DType) -> f32 {
    match dtype {
        DType::F64 => f64::from_le_bytes(bytes.try_into().unwrap()) as f32,
        DType::F32 => f32::from_le_bytes(bytes.try_into().unwrap()),
        DType::F16 => f16::from_le_bytes(bytes.try_into().unwrap()).to_f32(),
        DType::BF16 => bf16::from_le_bytes(bytes.try_into().unwrap()).to_f32(),
        _ => unreachable!(),
    }
}

fn read_f64(bytes: &[u8], dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::from_le_bytes(bytes.try_into().unwrap()),
        other => read_float(bytes, other) as f64,
    }
}
