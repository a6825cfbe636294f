//! Writing embeddings as `.npy` (NumPy), `.safetensors` or `.jsonl`, chosen by extension;
//! written whole or not at all (`simcse_core::atomic`).

use crate::{Embeddings, RuntimeError};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Npy,
    Safetensors,
    Jsonl,
}

/// The format a path's extension asks for; checked before any work is done.
pub fn format_of(path: &Path) -> Result<Format, RuntimeError> {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "npy" => Ok(Format::Npy),
        "safetensors" => Ok(Format::Safetensors),
        "jsonl" => Ok(Format::Jsonl),
        other => Err(RuntimeError::Input(format!(
            "{}: unknown output format `.{other}`; use .npy, .safetensors or .jsonl",
            path.display()
        ))),
    }
}

pub fn write(path: &Path, embeddings: &Embeddings, sentences: &[&str]) -> Result<(), RuntimeError> {
    let bytes = match format_of(path)? {
        Format::Npy => npy(embeddings),
        Format::Safetensors => safetensors(embeddings)?,
        Format::Jsonl => jsonl(embeddings, sentences),
    };
    Ok(simcse_core::atomic::write_bytes(path, &bytes)?)
}

/// NPY format 1.0: magic, header dict padded to a multiple of 64 bytes, then little-endian f32.
fn npy(e: &Embeddings) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", e.rows, e.dim);
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(e.values.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}

fn safetensors(e: &Embeddings) -> Result<Vec<u8>, RuntimeError> {
    let data: Vec<u8> = e.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![e.rows, e.dim], &data)
        .map_err(|err| RuntimeError::Input(err.to_string()))?;
    let metadata = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize([("embeddings", view)], metadata).map_err(|err| RuntimeError::Input(err.to_string()))
}

fn jsonl(e: &Embeddings, sentences: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, sentence) in sentences.iter().enumerate() {
        let line = serde_json::json!({ "sentence": sentence, "embedding": e.row(i) });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Reads a 2-D little-endian f32 `.npy` (as this module and `numpy.save` write it).
pub fn read_npy(path: &Path) -> Result<Embeddings, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|error| RuntimeError::Io { path: path.into(), error })?;
    let bad = |why: &str| RuntimeError::Input(format!("{}: {why}", path.display()));
    if bytes.len() < 12 || !bytes.starts_with(b"\x93NUMPY") {
        return Err(bad("not a .npy file"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
    };
    let header = bytes.get(start..start + header_len).and_then(|h| std::str::from_utf8(h).ok()).ok_or_else(|| bad("a damaged header"))?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("not little-endian f32 in C order"));
    }
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|dims| dims.split(',').filter_map(|d| d.trim().parse().ok()).collect())
        .ok_or_else(|| bad("no shape in the header"))?;
    let [rows, dim] = shape[..] else { return Err(bad("not a 2-D array")) };
    let values: Vec<f32> = bytes[start + header_len..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if values.len() != rows * dim {
        return Err(bad("the data does not match the shape"));
    }
    Ok(Embeddings { rows, dim, values })
}
