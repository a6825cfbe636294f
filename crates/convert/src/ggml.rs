//! ggml's tensor types and their dequantization to f32, as ggml's reference `dequantize_row_*`
//! (and the `gguf` Python package's `gguf.quants`) compute them. Quantized types are blocks
//! of 32 weights:
//! - Q4_0: f16 d, 16 bytes; weight j is the low nibble of byte j, weight j + 16 its high
//!   nibble; value (q - 8) * d.
//! - Q4_1: f16 d, f16 m, 16 bytes as Q4_0; value q * d + m.
//! - Q8_0: f16 d, 32 i8; value q * d.

use half::{bf16, f16};

pub const BLOCK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Bf16,
    Q4_0,
    Q4_1,
    Q8_0,
}

impl GgmlType {
    /// The type of ggml's type id, or the id's name where it is one that is not read.
    pub fn from_id(id: u32) -> Result<GgmlType, String> {
        Ok(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            30 => GgmlType::Bf16,
            other => return Err(unsupported_name(other)),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Bf16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q8_0 => "Q8_0",
        }
    }

    /// Bytes that `elements` values take, or `None` where they are not whole blocks.
    pub fn bytes_for(self, elements: usize) -> Option<usize> {
        let per_block = |block_bytes: usize| (elements % BLOCK == 0).then(|| elements / BLOCK * block_bytes);
        match self {
            GgmlType::F32 => elements.checked_mul(4),
            GgmlType::F16 | GgmlType::Bf16 => elements.checked_mul(2),
            GgmlType::Q4_0 => per_block(2 + BLOCK / 2),
            GgmlType::Q4_1 => per_block(4 + BLOCK / 2),
            GgmlType::Q8_0 => per_block(2 + BLOCK),
        }
    }

    /// `bytes` (exactly [`GgmlType::bytes_for`] of the values) as f32 values.
    pub fn dequantize(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            GgmlType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
            GgmlType::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            GgmlType::Bf16 => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            GgmlType::Q4_0 => dequantize_nibbles(bytes, 2, |block, q| (q as i32 - 8) as f32 * scale(block, 0)),
            GgmlType::Q4_1 => dequantize_nibbles(bytes, 4, |block, q| q as f32 * scale(block, 0) + scale(block, 2)),
            GgmlType::Q8_0 => bytes
                .chunks_exact(2 + BLOCK)
                .flat_map(|block| {
                    let d = scale(block, 0);
                    block[2..].iter().map(move |&q| q as i8 as f32 * d)
                })
                .collect(),
        }
    }
}

/// The f16 at `at` of a block.
fn scale(block: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
}

/// 4-bit blocks: `header` bytes of scales, then 16 bytes of two nibbles, low nibbles first.
fn dequantize_nibbles(bytes: &[u8], header: usize, value: impl Fn(&[u8], u8) -> f32) -> Vec<f32> {
    let block_bytes = header + BLOCK / 2;
    let mut out = Vec::with_capacity(bytes.len() / block_bytes * BLOCK);
    for block in bytes.chunks_exact(block_bytes) {
        let quants = &block[header..];
        out.extend(quants.iter().map(|q| value(block, q & 0x0F)));
        out.extend(quants.iter().map(|q| value(block, q >> 4)));
    }
    out
}

/// ggml's name for a type id that is not read, for the error that says so.
fn unsupported_name(id: u32) -> String {
    let names = [
        (6, "Q5_0"), (7, "Q5_1"), (9, "Q8_1"), (10, "Q2_K"), (11, "Q3_K"), (12, "Q4_K"), (13, "Q5_K"), (14, "Q6_K"),
        (15, "Q8_K"), (16, "IQ2_XXS"), (17, "IQ2_XS"), (18, "IQ3_XXS"), (19, "IQ1_S"), (20, "IQ4_NL"), (21, "IQ3_S"),
        (22, "IQ2_S"), (23, "IQ4_XS"), (24, "I8"), (25, "I16"), (26, "I32"), (27, "I64"), (28, "F64"), (29, "IQ1_M"),
        (34, "TQ1_0"), (35, "TQ2_0"), (39, "MXFP4"),
    ];
    let known = "F32, F16, BF16, Q8_0, Q4_0 and Q4_1 are read";
    match names.iter().find(|(n, _)| *n == id) {
        Some((_, name)) => format!("tensor type {name} is not supported ({known}; re-quantize to one of them, e.g. llama.cpp's `llama-quantize --allow-requantize IN OUT Q8_0`)"),
        None => format!("tensor type id {id} is not a ggml type this reader knows ({known})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_blocks_dequantize_low_nibbles_first() {
        let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
        // Byte j: low nibble j % 16, high nibble 15 - j % 16.
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let values = GgmlType::Q4_0.dequantize(&block);
        let expected: Vec<f32> = (0..16).map(|j| (j - 8) as f32 * 0.5).chain((0..16).map(|j| (15 - j - 8) as f32 * 0.5)).collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn q4_1_adds_its_minimum_and_q8_0_is_signed() {
        let mut block = f16::from_f32(0.25).to_le_bytes().to_vec();
        block.extend(f16::from_f32(-1.0).to_le_bytes());
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let values = GgmlType::Q4_1.dequantize(&block);
        assert_eq!(values[3], 3.0 * 0.25 - 1.0);
        assert_eq!(values[16 + 3], 12.0 * 0.25 - 1.0);

        let mut block = f16::from_f32(2.0).to_le_bytes().to_vec();
        block.extend((0..32).map(|j: i8| (j - 16) as u8));
        assert_eq!(GgmlType::Q8_0.dequantize(&block)[0], -32.0);
        assert_eq!(GgmlType::Q8_0.dequantize(&block)[31], 30.0);
    }

    #[test]
    fn unsupported_types_are_named() {
        assert!(GgmlType::from_id(12).unwrap_err().contains("Q4_K"));
        assert!(GgmlType::from_id(99).unwrap_err().contains("99"));
    }
}
