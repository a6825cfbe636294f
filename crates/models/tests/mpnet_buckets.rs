//! MPNet's relative-position buckets against transformers' `MPNetEncoder.relative_position_bucket`
//! for every offset -600..600 (written by tests/fixtures/gen_encoders.py), well past the
//! largest distance and the position table of any MPNet checkpoint.

use simcse_models::ops::{RelativePositionBias, Table};
use std::path::Path;

/// The int64 tensor `name` of a safetensors file.
fn load_i64(path: &Path, name: &str) -> Vec<i64> {
    let bytes = std::fs::read(path).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    let info = &header[name];
    assert_eq!(info["dtype"], "I64", "{name}");
    let [start, end] = [0, 1].map(|i| info["data_offsets"][i].as_u64().unwrap() as usize + 8 + length);
    bytes[start..end].chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()
}

#[test]
fn buckets_match_transformers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/encoders/mpnet/expected.safetensors");
    let expected = load_i64(&path, "relative_position_bucket");
    let bias = RelativePositionBias { table: Table::new("t", 32, 4), buckets: 32, max_distance: 128, longest: 601 };
    assert_eq!(bias.buckets_by_offset(), expected);
}
